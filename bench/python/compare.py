#!/usr/bin/env python3
"""Agent versus the Python reference pipeline on the same recordings.

1. Writes a deterministic set of synthetic recordings (shaft harmonics, outer-race impacts
   ringing a resonance, noise; 12 kHz and 20 kHz) in the `lab eval` input layout.
2. Checks that both compute the same features: `lab export-features --recordings` against
   `reference.py --no-quantize --dump-inputs` on the 12 kHz files (maximum difference printed).
3. Runs `lab eval` and `reference.py` (features + the committed int8 classifier, one window at
   a time) on the whole set, each in its own process, and prints windows per CPU-second (the
   throughput of one core), peak RSS, and the ratios.

Usage: compare.py --agent PATH_TO_LAB_BINARY [--python PY] [--model MANIFEST] [--seconds S]
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def write_recordings(folder, seconds):
    """Deterministic machine signals: 4 healthy and 4 outer-race recordings per sample rate."""
    rng = np.random.default_rng(7)
    rows = []
    header = (
        "file,label,fault_inches,load_hp,rpm,sample_rate_hz,n_samples,channel,"
        "bpfi_order,bpfo_order,bsf_order,ftf_order"
    )
    orders = {"bpfi": 5.4152, "bpfo": 3.5848, "bsf": 2.357, "ftf": 0.3983}  # SKF 6205
    for fs in (12000.0, 20000.0):
        for i in range(8):
            rpm = 1500.0 + 150.0 * i
            shaft = rpm / 60.0
            n = int(seconds * fs)
            t = np.arange(n) / fs
            x = 0.05 * np.sin(2 * np.pi * shaft * t) + 0.02 * np.sin(4 * np.pi * shaft * t + 1.0)
            x += rng.normal(0.0, 0.03, n)
            label = "normal"
            if i % 2 == 1:
                label = "outer"
                f_res = 3000.0 + 200.0 * i
                period = 1.0 / (orders["bpfo"] * shaft)
                ring = np.arange(int(0.01 * fs)) / fs
                kernel = 0.3 * np.exp(-ring * 2 * np.pi * f_res * 0.05) * np.sin(2 * np.pi * f_res * ring)
                at = 0.0
                while at < seconds - 0.02:
                    k = int(at * fs)
                    x[k : k + len(kernel)] += kernel
                    at += period * (1.0 + rng.normal(0.0, 0.01))
            name = f"synthetic_{int(fs)}_{i}.f32"
            x.astype("<f4").tofile(os.path.join(folder, name))
            rows.append(
                f"{name},{label},0,0,{rpm},{fs:g},{n},DE,"
                f"{orders['bpfi']},{orders['bpfo']},{orders['bsf']},{orders['ftf']}"
            )
    with open(os.path.join(folder, "index.csv"), "w") as f:
        f.write(header + "\n" + "\n".join(rows) + "\n")


def peak_rss_kib(pid):
    """VmHWM of a running process, KiB (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measured(cmd, env=None):
    """Runs `cmd`; returns (stdout, cpu seconds, peak RSS in MiB) of that process alone.

    Peak RSS is polled from /proc (VmHWM, the high-water mark of the program's own memory)
    every 5 ms: rusage's ru_maxrss would also count this script's memory copied at fork."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    chunks, hwm = [], [0]

    def poll():
        while proc.returncode is None:
            hwm[0] = max(hwm[0], peak_rss_kib(proc.pid))
            time.sleep(0.005)

    watcher = threading.Thread(target=poll)
    watcher.start()
    chunks.append(proc.stdout.read())
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    watcher.join()
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed with {proc.returncode}")
    return "".join(chunks), usage.ru_utime + usage.ru_stime, hwm[0] / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--model", help="manifest.json for the Python side (default: models/)")
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    model = args.model or os.path.join(HERE, "..", "..", "models", "manifest.json")
    single = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        write_recordings(data, args.seconds)

        # Same features? The 12 kHz recordings, f32 samples as they are, 8192-sample windows.
        check = os.path.join(tmp, "check")
        os.mkdir(check)
        with open(os.path.join(data, "index.csv")) as f:
            lines = [l for l in f if not l.startswith("synthetic_20000")]
        with open(os.path.join(check, "index.csv"), "w") as f:
            f.writelines(lines)
        for line in lines[1:]:
            name = line.split(",")[0]
            os.symlink(os.path.join(data, name), os.path.join(check, name))
        agent_csv, py_csv = os.path.join(tmp, "agent.csv"), os.path.join(tmp, "py.csv")
        subprocess.run(
            [args.agent, "export-features", "--recordings", check, "--out", agent_csv,
             "--window-len", "8192", "--overlap", "0.5"],
            check=True, stderr=subprocess.DEVNULL,
        )
        subprocess.run(
            [args.python, os.path.join(HERE, "reference.py"), "--data", check, "--no-quantize",
             "--window-len", "8192", "--dump-inputs", py_csv],
            check=True, stdout=subprocess.DEVNULL, env=single,
        )
        with open(agent_csv) as f:
            rows = list(csv.reader(f))
            first = rows[0].index("log10_rms_g")
            a = np.array([[float(v) for v in r[first:]] for r in rows[1:]])
        with open(py_csv) as f:
            p = np.array([[float(v) for v in r[2:]] for r in list(csv.reader(f))[1:]])
        if a.shape != p.shape:
            sys.exit(f"different windows: agent {a.shape}, python {p.shape}")
        diff = float(np.abs(a - p).max())
        print(f"feature check: {a.shape[0]} windows x {a.shape[1]} inputs, "
              f"max |agent - python| = {diff:.3g}")

        # Throughput: the whole pipeline per window on one core. The reference cuts fixed
        # 8192-sample windows; the agent's default is 1 s, so `lab eval` is given the same.
        out_csv = os.path.join(tmp, "eval.csv")
        _, agent_cpu, agent_rss = measured(
            [args.agent, "eval", "--data", data, "--out", out_csv, "--window-len", "8192"],
            env=single,
        )
        with open(out_csv) as f:
            agent_windows = sum(int(r["windows"]) for r in csv.DictReader(f))
        py_cmd = [args.python, os.path.join(HERE, "reference.py"), "--data", data]
        with_model = os.path.exists(model)
        if with_model:
            py_cmd += ["--model", model]
        out, py_cpu, py_rss = measured(py_cmd, env=single)
        py = json.loads(out.strip().splitlines()[-1])
        if py["windows"] != agent_windows:
            sys.exit(f"different window counts: agent {agent_windows}, python {py['windows']}")
        agent_rate = agent_windows / agent_cpu
        py_rate = py["windows"] / py_cpu
        print(f"input: 16 recordings x {args.seconds:g} s (12 and 20 kHz), "
              f"{agent_windows} windows; python model: {'int8 onnxruntime' if with_model else 'none'}")
        print("| pipeline | windows/s per core | CPU s | peak RSS MiB |")
        print("|---|---:|---:|---:|")
        print(f"| lab eval (Rust, the agent's code) | {agent_rate:.0f} | {agent_cpu:.2f} | {agent_rss:.1f} |")
        print(f"| reference.py (numpy + onnxruntime) | {py_rate:.0f} | {py_cpu:.2f} | {py_rss:.1f} |")
        print(f"throughput ratio agent/python: {agent_rate / py_rate:.1f}x (target >= 30x); "
              f"RSS ratio python/agent: {py_rss / agent_rss:.1f}x")


if __name__ == "__main__":
    main()
