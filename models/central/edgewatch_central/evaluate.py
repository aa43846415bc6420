"""Per-class recall of two models on one evaluation set, and the "not worse" gate.

The rule (README, "When is a candidate not worse"): on every evaluation set with at least one
window, for the classes present in it (`n_c` windows of class `c`, `K` classes):

- `r_c` is a model's recall on class `c` (windows of `c` it called `c`), and the macro recall
  is their mean over the `K` classes;
- the active model's recall carries a sampling error `se_c = sqrt(p_c (1 - p_c) / n_c)` with
  `p_c = (correct_c + 1) / (n_c + 2)` (the active model's recall, pulled off 0 and 1 so a
  perfect score still has an error);
- the candidate LOSES on the set when its macro recall is below the active one's by more than
  `max(macro_tolerance, z * sqrt(sum_c se_c^2) / K)`, or when its recall on any class is
  below the active one's by more than `max(class_tolerance, z * se_c)`.

Defaults: `macro_tolerance` 0.01, `class_tolerance` 0.05, `z` 2. A small set therefore
constrains little (its differences are mostly chance) and a large one a lot, but never finer
than the two tolerances. An empty or absent set is reported as not judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GateRule:
    macro_tolerance: float = 0.01
    class_tolerance: float = 0.05
    z: float = 2.0

    def as_dict(self) -> dict:
        return {"macro_tolerance": self.macro_tolerance, "class_tolerance": self.class_tolerance,
                "z": self.z}


def compare(name: str, y: np.ndarray, pred_active: np.ndarray, pred_candidate: np.ndarray,
            class_names: list[str], rule: GateRule) -> dict:
    """Metrics of both models on one set and the gate's verdict on it."""
    y = np.asarray(y)
    out = {"set": name, "windows": int(len(y)), "classes": {}, "judged": bool(len(y))}
    if not len(y):
        out.update(verdict="not judged", reasons=["no windows"])
        return out
    pa, pb = np.asarray(pred_active), np.asarray(pred_candidate)
    var_sum, losses = 0.0, []
    for k, cname in enumerate(class_names):
        mask = y == k
        n = int(mask.sum())
        if n == 0:
            continue
        ka, kb = int((pa[mask] == k).sum()), int((pb[mask] == k).sum())
        ra, rb = ka / n, kb / n
        p = (ka + 1) / (n + 2)
        se = math.sqrt(p * (1 - p) / n)
        var_sum += se * se
        allowed = max(rule.class_tolerance, rule.z * se)
        out["classes"][cname] = {"windows": n, "recall_active": ra, "recall_candidate": rb,
                                 "allowed_drop": allowed}
        if rb < ra - allowed:
            losses.append(f"{name}: recall of {cname} {rb:.3f} < active {ra:.3f} - {allowed:.3f} "
                          f"({n} windows)")
    k_present = len(out["classes"])
    macro_a = float(np.mean([c["recall_active"] for c in out["classes"].values()]))
    macro_b = float(np.mean([c["recall_candidate"] for c in out["classes"].values()]))
    macro_allowed = max(rule.macro_tolerance, rule.z * math.sqrt(var_sum) / k_present)
    if macro_b < macro_a - macro_allowed:
        losses.insert(0, f"{name}: macro recall {macro_b:.3f} < active {macro_a:.3f} - "
                         f"{macro_allowed:.3f} ({len(y)} windows, {k_present} classes)")
    out.update(
        accuracy_active=float((pa == y).mean()), accuracy_candidate=float((pb == y).mean()),
        macro_recall_active=macro_a, macro_recall_candidate=macro_b,
        macro_allowed_drop=macro_allowed,
        verdict="worse" if losses else "not worse", reasons=losses)
    return out


def gate(results: list[dict]) -> tuple[bool, list[str]]:
    """Passes when no judged set says worse; returns the reasons of every loss."""
    reasons = [r for res in results if res["verdict"] == "worse" for r in res["reasons"]]
    return not reasons, reasons


def markdown_table(res: dict) -> str:
    if not res["judged"]:
        return f"Not judged: {', '.join(res['reasons'])}."
    lines = ["| class | windows | active recall | candidate recall | allowed drop |",
             "|---|---:|---:|---:|---:|"]
    for cname, c in res["classes"].items():
        lines.append(f"| {cname} | {c['windows']} | {c['recall_active']:.3f} | "
                     f"{c['recall_candidate']:.3f} | {c['allowed_drop']:.3f} |")
    lines.append(f"| **macro recall** | {res['windows']} | {res['macro_recall_active']:.3f} | "
                 f"{res['macro_recall_candidate']:.3f} | {res['macro_allowed_drop']:.3f} |")
    lines.append(f"| accuracy | {res['windows']} | {res['accuracy_active']:.3f} | "
                 f"{res['accuracy_candidate']:.3f} | |")
    lines.append("")
    lines.append(f"Verdict: **{res['verdict']}**" + (": " + "; ".join(res["reasons"]) if res["reasons"] else ""))
    return "\n".join(lines)
