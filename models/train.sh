#!/bin/sh
# Reproduces the committed classifier in models/ from scratch:
#
#   models/train.sh                 # from the repository root (or anywhere: it finds the root)
#
# 1. creates models/.venv and installs the pinned requirements (numpy, scikit-learn, onnx,
#    onnxruntime; no PyTorch),
# 2. exports labelled feature vectors with the agent's own code
#    (`lab export-features`: simulated machines -> windowing -> features), one seed for
#    training and another for the held-out test,
# 3. trains the MLP, exports float ONNX, quantises to int8 (QDQ) and QOperator, writes
#    manifest.json, golden.json, agreement-set.csv and report.md (models/train.py),
# 4. checks every candidate format in tract against onnxruntime and times it (release build),
# 5. runs the agent's model tests against the new artifacts,
# 6. packages the model with its lineage and signs it: models/edgewatch-classifier.ewpkg
#    (`lab model package`; `lab model publish` puts it on the models topic).
#
# Real recordings are optional and only evaluated for the report: set EDGEWATCH_DATA to a
# folder holding cwru-fan-end-12k/ and ims-healthy/ (default: ../shared/data beside the
# repository, used when present). Nothing is trained or tuned on them.
#
# Environment (the defaults reproduce the committed model): CASES_PER_CLASS (default 120),
# TEST_CASES_PER_CLASS (40), WINDOWS_PER_CASE (6), WINDOW_S (1, the agent's default
# [window] duration_s; recorded in the manifest as window_duration_s), or WINDOW_LEN (a fixed
# sample count instead, recorded as window_length), THREADS (all cores), MODEL_VERSION
# (edgewatch-classifier-4), PYTHON (python3), MIN_FAULT_SNR_DB (-5: vibration-fault windows
# whose fault is quieter than this, dB against the same machine without it, are trained as
# normal; set it empty to train the simulated labels as they are: see docs/model.md),
# SIGNING_KEY (the secret key that signs the package; default models/keys/test.key, the
# committed TEST key: a plant signs with its own, see models/keys/README.md),
# PARENT_MODEL_VERSION (the lineage's parent model; default none).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MODELS=models
WORK=models/work
VENV=models/.venv
PYTHON=${PYTHON:-python3}
CASES_PER_CLASS=${CASES_PER_CLASS:-120}
TEST_CASES_PER_CLASS=${TEST_CASES_PER_CLASS:-40}
WINDOWS_PER_CASE=${WINDOWS_PER_CASE:-6}
WINDOW_LEN=${WINDOW_LEN:-}
WINDOW_S=${WINDOW_S:-1}
if [ -n "$WINDOW_LEN" ]; then
    WINDOW_ARGS="--window-len $WINDOW_LEN"
else
    WINDOW_ARGS="--window-s $WINDOW_S"
fi
MODEL_VERSION=${MODEL_VERSION:-edgewatch-classifier-4}
MIN_FAULT_SNR_DB=${MIN_FAULT_SNR_DB--5}
DATA=${EDGEWATCH_DATA:-../shared/data}
THREADS_ARG=""
if [ -n "${THREADS:-}" ]; then THREADS_ARG="--threads $THREADS"; fi

mkdir -p "$WORK"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$MODELS/requirements.txt"

cargo build --release -p edgewatch-lab
export_features() {
    # shellcheck disable=SC2086
    cargo run --quiet --release -p edgewatch-lab --bin lab -- export-features $WINDOW_ARGS "$@"
}
# shellcheck disable=SC2086
export_features --out "$WORK/train.csv" --seed 1 --cases-per-class "$CASES_PER_CLASS" \
    --windows-per-case "$WINDOWS_PER_CASE" $THREADS_ARG
# shellcheck disable=SC2086
export_features --out "$WORK/test.csv" --seed 2 --cases-per-class "$TEST_CASES_PER_CLASS" \
    --windows-per-case "$WINDOWS_PER_CASE" $THREADS_ARG

set --
for name in cwru-fan-end-12k ims-healthy; do
    if [ -f "$DATA/$name/index.csv" ]; then
        export_features --recordings "$DATA/$name" --out "$WORK/real-$name.csv"
        set -- "$@" --real "$name=$WORK/real-$name.csv"
    fi
done

"$VENV/bin/python" "$MODELS/train.py" \
    --train "$WORK/train.csv" --test "$WORK/test.csv" \
    --out-dir "$MODELS" --work-dir "$WORK" --version "$MODEL_VERSION" $WINDOW_ARGS \
    ${MIN_FAULT_SNR_DB:+--min-fault-snr-db "$MIN_FAULT_SNR_DB"} "$@"

# tract versus onnxruntime for QDQ and QOperator, and inference time (release build).
EDGEWATCH_MODEL_CHECK="$ROOT/$WORK/check-manifest.json" \
    cargo test --quiet --release -p edgewatch-agent --lib -- --ignored candidate_formats \
    --nocapture --test-threads 1 | grep "^|" | tee "$WORK/tract-check.md"
{
    echo
    echo "## Formats in tract (release build, one thread, batch 1)"
    echo
    cat "$WORK/tract-check.md"
} >> "$MODELS/report.md"

# The committed-artifact tests (golden outputs, agreement, refusal of bad models).
cargo test --quiet --release -p edgewatch-agent --lib analyze::model::

# The model as a signed package (docs/model.md, model lifecycle), with its lineage: the
# training set's id (its export parameters) and size (the manifest's training.train_windows),
# the code revision (git HEAD), the trainer's parameters (the manifest's training).
if [ -n "$WINDOW_LEN" ]; then WINDOW_TAG="len$WINDOW_LEN"; else WINDOW_TAG="${WINDOW_S}s"; fi
DATASET_ID="lab-export-features:seed=1,cases-per-class=$CASES_PER_CLASS,windows-per-case=$WINDOWS_PER_CASE,window=$WINDOW_TAG"
cargo run --quiet --release -p edgewatch-lab --bin lab -- model package \
    --manifest "$MODELS/manifest.json" --dataset-id "$DATASET_ID" \
    ${PARENT_MODEL_VERSION:+--parent "$PARENT_MODEL_VERSION"} \
    --key "${SIGNING_KEY:-models/keys/test.key}" --out "$MODELS/edgewatch-classifier.ewpkg"

echo "done: $MODELS/report.md, $MODELS/edgewatch-classifier.ewpkg"
