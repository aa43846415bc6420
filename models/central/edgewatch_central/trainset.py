"""`build-trainset`: operator labels joined to the model inputs the fleet reported, mixed with a
simulated training set, in the CSV format `lab export-features` writes and models/train.py reads.

Which windows a label gives (docs/feedback-loop.md, the feedback topic):

- `alert_rejected` (alert_id): every input vector (`inputs`) of every alert record of that
  alert, labelled `normal`;
- `alert_confirmed` (alert_id, fault): the same windows, labelled with `fault`;
- `asset_state` (asset_id, from_unix_ms, to_unix_ms, state): the `input_sample` windows of the
  asset's summaries whose interval lies inside the range (the interval ends at the summary's
  `created_unix_ms` and lasts `window_end_us - window_start_us`), and the `inputs` of the
  asset's alert records created inside the range, labelled `state`;
- `maintenance`: no windows (recorded, not used).

Rules: of several alert labels on one alert, the latest (created_unix_ms, then feedback_id)
wins and the others are recorded as superseded. A class outside the model's classes, a label
whose asset or agent differs from its alert's, an alert or summary whose `input_names` differ
from the simulated set's columns: the label or record is skipped with the reason. One window
(agent, asset, sensor, axis, window start) is one row however many records carry it; a window
two labels give different classes is dropped as a conflict.

Held-back split: labels that share a window are one group (so a label's windows never straddle
the split); per class, the groups sorted by the SHA-256 of their feedback ids, the first
`round(holdback * n)` are held back (at least one when the class has two groups or more, none
when it has one).
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .query import connect
from .repo import train_module

LINEAGE_COLUMNS = ["file", "row", "source", "case", "label", "feedback_ids", "record_ids",
                   "agent_id", "asset_id", "sensor_id", "axis", "window_start_us", "window_end_us",
                   "agent_version", "feature_version", "model_version"]


class TrainsetError(RuntimeError):
    pass


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Window:
    key: tuple
    values: list[float]
    window_end_us: int | None
    labels: dict[str, str] = field(default_factory=dict)  # feedback_id -> class
    record_ids: set[str] = field(default_factory=set)
    lineage: dict = field(default_factory=dict)


@dataclass
class Label:
    feedback_id: str
    created_unix_ms: int
    record: dict

    @property
    def kind(self) -> str:
        return self.record.get("label")


class _Windows:
    def __init__(self, features: list[str]):
        self.features = features
        self.by_key: dict[tuple, Window] = {}
        self.skipped_records: list[dict] = []

    def add_vectors(self, rec: dict, rec_row: dict, vectors_field: str, label: Label, cls: str) -> int:
        names = rec.get("input_names")
        if names != self.features:
            self.skipped_records.append({
                "record_id": rec_row["record_id"], "feedback_id": label.feedback_id,
                "reason": "input_names differ from the training columns" if names else "no input_names"})
            return 0
        added = 0
        for vec in rec.get(vectors_field) or []:
            values = vec.get("values")
            if not isinstance(values, list) or len(values) != len(self.features):
                self.skipped_records.append({"record_id": rec_row["record_id"],
                                             "feedback_id": label.feedback_id,
                                             "reason": f"a vector of {vectors_field} has "
                                                       f"{len(values) if isinstance(values, list) else 'no'} values"})
                continue
            key = (rec_row["agent_id"], rec_row["asset_id"], vec.get("sensor_id", rec_row["sensor_id"]),
                   vec.get("axis"), vec.get("window_start_us"))
            w = self.by_key.get(key)
            if w is None:
                w = self.by_key[key] = Window(key, [float(v) for v in values], vec.get("window_end_us"),
                                              lineage={k: rec_row[k] for k in
                                                       ("agent_version", "feature_version", "model_version")})
            w.labels[label.feedback_id] = cls
            w.record_ids.add(rec_row["record_id"])
            added += 1
        return added


def _rows(con, sql: str, params=None) -> list[dict]:
    rel = con.execute(sql, params or [])
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, r)) for r in rel.fetchall()]


_RECORD_COLS = ("record_id, agent_id, asset_id, sensor_id, created_unix_ms, window_start_us, "
                "window_end_us, agent_version, feature_version, model_version, payload")


def _split_groups(windows: list[Window]) -> dict[str, str]:
    """feedback_id -> group id (labels sharing a window are one group, union-find)."""
    parent: dict[str, str] = {}

    def find(a):
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for w in windows:
        ids = sorted(w.labels)
        for other in ids[1:]:
            ra, rb = find(ids[0]), find(other)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        find(ids[0])
    return {fid: find(fid) for fid in parent}


def build(store: Path, sim_train: Path, out: Path, holdback: float = 0.25, field_weight: int = 1) -> dict:
    """Writes train.csv, heldback.csv, lineage.csv and trainset.json to `out`; returns the
    latter. `field_weight`: each training-side field window is written that many times (its
    weight against the simulated rows); held-back windows once."""
    if field_weight < 1:
        raise TrainsetError("--field-weight must be 1 or more")
    train = train_module()
    out.mkdir(parents=True, exist_ok=True)
    with open(sim_train, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        sim_rows = list(reader)
    meta = train.META_COLUMNS
    if header[:len(meta)] != meta:
        raise TrainsetError(f"{sim_train}: not a `lab export-features` CSV (columns {header[:len(meta)]})")
    features = header[len(meta):]
    classes = train.CLASS_NAMES

    con = connect(store)
    ignored: list[dict] = []
    labels = [Label(r["record_id"], r["created_unix_ms"] or 0, json.loads(r["payload"]))
              for r in _rows(con, "SELECT record_id, created_unix_ms, payload FROM feedback "
                                  "WHERE type = 'label' ORDER BY created_unix_ms, record_id")]
    windows = _Windows(features)
    used: dict[str, dict] = {}

    # Alert labels: the latest per alert wins.
    latest: dict[str, Label] = {}
    for lab in labels:
        if lab.kind in ("alert_confirmed", "alert_rejected"):
            if not isinstance(lab.record.get("alert_id"), str):
                ignored.append({"feedback_id": lab.feedback_id, "reason": "no alert_id"})
                continue
            prev = latest.get(lab.record.get("alert_id"))
            if prev is not None:
                ignored.append({"feedback_id": prev.feedback_id, "reason": f"superseded by {lab.feedback_id}"})
            latest[lab.record.get("alert_id")] = lab
        elif lab.kind == "maintenance":
            ignored.append({"feedback_id": lab.feedback_id, "reason": "maintenance: no windows"})
        elif lab.kind != "asset_state":
            ignored.append({"feedback_id": lab.feedback_id, "reason": f"unknown label {lab.kind!r}"})
    alerts_by_id: dict[str, list[dict]] = {}
    if latest:
        for row in _rows(con, f"SELECT {_RECORD_COLS} FROM alerts WHERE list_contains(?, "
                              "json_extract_string(payload, '$.alert_id')) ORDER BY created_unix_ms, record_id",
                         [sorted(latest)]):
            rec = json.loads(row["payload"])
            alerts_by_id.setdefault(rec["alert_id"], []).append((rec, row))
    for alert_id, lab in sorted(latest.items(), key=lambda kv: kv[1].feedback_id):
        cls = "normal" if lab.kind == "alert_rejected" else lab.record.get("fault")
        if cls not in classes:
            ignored.append({"feedback_id": lab.feedback_id, "reason": f"class {cls!r} is not one of the model's"})
            continue
        records = alerts_by_id.get(alert_id, [])
        if not records:
            ignored.append({"feedback_id": lab.feedback_id, "reason": f"no alert record of {alert_id} in the store"})
            continue
        mismatch = [r for _, r in records
                    if r["asset_id"] != lab.record.get("asset_id")
                    or (lab.record.get("agent_id") and r["agent_id"] != lab.record["agent_id"])]
        if mismatch:
            ignored.append({"feedback_id": lab.feedback_id,
                            "reason": f"alert {alert_id} is of asset {mismatch[0]['asset_id']} "
                                      f"on agent {mismatch[0]['agent_id']}, the label says "
                                      f"{lab.record.get('asset_id')} on {lab.record.get('agent_id')}"})
            continue
        n = sum(windows.add_vectors(rec, row, "inputs", lab, cls) for rec, row in records)
        used[lab.feedback_id] = {"feedback_id": lab.feedback_id, "label": lab.kind, "class": cls,
                                 "alert_id": alert_id, "windows": n}

    # Asset states: summaries inside the range, alerts created inside it.
    for lab in labels:
        if lab.kind != "asset_state":
            continue
        r = lab.record
        cls = r.get("state")
        if cls not in classes:
            ignored.append({"feedback_id": lab.feedback_id, "reason": f"class {cls!r} is not one of the model's"})
            continue
        lo, hi = r.get("from_unix_ms"), r.get("to_unix_ms")
        agent_clause = "AND agent_id = ?" if r.get("agent_id") else ""
        params = [r.get("asset_id"), hi, lo] + ([r["agent_id"]] if r.get("agent_id") else [])
        n = 0
        for row in _rows(con, f"SELECT {_RECORD_COLS} FROM summaries WHERE asset_id = ? "
                              "AND created_unix_ms <= ? "
                              "AND created_unix_ms - (window_end_us - window_start_us) // 1000 >= ? "
                              f"{agent_clause} ORDER BY created_unix_ms, record_id", params):
            n += windows.add_vectors(json.loads(row["payload"]), row, "input_sample", lab, cls)
        for row in _rows(con, f"SELECT {_RECORD_COLS} FROM alerts WHERE asset_id = ? "
                              "AND created_unix_ms <= ? AND created_unix_ms >= ? "
                              f"{agent_clause} ORDER BY created_unix_ms, record_id", params):
            n += windows.add_vectors(json.loads(row["payload"]), row, "inputs", lab, cls)
        used[lab.feedback_id] = {"feedback_id": lab.feedback_id, "label": "asset_state", "class": cls,
                                 "from_unix_ms": lo, "to_unix_ms": hi, "windows": n}

    # Conflicts, groups, split.
    conflicts, clean = [], []
    for w in windows.by_key.values():
        if len(set(w.labels.values())) > 1:
            conflicts.append({"window": list(w.key), "labels": dict(sorted(w.labels.items()))})
        else:
            clean.append(w)
    group_of = _split_groups(clean)
    groups: dict[str, dict] = {}
    for w in clean:
        g = group_of[next(iter(w.labels))]
        entry = groups.setdefault(g, {"class": next(iter(w.labels.values())), "feedback_ids": set(),
                                      "windows": []})
        entry["feedback_ids"] |= set(w.labels)
        entry["windows"].append(w)
    heldback_groups = set()
    for cls in classes:
        gs = sorted((g for g, e in groups.items() if e["class"] == cls),
                    key=lambda g: hashlib.sha256(" ".join(sorted(groups[g]["feedback_ids"])).encode()).hexdigest())
        k = 0 if len(gs) < 2 else max(1, round(holdback * len(gs)))
        heldback_groups |= set(gs[:k])
    for fid, u in used.items():
        if fid in group_of:
            u["group"] = group_of[fid]
            u["split"] = "heldback" if group_of[fid] in heldback_groups else "train"
        else:
            u["split"] = "none"
        u["windows_kept"] = sum(1 for w in clean if fid in w.labels)
    for fid in [f for f, u in used.items() if u["windows_kept"] == 0]:
        ignored.append({"feedback_id": fid, "reason": "no window left (no input vectors, all skipped "
                                                      "or in conflict)"})

    # Files.
    train_path, held_path, lineage_path = out / "train.csv", out / "heldback.csv", out / "lineage.csv"
    lineage_rows = []
    per_class = {"train": {}, "heldback": {}}
    with open(train_path, "w", newline="") as ft, open(held_path, "w", newline="") as fh:
        wt, wh = csv.writer(ft, lineterminator="\n"), csv.writer(fh, lineterminator="\n")
        wt.writerow(header)
        wh.writerow(header)
        for i, row in enumerate(sim_rows):
            wt.writerow(row)
            lineage_rows.append(["train.csv", i, "sim", row[0], row[1], "", "", "", "", "", "", "", "",
                                 "", "", ""])
        counters = {"train": len(sim_rows), "heldback": 0}
        for g in sorted(groups):
            e = groups[g]
            split = "heldback" if g in heldback_groups else "train"
            writer = wh if split == "heldback" else wt
            copies = field_weight if split == "train" else 1
            for w in sorted(e["windows"], key=lambda w: tuple(str(k) for k in w.key)):
                agent, asset, sensor, axis, start_us = w.key
                case = f"field:{g}"
                for _ in range(copies):
                    writer.writerow([case, e["class"], "", "", "", "", f"{asset}/{sensor}/{axis}",
                                     repr(start_us / 1e6) if start_us is not None else ""]
                                    + [repr(v) for v in w.values])
                    lineage_rows.append([f"{split}.csv", counters[split], "field", case, e["class"],
                                         " ".join(sorted(w.labels)), " ".join(sorted(w.record_ids)),
                                         agent, asset, sensor, axis, start_us, w.window_end_us,
                                         w.lineage["agent_version"], w.lineage["feature_version"],
                                         w.lineage["model_version"]])
                    counters[split] += 1
                per_class[split][e["class"]] = per_class[split].get(e["class"], 0) + 1
    with open(lineage_path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(LINEAGE_COLUMNS)
        w.writerows(lineage_rows)

    train_sha = sha256_file(train_path)
    field_ids = sorted({r for w in clean for r in w.record_ids})
    manifest = {
        "format": "edgewatch-trainset",
        "format_version": 1,
        "created_unix_ms": int(time.time() * 1000),
        "dataset_id": f"trainset:{train_sha[:16]}",
        "feature_names": features,
        "holdback": holdback,
        "field_weight": field_weight,
        "sim_train": {"file": sim_train.name, "sha256": sha256_file(sim_train), "rows": len(sim_rows)},
        "files": {
            "train.csv": {"sha256": train_sha, "rows": counters["train"],
                          "sim_rows": len(sim_rows), "field_rows": counters["train"] - len(sim_rows),
                          "field_windows_per_class": dict(sorted(per_class["train"].items()))},
            "heldback.csv": {"sha256": sha256_file(held_path), "rows": counters["heldback"],
                             "field_windows_per_class": dict(sorted(per_class["heldback"].items()))},
            "lineage.csv": {"sha256": sha256_file(lineage_path), "rows": len(lineage_rows)},
        },
        "labels": {"used": [dict(u, group=u.get("group")) for _, u in sorted(used.items())
                            if u["windows_kept"] > 0],
                   "ignored": sorted(ignored, key=lambda x: x["feedback_id"])},
        "records": {"field_record_ids": field_ids, "skipped": windows.skipped_records},
        "conflicts": conflicts,
        "agent_versions": sorted({str(w.lineage["agent_version"]) for w in clean}),
        "feature_versions": sorted({w.lineage["feature_version"] for w in clean if w.lineage["feature_version"] is not None}),
        "model_versions": sorted({str(w.lineage["model_version"]) for w in clean}),
    }
    (out / "trainset.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def check(trainset_dir: Path) -> dict:
    """trainset.json, with every CSV's hash checked against it."""
    manifest = json.loads((trainset_dir / "trainset.json").read_text())
    for name, entry in manifest["files"].items():
        actual = sha256_file(trainset_dir / name)
        if actual != entry["sha256"]:
            raise TrainsetError(f"{trainset_dir / name}: SHA-256 {actual} differs from trainset.json's "
                                f"{entry['sha256']}: the file changed after build-trainset")
    return manifest


def main(args) -> int:
    m = build(Path(args.store), Path(args.sim_train), Path(args.out), args.holdback, args.field_weight)
    f = m["files"]
    print(json.dumps({"dataset_id": m["dataset_id"], "train_rows": f["train.csv"]["rows"],
                      "field_train_rows": f["train.csv"]["field_rows"],
                      "heldback_rows": f["heldback.csv"]["rows"],
                      "labels_used": len(m["labels"]["used"]), "labels_ignored": len(m["labels"]["ignored"]),
                      "conflicts": len(m["conflicts"])}))
    return 0
