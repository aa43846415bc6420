#!/usr/bin/env bash
# The README's run command: installs the build tools the agent needs when they are missing
# (cmake, a C compiler, pkg-config, libssl-dev: see scripts/deps.sh), then runs the demo:
# firmware-sim's simulated machines feeding the agent over a pty, no Kafka needed, outbox and
# state in ./edgewatch-demo-data. Arguments are passed to `lab demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_build_deps
exec cargo run --release --locked -p edgewatch-lab --bin lab -- demo "$@"
