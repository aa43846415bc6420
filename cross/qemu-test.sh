#!/usr/bin/env bash
# Runs the cross-built agent under qemu-user and checks it against the native build:
#  1. `agent validate` on the example config,
#  2. `agent run` starts its pipeline under emulation and drains cleanly on SIGTERM,
#  3. the same recorded simulator input (firmware-sim, native) through `lab replay-features` (the agent's
#     decoder, windowing and features in the lab binary)
#     natively and under qemu gives the same windows and the same features (compare_features.py:
#     identical window keys, numeric features within the stated tolerance).
#
# Usage: cross/qemu-test.sh aarch64|armv7 [NATIVE_BIN_DIR]
#   NATIVE_BIN_DIR holds native `agent`, `lab` and `firmware-sim` (default: $CARGO_TARGET_DIR/debug or
#   target/debug). The cross binary comes from cross/build.sh (EDGEWATCH_CROSS_TARGET_DIR, PROFILE).
# Environment: SIM_SECONDS (default 20) of simulated sensor time to record.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
target=${1:?usage: cross/qemu-test.sh aarch64|armv7 [NATIVE_BIN_DIR]}
native_dir=${2:-${CARGO_TARGET_DIR:-$repo/target}/debug}
profile=${PROFILE:-release-small}
case "$target" in
  aarch64) triple=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu; qemu=qemu-aarch64; debarch=arm64 ;;
  armv7) triple=armv7-unknown-linux-gnueabihf; gnu=arm-linux-gnueabihf; qemu=qemu-arm; debarch=armhf ;;
  *) echo "unknown target '$target': expected aarch64 or armv7" >&2; exit 2 ;;
esac
cross_agent=${EDGEWATCH_CROSS_TARGET_DIR:-$repo/target/cross}/$triple/$profile/agent
cross_lab=${EDGEWATCH_CROSS_TARGET_DIR:-$repo/target/cross}/$triple/$profile/lab
for f in "$cross_agent" "$cross_lab" "$native_dir/agent" "$native_dir/lab" "$native_dir/firmware-sim"; do
  [ -x "$f" ] || { echo "FAIL: $f is missing (cross/build.sh $target; cargo build --workspace --bins)" >&2; exit 1; }
done
command -v "$qemu" >/dev/null || { echo "FAIL: $qemu missing: cross/build.sh $target installs qemu-user" >&2; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 missing (scripts/test.sh installs it)" >&2; exit 1; }
# The cross sysroot, with ld.so and libc from the same glibc build (without LD_LIBRARY_PATH,
# threaded programs hang under qemu once the multiarch libc is also installed).
libs=/usr/$gnu/lib
# cross/build.sh's private OpenSSL sysroot, when multiarch libssl-dev was not installable.
ssl_sysroot=${EDGEWATCH_CROSS_TARGET_DIR:-$repo/target/cross}/sysroot-$debarch
[ -f "$ssl_sysroot/.complete" ] && libs=$libs:$ssl_sysroot/usr/lib/$gnu
emu=("$qemu" -L "/usr/$gnu" -E "LD_LIBRARY_PATH=$libs")
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"' EXIT

echo "== $triple: agent validate under $qemu"
"${emu[@]}" "$cross_agent" --version
"${emu[@]}" "$cross_agent" validate --config configs/laptop-demo.toml

echo "== $triple: agent run under $qemu, then SIGTERM"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s|^data_dir = .*|data_dir = \"$work/data\"|" -e "s|^listen = .*|listen = \"127.0.0.1:$port\"|" \
  -e "s|^url = .*|url = \"mqtt://127.0.0.1:9\"|" configs/laptop-demo.toml > "$work/run.toml"
RUST_LOG=info NO_COLOR=1 "${emu[@]}" "$cross_agent" run --config "$work/run.toml" 2>"$work/run.log" &
pid=$!
for _ in $(seq 1 300); do grep -q "agent running" "$work/run.log" && break; sleep 0.1; done
grep -q "agent running" "$work/run.log" || { cat "$work/run.log" >&2; echo "FAIL: agent did not start under qemu" >&2; exit 1; }
health=$(python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=5).read().decode())")
echo "health under qemu: $health"
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?; pid=
grep -q "stopped cleanly" "$work/run.log" && [ "$rc" -eq 0 ] ||
  { cat "$work/run.log" >&2; echo "FAIL: agent under qemu did not drain cleanly (exit $rc)" >&2; exit 1; }
echo "ok   started, healthy, drained on SIGTERM"

echo "== $triple: same simulator input, native vs $qemu"
"$native_dir/firmware-sim" run --scenario demo --output file --path "$work/frames.bin" --fast \
  --duration-s "${SIM_SECONDS:-20}" 2>/dev/null
echo "recorded $(stat -c %s "$work/frames.bin") bytes of frames (${SIM_SECONDS:-20} s of the demo scenario)"
t0=$(date +%s.%N)
"$native_dir/lab" replay-features --config configs/laptop-demo.toml --frames "$work/frames.bin" --out "$work/native.jsonl"
t1=$(date +%s.%N)
"${emu[@]}" "$cross_lab" replay-features --config configs/laptop-demo.toml --frames "$work/frames.bin" --out "$work/cross.jsonl"
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "replay: native %.1f s, qemu %.1f s\n", b - a, c - b }'
python3 cross/compare_features.py "$work/native.jsonl" "$work/cross.jsonl"
