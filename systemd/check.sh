#!/usr/bin/env bash
# Checks the service unit: `systemd-analyze verify` (syntax, known keys, the ExecStart binaries
# exist) and `systemd-analyze security` (prints the exposure; fails above 2.0). Works without a
# running systemd.
#
# Usage: systemd/check.sh [AGENT_BINARY]   (default: target/debug/agent; verify needs the
#        binary the unit runs to exist, so /usr/bin/agent is swapped for it in a temp copy)
set -euo pipefail
cd "$(dirname "$0")/.."
agent=$(realpath "${1:-${CARGO_TARGET_DIR:-target}/debug/agent}")
[ -x "$agent" ] || { echo "FAIL: $agent missing: cargo build -p edgewatch-agent first" >&2; exit 1; }
command -v systemd-analyze >/dev/null ||
  { echo "FAIL: systemd-analyze missing (scripts/test.sh installs the systemd package)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unit=$work/edgewatch-agent.service
sed "s|/usr/bin/agent|$agent|g" systemd/edgewatch-agent.service > "$unit"
if ! out=$(systemd-analyze verify "$unit" 2>&1) || [ -n "$out" ]; then
  echo "$out" >&2
  echo "FAIL: systemd-analyze verify reported problems" >&2
  exit 1
fi
echo "ok   systemd-analyze verify: no warnings"
report=$(systemd-analyze security --offline=true "$unit" 2>&1)
exposure=$(echo "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || { echo "$report" >&2; echo "FAIL: no exposure figure" >&2; exit 1; }
echo "$report" | grep '✗' || true
echo "systemd-analyze security: exposure $exposure (limit 2.0)"
if awk -v e="$exposure" 'BEGIN { exit !(e > 2.0) }'; then
  echo "FAIL: exposure $exposure is above 2.0" >&2
  exit 1
fi
