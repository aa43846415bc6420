#!/usr/bin/env bash
# Installs what the test suite needs when it is missing, then runs the whole suite:
# formatting, lints, unit/property/integration tests against real brokers, the no_std build
# of the protocol crate, a short fuzzing run of the frame decoder, and the deployment checks
# (scripts/deploy-checks.sh: systemd unit, cross builds run under qemu-user, .deb packages).
#
# Usage: scripts/test.sh            (from anywhere inside the repository)
# Environment: FUZZ_SECONDS (default 60) bounds the fuzzing run; EDGEWATCH_DEPLOY_TARGETS
# (default "aarch64 armv7") picks the cross targets, EDGEWATCH_CROSS_PROFILE (default cross-ci)
# their profile, EDGEWATCH_DEPLOY_NATIVE_PACKAGE (default 1; empty: off) the amd64 package check
# from the native build.
set -euo pipefail
cd "$(dirname "$0")/.."

suite_start=$(date +%s)
# Each step prints the time so far, the size of target/ and the space left on its disk: a CI
# machine's disk is shared, and a run that fills it fails with a linker's bus error.
disk() {
  local used
  used=$(du -sh target 2>/dev/null | cut -f1)
  printf 'target/ %s, %s free\n' "${used:-0}" "$(df -h --output=avail . | tail -n 1 | tr -d ' ')"
}
step() { printf '\n==> [%s s] %s (%s)\n' "$(( $(date +%s) - suite_start ))" "$*" "$(disk)"; }
# One build per run: incremental compilation's caches would only take disk (1.4 GB).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
. scripts/deps.sh

step "checking test dependencies"
if ! have mosquitto; then
  echo "installing mosquitto (MQTT broker for the integration tests)"
  apt_install mosquitto
fi
ensure_build_deps
# The central side (models/central) runs in a Python venv: Debian splits venv off python3.
if ! have python3 || ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
  echo "installing python3 and python3-venv (central retraining and its tests)"
  apt_install python3 python3-venv
fi
# tansu is the Kafka broker the delivery tests start (sqlite storage needs these features).
if ! have tansu && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ]; then
  echo "installing tansu (Kafka-compatible broker for the delivery tests; takes a while)"
  # A test broker: optimised less than a release build, for a much shorter build.
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install tansu --features dynostore,libsql --locked
fi
# cargo-fuzz needs nightly compiler flags: use a nightly toolchain when one is installed,
# otherwise the stable one with RUSTC_BOOTSTRAP=1 (no toolchain download needed).
if cargo +nightly --version >/dev/null 2>&1; then
  fuzz_cargo=(cargo +nightly)
else
  fuzz_cargo=(env RUSTC_BOOTSTRAP=1 cargo)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "layout: the gateway agent carries no simulator or lab code; no import circle"
# What the .deb installs is the agent's normal dependency tree (docs/deploy.md).
if cargo tree -p edgewatch-agent -e normal --prefix none --locked | grep -E '^(firmware-sim|edgewatch-lab) '; then
  echo "the gateway agent depends on the simulator or the lab tools (see above)" >&2
  exit 1
fi
python3 scripts/module-cycles.py

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Binaries and tests in one build: built apart, the binaries lack the dev-dependencies'
# features, so cargo would compile tract and others twice.
step "building the binaries the end-to-end tests run, and the tests"
cargo build --workspace --bins --tests --locked

# Before cargo test: the feedback-loop test (tests/tests/feedback_loop.rs) runs the central
# side from models/.venv, which this installs.
step "central retraining (models/central: pytest with tansu and lab)"
models/central/test.sh

step "cargo test (unit, property and end-to-end tests)"
cargo test --workspace --locked

step "protocol crate builds without std"
cargo build --release --manifest-path protocol/nostd-check/Cargo.toml

step "fuzzing the frame decoder for ${FUZZ_SECONDS:-60} s"
fuzz_log=$(mktemp)
if ! (cd protocol && "${fuzz_cargo[@]}" fuzz run decode -- -max_total_time="${FUZZ_SECONDS:-60}" \
      -max_len=12000 -rss_limit_mb=2048) >"$fuzz_log" 2>&1; then
  tail -n 40 "$fuzz_log" >&2
  echo "fuzzing failed or found a crash: see protocol/fuzz/artifacts/decode/" >&2
  exit 1
fi
grep -E '^Done [0-9]+ runs' "$fuzz_log" || tail -n 3 "$fuzz_log"
rm -f "$fuzz_log"

# CI's time budget (2 cores, 90 min, tansu's build included): the two gateway targets are
# cross-built with the quick cross-ci profile, run under qemu-user and packaged; the amd64
# package is made from the native build above (stripped) rather than a third cross build.
# `EDGEWATCH_DEPLOY_TARGETS="aarch64 armv7 amd64" PROFILE=release-small scripts/deploy-checks.sh`
# is the full release check (docs/deploy.md).
step "gateway deployment: systemd unit, cross builds, qemu-user runs, .deb packages"
PROFILE=${EDGEWATCH_CROSS_PROFILE:-cross-ci} \
  EDGEWATCH_DEPLOY_TARGETS=${EDGEWATCH_DEPLOY_TARGETS:-aarch64 armv7} \
  EDGEWATCH_DEPLOY_NATIVE_PACKAGE=${EDGEWATCH_DEPLOY_NATIVE_PACKAGE:-1} \
  scripts/deploy-checks.sh

step "all checks passed"
