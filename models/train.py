#!/usr/bin/env python3
"""Train, export, quantise and check the edgewatch fault classifier.

Input: CSVs written by `lab export-features` (simulated machines run through the agent's own
windowing and feature code). Output, in --out-dir:

  edgewatch-classifier.onnx       float32 MLP: Sub/Mul normalisation, MatMul+Add, Relu, Softmax
  edgewatch-classifier.int8.onnx  the same, QDQ-quantised (MatMul only) by onnxruntime
  manifest.json                   features, classes, normalisation, thresholds, version, sha256,
                                  the training distribution of each input (input_distribution)
  golden.json                     fixed inputs and onnxruntime's outputs for both models
  agreement-set.csv               held-out inputs for the int8-vs-float agreement test
  report.md                       accuracy per class, agreement, real-data preview

Everything is deterministic for given CSVs and pinned package versions. `train(parse_args([...]))`
runs the same from Python (models/central's retrain does). Intermediate files
(the QOperator variant checked in tract, calibration data) go to --work-dir.

Real recordings (--real NAME=CSV, exported with `lab export-features --recordings DIR`) are
only *evaluated* and reported; they never influence training or thresholds.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from sklearn.neural_network import MLPClassifier

CLASS_NAMES = [
    "normal",
    "outer",
    "inner",
    "ball",
    "imbalance",
    "misalignment",
    "looseness",
    "overheating",
]
META_COLUMNS = ["case", "label", "severity", "fault_snr_db", "sample_rate_hz", "rpm", "channel", "start_s"]
FLOAT_FILE = "edgewatch-classifier.onnx"
INT8_FILE = "edgewatch-classifier.int8.onnx"
INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
OPSET = 17
IR_VERSION = 8  # onnx 1.23 writes IR 14, which onnxruntime 1.31 refuses


def read_csv(path: Path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if header[: len(META_COLUMNS)] != META_COLUMNS:
            sys.exit(f"{path}: unexpected columns {header[:len(META_COLUMNS)]}")
        rows = list(reader)
    features = header[len(META_COLUMNS):]
    meta = {name: [r[i] for r in rows] for i, name in enumerate(META_COLUMNS)}
    x = np.array([[float(v) for v in r[len(META_COLUMNS):]] for r in rows], dtype=np.float32)
    return features, meta, x


def labels_to_index(labels):
    index = {name: i for i, name in enumerate(CLASS_NAMES)}
    return np.array([index[label] for label in labels], dtype=np.int64)


def build_onnx(mean, scale, coefs, intercepts) -> onnx.ModelProto:
    """The float graph, built node by node so every op is one tract runs as measured."""
    n_in = len(mean)
    inits = [
        numpy_helper.from_array(mean.astype(np.float32), "norm_mean"),
        numpy_helper.from_array(scale.astype(np.float32), "norm_scale"),
    ]
    nodes = [
        helper.make_node("Sub", [INPUT_NAME, "norm_mean"], ["centred"], name="normalise_sub"),
        helper.make_node("Mul", ["centred", "norm_scale"], ["h0"], name="normalise_mul"),
    ]
    last = "h0"
    for k, (w, b) in enumerate(zip(coefs, intercepts)):
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"w{k + 1}"))
        inits.append(numpy_helper.from_array(b.astype(np.float32), f"b{k + 1}"))
        nodes.append(helper.make_node("MatMul", [last, f"w{k + 1}"], [f"mm{k + 1}"], name=f"matmul{k + 1}"))
        is_last = k == len(coefs) - 1
        out = "logits" if is_last else f"pre{k + 1}"
        nodes.append(helper.make_node("Add", [f"mm{k + 1}", f"b{k + 1}"], [out], name=f"bias{k + 1}"))
        if not is_last:
            nodes.append(helper.make_node("Relu", [out], [f"h{k + 1}"], name=f"relu{k + 1}"))
            last = f"h{k + 1}"
    nodes.append(helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], axis=-1, name="softmax"))
    graph = helper.make_graph(
        nodes,
        "edgewatch_classifier",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", len(CLASS_NAMES)])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="edgewatch models/train.py",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


class Calibration(CalibrationDataReader):
    def __init__(self, x: np.ndarray, batch: int = 64):
        self.batches = [x[i:i + batch] for i in range(0, len(x), batch)]
        self.i = 0

    def get_next(self):
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {INPUT_NAME: self.batches[self.i - 1]}

    def rewind(self):
        self.i = 0


# Static calibrations tried for the shipped QDQ model; the one whose int8 model agrees best
# with the float model on training windows outside the calibration slice is shipped.
CALIBRATIONS = [("MinMax", None), ("Percentile", 99.99), ("Percentile", 99.9)]


def quantise(float_path: Path, out_path: Path, work: Path, calib: np.ndarray, fmt: QuantFormat,
             calibration=("MinMax", None)):
    """int8 with onnxruntime's static quantisation, MatMul only.

    QDQ: the MatMul *outputs* are not quantised again. The bias Add and Relu after them run in
    float anyway, so re-quantising the product to 8 bits before them only adds rounding error
    (without it, int8/float agreement on the held-out windows was 0.5-1.5 points lower in each
    of six calibration and per-channel settings measured, in optimised onnxruntime). The
    activations feeding each MatMul and its weights are int8 as before. QOperator's
    QLinearMatMul has a quantised output by definition.
    """
    pre = work / "pre-quant.onnx"
    # skip_optimization: otherwise onnxruntime fuses MatMul+Add into Gemm/QGemm.
    # skip_symbolic_shape: the shapes are static; symbolic inference would need sympy.
    quant_pre_process(str(float_path), str(pre), skip_optimization=True, skip_symbolic_shape=True)
    method, percentile = calibration
    extra = {}
    if fmt == QuantFormat.QDQ:
        extra["OpTypesToExcludeOutputQuantization"] = ["MatMul"]
    if percentile is not None:
        extra["CalibPercentile"] = percentile
    quantize_static(
        str(pre),
        str(out_path),
        # One window per batch: the percentile calibrator needs batches of one shape.
        Calibration(calib, batch=1),
        quant_format=fmt,
        op_types_to_quantize=["MatMul"],  # never Softmax: tract then computes wrong probabilities
        per_channel=False,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=getattr(CalibrationMethod, method),
        extra_options=extra,
    )
    model = onnx.load(str(out_path))
    model.ir_version = IR_VERSION
    # The pre-processing writes intermediate shapes with the symbolic batch; tract, given a
    # fixed [1, N] input, refuses to unify them ("Sym(batch) with Val(1)"). Its own shape
    # inference needs none of them.
    del model.graph.value_info[:]
    onnx.save(model, str(out_path))


def calibration_name(calibration) -> str:
    method, percentile = calibration
    return method if percentile is None else f"{method} {percentile:g}"


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    # The graph's own arithmetic, without onnxruntime's fused int8 kernels: on x86 without VNNI
    # those deviate from it (golden case 0 of the int8 model: P(normal) 0.2684 optimised, 0.2565
    # unoptimised, in a numpy re-implementation of the QDQ graph and in tract). Golden outputs,
    # agreement and the calibration choice must describe what the graph computes, as tract does.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def predict(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    return sess.run([OUTPUT_NAME], {INPUT_NAME: x.astype(np.float32)})[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def per_class_table(y_true, y_pred, names):
    lines = ["| class | windows | correct | accuracy | most confused with |", "|---|---:|---:|---:|---|"]
    for i, name in enumerate(names):
        mask = y_true == i
        n = int(mask.sum())
        if n == 0:
            continue
        ok = int((y_pred[mask] == i).sum())
        wrong = Counter(names[j] for j in y_pred[mask] if j != i).most_common(2)
        confused = ", ".join(f"{c} {k}" for c, k in wrong) or "-"
        lines.append(f"| {name} | {n} | {ok} | {100 * ok / n:.1f} % | {confused} |")
    ok = int((y_true == y_pred).sum())
    lines.append(f"| **all** | {len(y_true)} | {ok} | {100 * ok / len(y_true):.1f} % | |")
    return "\n".join(lines)


def confusion(y_true, y_pred, names):
    m = np.zeros((len(names), len(names)), dtype=int)
    for t, p in zip(y_true, y_pred):
        m[t, p] += 1
    head = "| true \\ predicted | " + " | ".join(names) + " |"
    lines = [head, "|---|" + "---:|" * len(names)]
    for i, name in enumerate(names):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in m[i]) + " |")
    return "\n".join(lines)


def severity_table(y_true, y_pred, severity, normal_prob, threshold):
    """Per fault class and severity band: exact class accuracy and detection (flagged abnormal)."""
    bands = [(0.15, 0.3), (0.3, 0.5), (0.5, 0.75), (0.75, 1.01)]
    lines = ["| class | " + " | ".join(f"sev {a:.2f}-{min(b, 1):.2f}" for a, b in bands) + " |",
             "|---|" + "---:|" * len(bands)]
    for i, name in enumerate(CLASS_NAMES):
        if name in ("normal", "overheating"):
            continue
        cells = []
        for a, b in bands:
            mask = (y_true == i) & (severity >= a) & (severity < b)
            n = int(mask.sum())
            if n == 0:
                cells.append("-")
                continue
            acc = (y_pred[mask] == i).mean()
            det = (normal_prob[mask] < threshold).mean()
            cells.append(f"{100 * acc:.0f} % / {100 * det:.0f} % (n={n})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def real_preview(name, meta, x, sess_f, sess_q, threshold, window):
    """Window and recording-level view of a folder of real recordings."""
    out = {}
    lines = [f"### {name}", ""]
    for variant, sess in (("float", sess_f), ("int8", sess_q)):
        p = predict(sess, x)
        pred = p.argmax(axis=1)
        flagged = p[:, 0] < threshold
        labels = np.array(meta["label"])
        files = np.array(meta["channel"])
        by_file = defaultdict(list)
        for f, lab, pr, fl in zip(files, labels, pred, flagged):
            by_file[f].append((lab, pr, fl))
        rec_rows = []
        for f, items in by_file.items():
            lab = items[0][0]
            majority = Counter(CLASS_NAMES[pr] for _, pr, _ in items).most_common(1)[0][0]
            frac_flagged = np.mean([fl for _, _, fl in items])
            rec_rows.append((f, lab, len(items), frac_flagged, majority))
        fault = labels != "normal"
        res = {
            "windows": int(len(x)),
            "windows_flagged": float(flagged.mean()),
            "windows_predicted_normal": float((pred == 0).mean()),
        }
        if fault.any():
            res["fault_windows_flagged"] = float(flagged[fault].mean())
            recs = [r for r in rec_rows if r[1] != "normal"]
            res["fault_recordings"] = len(recs)
            res["fault_recordings_majority_fault_class"] = int(sum(r[4] != "normal" for r in recs))
            res["fault_recordings_majority_flagged"] = int(sum(r[3] > 0.5 for r in recs))
            per_label = {}
            for lab in sorted(set(r[1] for r in recs)):
                rr = [r for r in recs if r[1] == lab]
                per_label[lab] = {
                    "recordings": len(rr),
                    "majority_flagged": int(sum(r[3] > 0.5 for r in rr)),
                    "majority_class": dict(Counter(r[4] for r in rr)),
                }
                mask = labels == lab
                per_label[lab]["windows_flagged"] = float(flagged[mask].mean())
                per_label[lab]["window_classes"] = dict(Counter(CLASS_NAMES[k] for k in pred[mask]))
            res["per_label"] = per_label
        else:
            res["window_classes"] = dict(Counter(CLASS_NAMES[k] for k in pred))
        out[variant] = res
    f = out["float"]
    q = out["int8"]
    lines.append(f"{f['windows']} windows of {window} (the export's window, 50 % overlap).")
    lines.append("")
    lines.append("| measure | float | int8 |")
    lines.append("|---|---:|---:|")
    lines.append(f"| windows flagged abnormal (P(normal) < {threshold}) | {100 * f['windows_flagged']:.1f} % | {100 * q['windows_flagged']:.1f} % |")
    lines.append(f"| windows classified `normal` | {100 * f['windows_predicted_normal']:.1f} % | {100 * q['windows_predicted_normal']:.1f} % |")
    if "fault_recordings" in f:
        n = f["fault_recordings"]
        lines.append(f"| fault recordings flagged by majority of windows | {f['fault_recordings_majority_flagged']}/{n} ({100 * f['fault_recordings_majority_flagged'] / n:.1f} %) | {q['fault_recordings_majority_flagged']}/{n} ({100 * q['fault_recordings_majority_flagged'] / n:.1f} %) |")
        lines.append(f"| fault recordings whose majority class is a fault | {f['fault_recordings_majority_fault_class']}/{n} | {q['fault_recordings_majority_fault_class']}/{n} |")
        lines.append("")
        lines.append("Per label (float model): recordings flagged by majority, windows flagged, window classes")
        lines.append("")
        lines.append("| label | recordings flagged | windows flagged | window classes |")
        lines.append("|---|---:|---:|---|")
        for lab, d in f["per_label"].items():
            classes = ", ".join(f"{k} {v}" for k, v in sorted(d["window_classes"].items(), key=lambda kv: -kv[1]))
            lines.append(f"| {lab} | {d['majority_flagged']}/{d['recordings']} | {100 * d['windows_flagged']:.1f} % | {classes} |")
    else:
        classes = ", ".join(f"{k} {v}" for k, v in sorted(f["window_classes"].items(), key=lambda kv: -kv[1]))
        lines.append("")
        lines.append(f"Window classes (float): {classes}")
    lines.append("")
    return out, "\n".join(lines)


# Cumulative probabilities of the training quantiles written to the manifest (the deciles, with
# the minimum and maximum at 0 and 1): the agent's input-drift check (analyze::drift) bins live
# inputs between them. Written as i/10 so each is the decimal it names.
INPUT_DISTRIBUTION_PROBABILITIES = [i / 10 for i in range(11)]


def input_distribution(x: np.ndarray, probabilities=INPUT_DISTRIBUTION_PROBABILITIES) -> dict:
    """The training distribution of each model input, from the raw (unnormalised) rows `x`.

    One list of quantiles per input (columns of `x`, the manifest's feature order), at
    `probabilities`; numpy's linear interpolation, so probability 0 and 1 are exactly the
    smallest and largest training value and no training window is outside the range.
    """
    q = np.quantile(x.astype(np.float64), probabilities, axis=0)
    return {"probabilities": list(probabilities), "quantiles": q.T.tolist()}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, required=True, help="CSV from agent export-features (training seed)")
    ap.add_argument("--test", type=Path, required=True, help="CSV from agent export-features (another seed)")
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--work-dir", type=Path, required=True)
    ap.add_argument("--version", required=True, help="model version written into the manifest")
    ap.add_argument("--real", action="append", default=[], metavar="NAME=CSV",
                    help="recordings exported with --recordings, evaluated for the report only")
    ap.add_argument("--extra-train", action="append", default=[], metavar="NAME=CSV",
                    help="recordings exported with --recordings, added to the training windows "
                         "with their index labels (leave-one-family-out experiments; the shipped "
                         "model uses none)")
    ap.add_argument("--hidden", default="64,32", help="hidden layer sizes")
    ap.add_argument("--threshold", type=float, default=0.5,
                    help="flag a window when P(normal) is below this")
    ap.add_argument("--agreement-rows", type=int, default=2000)
    ap.add_argument("--window-len", type=int, default=None,
                    help="window length (samples) the exports were cut with (lab export-features "
                         "--window-len); written to the manifest as window_length")
    ap.add_argument("--window-s", type=float, default=None,
                    help="window duration (s) the exports were cut with (lab export-features "
                         "--window-s; the agent's default [window] duration_s = 1); written to "
                         "the manifest as window_duration_s")
    ap.add_argument("--min-fault-snr-db", type=float, default=None,
                    help="train vibration-fault windows whose fault_snr_db is below this as normal "
                         "(default: off; the labels are the simulated classes)")
    return ap.parse_args(argv)


def train(args: argparse.Namespace) -> dict:
    """Everything `main` does, for the arguments `parse_args` returns; returns the summary
    (also written to work-dir/summary.json). Exits (SystemExit) on bad input, as the script."""
    args.out_dir.mkdir(parents=True, exist_ok=True)
    args.work_dir.mkdir(parents=True, exist_ok=True)

    features, meta_tr, x_tr = read_csv(args.train)
    features_te, meta_te, x_te = read_csv(args.test)
    if features != features_te:
        sys.exit("train and test CSVs have different feature columns")
    y_tr = labels_to_index(meta_tr["label"])
    relabelled = 0
    if args.min_fault_snr_db is not None:
        # A fault window the fault barely changes is, to anything that sees one window, a
        # healthy one: teaching it as a fault teaches the model to call healthy windows faults.
        snr = np.array([float(v) if v else np.nan for v in meta_tr["fault_snr_db"]])
        faint = ~np.isnan(snr) & (snr < args.min_fault_snr_db)
        relabelled = int(faint.sum())
        y_tr = np.where(faint, 0, y_tr)
        print(f"{relabelled} fault windows under {args.min_fault_snr_db} dB trained as normal", file=sys.stderr)
    for spec in args.extra_train:
        name, path = spec.split("=", 1)
        features_x, meta_x, x_x = read_csv(Path(path))
        if features_x != features:
            sys.exit(f"{name}: different feature columns")
        x_tr = np.concatenate([x_tr, x_x])
        y_tr = np.concatenate([y_tr, labels_to_index(meta_x["label"])])
        print(f"{name}: {len(x_x)} recorded windows added to training", file=sys.stderr)
    y_te = labels_to_index(meta_te["label"])
    print(f"train {len(x_tr)} windows, test {len(x_te)} windows, {len(features)} inputs", file=sys.stderr)

    # Normalisation: plain float Sub/Mul in the graph, never folded into the weights.
    mean = x_tr.mean(axis=0).astype(np.float64)
    std = x_tr.std(axis=0).astype(np.float64)
    scale = 1.0 / np.where(std > 1e-6, std, 1.0)
    xn_tr = ((x_tr - mean) * scale).astype(np.float32)

    hidden = tuple(int(h) for h in args.hidden.split(","))
    clf = MLPClassifier(
        hidden_layer_sizes=hidden,
        activation="relu",
        alpha=1e-3,
        batch_size=256,
        learning_rate_init=1e-3,
        max_iter=400,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=25,
        random_state=0,
    )
    clf.fit(xn_tr, y_tr)
    if list(clf.classes_) != list(range(len(CLASS_NAMES))):
        sys.exit(f"training data lacks classes: {clf.classes_}")
    print(f"trained {hidden}: {clf.n_iter_} epochs, best validation {clf.best_validation_score_:.4f}", file=sys.stderr)

    float_path = args.out_dir / FLOAT_FILE
    int8_path = args.out_dir / INT8_FILE
    model = build_onnx(mean.astype(np.float32), scale.astype(np.float32), clf.coefs_, clf.intercepts_)
    onnx.save(model, str(float_path))

    # Calibration: a fixed, class-balanced slice of the training data.
    rng = np.random.default_rng(0)
    calib_idx = np.concatenate([
        rng.choice(np.flatnonzero(y_tr == k), size=min(250, int((y_tr == k).sum())), replace=False)
        for k in range(len(CLASS_NAMES))
    ])
    calib = x_tr[np.sort(calib_idx)]
    # The calibration is chosen on training windows outside the calibration slice, never on
    # the held-out test set the agreement is reported on.
    val = x_tr[np.setdiff1d(np.arange(len(x_tr)), calib_idx)]
    sess_f = session(float_path)
    val_f = predict(sess_f, val).argmax(1)
    calibration_agreement = []
    for calibration in CALIBRATIONS:
        quantise(float_path, int8_path, args.work_dir, calib, QuantFormat.QDQ, calibration)
        agree = float((predict(session(int8_path), val).argmax(1) == val_f).mean())
        calibration_agreement.append((agree, calibration))
        print(f"calibration {calibration_name(calibration)}: int8/float agreement {agree:.4f} "
              f"on {len(val)} training windows outside the calibration slice", file=sys.stderr)
    chosen = max(calibration_agreement, key=lambda a: a[0])[1]
    quantise(float_path, int8_path, args.work_dir, calib, QuantFormat.QDQ, chosen)
    qop_path = args.work_dir / "edgewatch-classifier.qoperator.onnx"
    quantise(float_path, qop_path, args.work_dir, calib, QuantFormat.QOperator, chosen)

    sess_q, sess_o = session(int8_path), session(qop_path)
    p_f, p_q, p_o = predict(sess_f, x_te), predict(sess_q, x_te), predict(sess_o, x_te)
    # sklearn and the exported graph must agree (the export is the model).
    p_sk = clf.predict_proba(((x_te - mean) * scale).astype(np.float32))
    export_err = float(np.abs(p_sk - p_f).max())
    if export_err > 1e-4:
        sys.exit(f"exported graph differs from scikit-learn by {export_err}")
    pred_f, pred_q, pred_o = p_f.argmax(1), p_q.argmax(1), p_o.argmax(1)
    agree_q = float((pred_f == pred_q).mean())
    agree_o = float((pred_f == pred_o).mean())
    print(f"test accuracy float {np.mean(pred_f == y_te):.4f}, int8 {np.mean(pred_q == y_te):.4f}; "
          f"int8/float class agreement QDQ {agree_q:.4f}, QOperator {agree_o:.4f}", file=sys.stderr)

    # Golden cases: per class, the first test window of that class, plus an all-zero vector.
    golden_idx = [int(np.flatnonzero(y_te == k)[0]) for k in range(len(CLASS_NAMES))]
    golden_x = np.vstack([x_te[golden_idx], np.zeros((1, len(features)), dtype=np.float32)])
    gf, gq, go = predict(sess_f, golden_x), predict(sess_q, golden_x), predict(sess_o, golden_x)
    golden = {
        "model_version": args.version,
        "comment": "inputs in manifest feature order; outputs computed by onnxruntime "
                   f"{ort.__version__} (CPU, one thread) for the committed float and int8 models",
        "tolerance": 2e-3,
        "cases": [
            {"inputs": golden_x[i].tolist(), "float": gf[i].tolist(), "int8": gq[i].tolist()}
            for i in range(len(golden_x))
        ],
    }
    (args.out_dir / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")

    # Agreement set: a fixed, class-balanced sample of held-out windows.
    per = max(1, args.agreement_rows // len(CLASS_NAMES))
    agree_idx = np.sort(np.concatenate([
        rng.choice(np.flatnonzero(y_te == k), size=min(per, int((y_te == k).sum())), replace=False)
        for k in range(len(CLASS_NAMES))
    ]))
    with open(args.out_dir / "agreement-set.csv", "w", newline="") as f:
        f.write(",".join(features) + "\n")
        for row in x_te[agree_idx]:
            f.write(",".join(repr(float(v)) for v in row) + "\n")

    normal_f = p_f[:, 0]
    threshold = args.threshold
    thresholds = {"flag_when_normal_below": threshold, "min_class_probability": 0.5}
    manifest = {
        "model_version": args.version,
        "description": "MLP fault classifier over the agent's normalised window features",
        "feature_names": features,
        "class_names": CLASS_NAMES,
        **({"window_length": args.window_len} if args.window_len else {}),
        **({"window_duration_s": args.window_s} if args.window_s else {}),
        "normalisation": {
            "applied_in_graph": True,
            "formula": "(x - mean) * scale",
            "mean": [float(np.float32(v)) for v in mean],
            "scale": [float(np.float32(v)) for v in scale],
        },
        "thresholds": thresholds,
        "input": {"name": INPUT_NAME, "shape": ["batch", len(features)], "dtype": "float32"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(CLASS_NAMES)], "dtype": "float32"},
        "architecture": {"hidden": list(hidden), "activation": "relu", "output": "softmax"},
        "input_distribution": input_distribution(x_tr),
        "models": {
            "float": {"file": FLOAT_FILE, "sha256": sha256(float_path),
                      "format": f"ONNX IR {IR_VERSION} opset {OPSET}, float32"},
            "int8": {"file": INT8_FILE, "sha256": sha256(int8_path),
                     "format": "QDQ, MatMul only, u8 activations / s8 weights per tensor, "
                               f"static {calibration_name(chosen)} calibration, MatMul outputs "
                               "not re-quantised; Sub/Mul/Add/Relu/Softmax stay float"},
        },
        "training": {
            "train_windows": int(len(x_tr)),
            "test_windows": int(len(x_te)),
            "epochs": int(clf.n_iter_),
            **({"min_fault_snr_db": args.min_fault_snr_db, "relabelled_normal": relabelled}
               if args.min_fault_snr_db is not None else {}),
            "packages": {"numpy": np.__version__, "onnx": onnx.__version__,
                         "onnxruntime": ort.__version__,
                         "scikit-learn": __import__("sklearn").__version__},
        },
    }
    (args.out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")

    # Candidate formats for the tract check (cargo test ... model::tests::candidate_formats).
    check = dict(manifest)
    for src in (float_path, int8_path):
        (args.work_dir / src.name).write_bytes(src.read_bytes())
    check["models"] = {
        "float": manifest["models"]["float"],
        "qdq": manifest["models"]["int8"],
        "qoperator": {"file": qop_path.name, "sha256": sha256(qop_path),
                      "format": "QOperator (QLinearMatMul), MatMul only"},
    }
    (args.work_dir / "check-manifest.json").write_text(json.dumps(check, indent=1) + "\n")
    with open(args.work_dir / "check-set.csv", "w") as f:
        f.write(",".join(["float", "qdq", "qoperator"] + features) + "\n")
        for i in agree_idx:
            f.write(",".join([str(int(pred_f[i])), str(int(pred_q[i])), str(int(pred_o[i]))]
                             + [repr(float(v)) for v in x_te[i]]) + "\n")

    # Report.
    severity = np.array([float(s) for s in meta_te["severity"]])
    rates = np.array([float(s) for s in meta_te["sample_rate_hz"]])
    rep = [
        f"# Classifier report: {args.version}",
        "",
        f"Generated by `models/train.py`. Training: {len(x_tr)} windows "
        f"({len(set(meta_tr['case']))} simulated machines); held-out test: {len(x_te)} windows "
        f"({len(set(meta_te['case']))} machines drawn with another seed). MLP {hidden}, "
        f"{clf.n_iter_} epochs.",
        "",
        "## Held-out simulated data, float model",
        "",
        per_class_table(y_te, pred_f, CLASS_NAMES),
        "",
        "## Held-out simulated data, int8 model",
        "",
        per_class_table(y_te, pred_q, CLASS_NAMES),
        "",
        "## Confusion (float)",
        "",
        confusion(y_te, pred_f, CLASS_NAMES),
        "",
        f"## By severity (float): exact class / flagged abnormal (P(normal) < {threshold})",
        "",
        severity_table(y_te, pred_f, severity, normal_f, threshold),
        "",
        "## By sample rate (float, exact class)",
        "",
        "| sample rate | windows | accuracy | normal windows flagged |",
        "|---|---:|---:|---:|",
    ]
    for r in sorted(set(rates)):
        m = rates == r
        fp = (normal_f[m & (y_te == 0)] < threshold).mean()
        rep.append(f"| {r / 1000:g} kHz | {int(m.sum())} | {100 * (pred_f[m] == y_te[m]).mean():.1f} % | {100 * fp:.1f} % |")
    fp_all = (normal_f[y_te == 0] < threshold).mean()
    det_all = (normal_f[y_te != 0] < threshold).mean()
    rep += [
        "",
        f"Held-out normal windows flagged: {100 * fp_all:.2f} %; abnormal windows flagged: {100 * det_all:.2f} %.",
        "",
        "## int8 versus float (onnxruntime)",
        "",
        f"Same class on {100 * agree_q:.2f} % of the {len(x_te)} held-out windows (QDQ, shipped); "
        f"QOperator form: {100 * agree_o:.2f} %. Largest probability difference QDQ "
        f"{np.abs(p_f - p_q).max():.4f}.",
        "",
        f"Calibration (QDQ, chosen by agreement on the {len(val)} training windows outside the "
        "calibration slice; the held-out windows above played no part):",
        "",
        "| calibration | agreement on those training windows |",
        "|---|---:|",
    ]
    rep += [f"| {calibration_name(c)}{' (shipped)' if c == chosen else ''} | {100 * a:.2f} % |"
            for a, c in calibration_agreement]
    rep.append("")
    previews = {}
    if args.real:
        rep += ["## Real recordings (validation only, never used for training or thresholds)", ""]
    for spec in args.real:
        name, path = spec.split("=", 1)
        _, meta_r, x_r = read_csv(Path(path))
        window = f"{args.window_s:g} s" if args.window_s else f"{args.window_len} samples"
        res, text = real_preview(name, meta_r, x_r, sess_f, sess_q, threshold, window)
        previews[name] = res
        rep.append(text)
    (args.out_dir / "report.md").write_text("\n".join(rep) + "\n")
    summary = {
        "test_accuracy_float": float((pred_f == y_te).mean()),
        "test_accuracy_int8": float((pred_q == y_te).mean()),
        "agreement_qdq": agree_q,
        "agreement_qoperator": agree_o,
        "calibration": calibration_name(chosen),
        "real": previews,
    }
    (args.work_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "real"}), file=sys.stderr)
    for name, res in previews.items():
        print(name, json.dumps({v: {k: x for k, x in r.items() if k != "per_label"} for v, r in res.items()}),
              file=sys.stderr)
    return summary


def main():
    train(parse_args())


if __name__ == "__main__":
    main()
