"""`retrain`: a candidate trained with models/train.py on a training set from build-trainset,
judged beside the active model, described by a model card, and packaged (signed, with the
active model as its parent) only when it is not worse on any evaluation set (evaluate.py).

Evaluation sets, each a CSV in the `lab export-features` format:

- `field-heldback`: the training set's held-back field labels (never trained on);
- `sim-test`: the simulated held-out test CSV (another seed than the training one);
- `real:<name>`: each recording folder of the data folder that has an `index.csv`
  (cwru-fan-end-12k, ims-healthy), exported with `lab export-features --recordings` with the
  active model's window; only when the folder exists.

Both models are run in onnxruntime as train.py runs them (train.session), in the variant the
agent runs by default (`int8`; `--variant float` for the float model).

`publish`: `lab model publish` of a package.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import evaluate
from .repo import MODELS, ROOT, SetupError, find_lab, train_module
from .trainset import check as check_trainset
from .trainset import sha256_file

REAL_SETS = ("cwru-fan-end-12k", "ims-healthy")


class RetrainError(RuntimeError):
    pass


class Lost(RuntimeError):
    """The candidate is worse on at least one set; the message names them."""


def default_data_dir() -> Path:
    """$EDGEWATCH_DATA, else the shared data folder beside the repository (as models/train.sh)."""
    return Path(os.environ.get("EDGEWATCH_DATA") or ROOT.parent / "shared" / "data")


def load_active(package: Path | None, manifest: Path | None, variant: str, dest: Path) -> tuple[dict, Path]:
    """The active model's manifest and its `variant` ONNX file (copied out of a package into
    `dest`). A package's signature is not checked here: `lab model verify` does that."""
    if package is not None:
        env = json.loads(Path(package).read_text())
        if env.get("format") != "edgewatch-model-package":
            raise RetrainError(f"{package}: not an edgewatch model package")
        body = json.loads(base64.b64decode(env["body"]))
        man = body["manifest"]
        entry = man["models"][variant]
        dest.mkdir(parents=True, exist_ok=True)
        path = dest / entry["file"]
        path.write_bytes(base64.b64decode(body["files"][entry["file"]]))
        (dest / "manifest.json").write_text(json.dumps(man, indent=1) + "\n")
    else:
        man = json.loads(Path(manifest).read_text())
        path = Path(manifest).parent / man["models"][variant]["file"]
    if sha256_file(path) != man["models"][variant]["sha256"]:
        raise RetrainError(f"{path}: SHA-256 differs from its manifest's")
    return man, path


def window_args(manifest: dict) -> list[str]:
    if manifest.get("window_duration_s"):
        return ["--window-s", f"{manifest['window_duration_s']:g}"]
    if manifest.get("window_length"):
        return ["--window-len", str(manifest["window_length"])]
    return ["--window-s", "1"]


def lab_run(lab: Path, args: list[str], what: str) -> str:
    proc = subprocess.run([str(lab), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RetrainError(f"lab {what} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def export_real(lab: Path, data: Path, work: Path, manifest: dict) -> dict[str, Path]:
    out = {}
    for name in REAL_SETS:
        if (data / name / "index.csv").is_file():
            csv_path = work / f"real-{name}.csv"
            lab_run(lab, ["export-features", "--recordings", str(data / name), "--out", str(csv_path),
                          *window_args(manifest)], f"export-features --recordings {name}")
            out[name] = csv_path
    return out


def _xy(path: Path, feature_names: list[str]):
    """Rows of `path` with columns in `feature_names` order, and class indices."""
    train = train_module()
    features, meta, x = train.read_csv(path)
    missing = [f for f in feature_names if f not in features]
    if missing:
        raise RetrainError(f"{path}: no column {missing[0]} (the model's input)")
    x = x[:, [features.index(f) for f in feature_names]] if len(x) else np.zeros((0, len(feature_names)), np.float32)
    return x, train.labels_to_index(meta["label"])


def predict(model_path: Path, manifest: dict, csv_path: Path) -> tuple[np.ndarray, np.ndarray]:
    train = train_module()
    x, y = _xy(csv_path, manifest["feature_names"])
    if not len(x):
        return y, np.zeros(0, dtype=np.int64)
    return y, train.predict(train.session(model_path), x).argmax(1)


def retrain(trainset_dir: Path, sim_test: Path, out: Path, version: str, key: Path | None,
            active_package: Path | None = None, active_manifest: Path | None = None,
            data: Path | None = None, lab: Path | None = None, variant: str = "int8",
            rule: evaluate.GateRule = evaluate.GateRule(), min_fault_snr_db: float | None = -5.0,
            hidden: str = "64,32", log=sys.stderr) -> dict:
    """Trains, evaluates, writes the card; packages when the gate passes. Raises Lost (after
    writing the card) when it does not. `data`: the folder of real recordings (None: none)."""
    train = train_module()
    ts = check_trainset(trainset_dir)
    lab = find_lab(lab)
    if key is not None and not Path(key).is_file():
        raise SetupError(f"{key}: no signing key (make one with `lab model keygen`)")
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    if active_package is None and active_manifest is None:
        active_manifest = MODELS / "manifest.json"
    active, active_path = load_active(active_package, active_manifest, variant, out / "active")
    real = export_real(lab, data, work, active) if data is not None else {}

    cand_dir = out / "candidate"
    argv = ["--train", str(trainset_dir / "train.csv"), "--test", str(sim_test),
            "--out-dir", str(cand_dir), "--work-dir", str(work), "--version", version,
            "--hidden", hidden, *window_args(active)]
    if min_fault_snr_db is not None:
        argv += ["--min-fault-snr-db", str(min_fault_snr_db)]
    for name, path in real.items():
        argv += ["--real", f"{name}={path}"]
    print(f"retrain: training {version} on {ts['files']['train.csv']['rows']} windows "
          f"({ts['files']['train.csv']['field_rows']} from field labels)", file=log)
    try:
        train.train(train.parse_args(argv))
    except SystemExit as e:
        raise RetrainError(f"models/train.py stopped: {e}") from None
    cand_manifest_path = cand_dir / "manifest.json"
    candidate = json.loads(cand_manifest_path.read_text())
    cand_path = cand_dir / candidate["models"][variant]["file"]
    if candidate["class_names"] != active["class_names"]:
        raise RetrainError("the candidate's classes differ from the active model's: the gate compares recalls by class")

    sets = [("field-heldback", trainset_dir / "heldback.csv"), ("sim-test", Path(sim_test))]
    sets += [(f"real:{name}", path) for name, path in real.items()]
    results = []
    for name, path in sets:
        y, pa = predict(active_path, active, path)
        _, pb = predict(cand_path, candidate, path)
        results.append(evaluate.compare(name, y, pa, pb, candidate["class_names"], rule))
    for name in REAL_SETS:
        if name not in real:
            results.append({"set": f"real:{name}", "windows": 0, "judged": False, "classes": {},
                            "verdict": "not judged", "reasons": ["recordings not present"]})
    passed, reasons = evaluate.gate(results)

    # The training set's lineage travels in the manifest's `training` (the package's trainer).
    candidate["training"]["trainset"] = {
        "dataset_id": ts["dataset_id"], "trainset_sha256": sha256_file(trainset_dir / "trainset.json"),
        "sim_train": ts["sim_train"], "field_train_rows": ts["files"]["train.csv"]["field_rows"],
        "field_heldback_rows": ts["files"]["heldback.csv"]["rows"],
        "labels_used": len(ts["labels"]["used"])}
    cand_manifest_path.write_text(json.dumps(candidate, indent=1) + "\n")

    card = {
        "model_version": version,
        "parent_model_version": active["model_version"],
        "created_unix_ms": int(time.time() * 1000),
        "variant_evaluated": variant,
        "gate": {"rule": rule.as_dict(), "passed": passed, "reasons": reasons},
        "evaluation": results,
        "trainset": {k: ts[k] for k in ("dataset_id", "feature_names", "holdback", "field_weight", "sim_train", "files",
                                         "agent_versions", "feature_versions", "model_versions")},
        "labels_used": ts["labels"]["used"],
        "labels_ignored": ts["labels"]["ignored"],
        "candidate_training": candidate["training"],
        "package": None,
    }
    if passed:
        pkg = out / f"{version}.ewpkg"
        args = ["model", "package", "--manifest", str(cand_manifest_path), "--dataset-id", ts["dataset_id"],
                "--parent", active["model_version"], "--out", str(pkg)]
        if key is not None:
            args += ["--key", str(key)]
        try:
            line = lab_run(lab, args, "model package").strip()
        except RetrainError as e:
            card["package"] = {"error": str(e)}
            write_card(out, card)
            raise
        print(f"retrain: {line}", file=log)
        card["package"] = {"file": pkg.name, "sha256": sha256_file(pkg)}
    write_card(out, card)
    if not passed:
        raise Lost("the candidate is worse than the active model: " + "; ".join(reasons))
    return card


def write_card(out: Path, card: dict) -> None:
    (out / "model-card.json").write_text(json.dumps(card, indent=1) + "\n")
    (out / "model-card.md").write_text(card_markdown(card))


def card_markdown(card: dict) -> str:
    ts = card["trainset"]
    f = ts["files"]
    lines = [
        f"# Model card: {card['model_version']}",
        "",
        f"Parent (active) model: `{card['parent_model_version']}`. Variant compared: {card['variant_evaluated']}. "
        f"Gate: **{'passed' if card['gate']['passed'] else 'FAILED'}**.",
        "",
        "## Training data",
        "",
        f"- training set `{ts['dataset_id']}`: {f['train.csv']['rows']} windows, "
        f"{f['train.csv']['sim_rows']} simulated (`{ts['sim_train']['file']}`, sha256 "
        f"`{ts['sim_train']['sha256'][:16]}`) and {f['train.csv']['field_rows']} from field labels "
        f"(windows per class {json.dumps(f['train.csv']['field_windows_per_class'])}, each written {ts.get('field_weight', 1)} times);",
        f"- held back: {f['heldback.csv']['rows']} field windows ({json.dumps(f['heldback.csv']['field_windows_per_class'])});",
        f"- labels used: {len(card['labels_used'])}, ignored: {len(card['labels_ignored'])}; "
        f"agent versions {', '.join(ts['agent_versions']) or '-'}, feature versions "
        f"{', '.join(map(str, ts['feature_versions'])) or '-'}, models that saw the windows "
        f"{', '.join(ts['model_versions']) or '-'};",
        f"- CSV hashes: train `{f['train.csv']['sha256'][:16]}`, held-back `{f['heldback.csv']['sha256'][:16]}`, "
        f"lineage `{f['lineage.csv']['sha256'][:16]}`.",
        "",
        "## Evaluation, active beside candidate",
        "",
        f"Rule: {json.dumps(card['gate']['rule'])} (models/central/README.md).",
        "",
    ]
    for res in card["evaluation"]:
        lines += [f"### {res['set']}", "", evaluate.markdown_table(res), ""]
    if card["gate"]["reasons"]:
        lines += ["## Why the gate failed", ""] + [f"- {r}" for r in card["gate"]["reasons"]] + [""]
    if card["package"] and "file" in card["package"]:
        lines += ["## Package", "", f"`{card['package']['file']}` (sha256 `{card['package']['sha256']}`).", ""]
    elif card["package"]:
        lines += ["## Package", "", f"Packaging failed: {card['package']['error']}", ""]
    return "\n".join(lines)


def main(args) -> int:
    rule = evaluate.GateRule(args.macro_tolerance, args.class_tolerance, args.z)
    try:
        card = retrain(
            Path(args.trainset), Path(args.sim_test), Path(args.out), args.version,
            Path(args.key) if args.key else None,
            active_package=Path(args.active_package) if args.active_package else None,
            active_manifest=Path(args.active_manifest) if args.active_manifest else None,
            data=None if args.no_real else (Path(args.data) if args.data else default_data_dir()),
            lab=args.lab, variant=args.variant, rule=rule,
            min_fault_snr_db=None if args.min_fault_snr_db == "" else float(args.min_fault_snr_db),
            hidden=args.hidden)
    except Lost as e:
        print(f"retrain: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"model_version": card["model_version"], "package": card["package"],
                      "sets": {r["set"]: r["verdict"] for r in card["evaluation"]}}))
    return 0


def publish_main(args) -> int:
    lab = find_lab(args.lab)
    cmd = [str(lab), "model", "publish", "--package", args.package, "--brokers", args.brokers]
    if args.topic:
        cmd += ["--topic", args.topic]
    for opt in args.kafka_option:
        cmd += ["--kafka-option", opt]
    return subprocess.run(cmd).returncode
