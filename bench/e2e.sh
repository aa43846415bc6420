#!/usr/bin/env bash
# End-to-end benchmark: firmware-sim -> mosquitto -> agent -> tansu with 32 sensors (the
# gateway build: profile release-small, as cross/build.sh and the packages use), then the same
# load through mosquitto_sub piped into a Python librdkafka producer.
# Prints frames/s, CPU, RSS, disk bytes per forwarded byte, latencies, time to the first
# scored window (at start, and after a SIGKILL and restart) and the backlog drain after a broker
# outage. See docs/benchmarks.md.
#
#   bench/e2e.sh [--sensors K] [--seconds S] [--outage-s D] [--summary-interval-s I] [--no-glue]
#
# Needs mosquitto, mosquitto_sub and tansu: scripts/test.sh installs the first and the last;
# this script installs mosquitto-clients when missing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/deps.sh
ensure_build_deps
have mosquitto || apt_install mosquitto
have mosquitto_sub || apt_install mosquitto-clients
VENV=bench/.venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r bench/python/glue-requirements.txt
cargo build --quiet --profile release-small --locked -p edgewatch-agent -p firmware-sim -p edgewatch-tests --bins
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
EDGEWATCH_GLUE_PYTHON="$ROOT/$VENV/bin/python" exec "$TARGET_DIR/release-small/e2e-bench" "$@"
