"""Per-bearing run-to-failure plots from `lab eval-rtf` output.

    python scripts/plot_rtf.py --rows rtf.csv --trace rtf-trace.csv --out-dir docs/img

One PNG per bearing (`rtf-<bearing>.png`): the smoothed health indicator (ln of RMS over the
commissioning RMS) with the onset/first alert marked, and below it the remaining-life estimate
with its interval against the truth (life minus elapsed time). Run by scripts/plot-rtf.sh.
"""
import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=Path, required=True)
    ap.add_argument("--trace", type=Path, required=True)
    ap.add_argument("--out-dir", type=Path, required=True)
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows = {r["bearing"]: r for r in csv.DictReader(open(args.rows))}
    trace = {}
    for r in csv.DictReader(open(args.trace)):
        trace.setdefault(r["bearing"], []).append(r)
    for bearing, snaps in trace.items():
        row = rows[bearing]
        life_h = float(row["life_s"]) / 3600
        t = [float(s["seconds_since_start"]) / 3600 for s in snaps]
        health = [float(s["health"]) for s in snaps]
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
        ax1.plot(t, health, lw=1, label="health indicator (ln RMS / commissioning RMS)")
        if row["first_alert_s"]:
            alert_h = float(row["first_alert_s"]) / 3600
            ax1.axvline(alert_h, color="tab:orange", ls="--", label=f"onset / alert at {alert_h:.2f} h")
        ax1.axvline(life_h, color="k", lw=0.8, label=f"end of life {life_h:.2f} h")
        ax1.set_ylabel("health")
        ax1.legend(fontsize=7, loc="upper left")
        ax1.set_title(f"{bearing}: lead time {row['lead_time_s'] or '-'} s, max level {row['max_level']}")
        truth = [life_h - x for x in t]
        ax2.plot(t, truth, color="k", lw=0.8, label="true remaining life")
        est = [(x, float(s["rul_s"]) / 3600) for x, s in zip(t, snaps) if s["rul_s"]]
        if est:
            ax2.plot([e[0] for e in est], [e[1] for e in est], ".", ms=2, color="tab:blue", label="estimate")
            lo = [(x, float(s["rul_low_s"]) / 3600) for x, s in zip(t, snaps) if s["rul_low_s"]]
            ax2.plot([e[0] for e in lo], [e[1] for e in lo], ".", ms=1, color="tab:gray", label="interval ends")
            hi = [(x, float(s["rul_high_s"]) / 3600) for x, s in zip(t, snaps) if s["rul_high_s"]]
            ax2.plot([e[0] for e in hi], [e[1] for e in hi], ".", ms=1, color="tab:gray")
        ax2.set_ylim(0, max(truth) * 1.1)
        ax2.set_xlabel("hours since start")
        ax2.set_ylabel("remaining life, h")
        ax2.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        fig.savefig(args.out_dir / f"rtf-{bearing}.png", dpi=80)
        plt.close(fig)


if __name__ == "__main__":
    main()
