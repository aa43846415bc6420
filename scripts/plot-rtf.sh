#!/bin/sh
# Run-to-failure plots for docs/model.md ("Run to failure"):
#
#   scripts/plot-rtf.sh [DATA]     # DATA: the femto-learning folder (default ../shared/data/femto-learning)
#
# Runs `lab eval-rtf` over DATA, then scripts/plot_rtf.py (matplotlib, pinned in
# scripts/plot-requirements.txt, installed into scripts/.venv-plot) writes docs/img/rtf-*.png.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DATA=${1:-../shared/data/femto-learning}
WORK=target/rtf
VENV=scripts/.venv-plot
mkdir -p "$WORK"
cargo run --quiet --release -p edgewatch-lab --bin lab -- eval-rtf --data "$DATA" \
    --out "$WORK/rtf.csv" --trace "$WORK/rtf-trace.csv"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/plot-requirements.txt
"$VENV/bin/python" scripts/plot_rtf.py --rows "$WORK/rtf.csv" --trace "$WORK/rtf-trace.csv" --out-dir docs/img
