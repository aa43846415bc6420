#!/bin/sh
# The agent against a Python reference pipeline (numpy features + onnxruntime) on the same
# synthetic recordings: checks both compute the same features, then prints windows per second
# per core, peak RSS and their ratios. See docs/benchmarks.md.
#
#   bench/compare-python.sh          (from anywhere in the repository)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
VENV=bench/.venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r bench/python/requirements.txt
cargo build --quiet --release -p edgewatch-lab
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$VENV/bin/python" bench/python/compare.py --agent "$TARGET_DIR/release/lab" "$@"
