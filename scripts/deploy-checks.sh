#!/usr/bin/env bash
# Gateway deployment checks (called by scripts/test.sh; runnable alone after a native
# `cargo build --workspace --bins`):
#   - the systemd unit: `systemd-analyze verify` and the `systemd-analyze security` exposure,
#   - per target: the cross build (release-small), the agent under qemu-user against the native
#     build, and the .deb installed, upgraded, removed and purged in a throwaway root.
# Every step prints its wall time; the summary lists them with the binary sizes.
#
# Environment: EDGEWATCH_DEPLOY_TARGETS (default "aarch64 armv7 amd64"),
#   EDGEWATCH_DEPLOY_NATIVE_PACKAGE=1 (also check the amd64 package made from the native debug
#   build, stripped: what CI does instead of an amd64 cross build), PROFILE (the cargo
#   profile of the cross builds, default release-small; scripts/test.sh uses cross-ci),
#   EDGEWATCH_CROSS_TARGET_DIR (default <target dir>/cross), and what cross/build.sh reads.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
export EDGEWATCH_CROSS_TARGET_DIR=${EDGEWATCH_CROSS_TARGET_DIR:-$target_dir/cross}
targets=${EDGEWATCH_DEPLOY_TARGETS:-aarch64 armv7 amd64}
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

summary=()
timed() { # timed LABEL COMMAND...: runs, prints and records the wall time
  local label=$1 start rc=0; shift
  printf '\n==> %s\n' "$label"
  start=$(date +%s)
  "$@" || rc=$?
  local t=$(( $(date +%s) - start ))
  summary+=("$(printf '%-40s %5d s%s' "$label" "$t" "$([ "$rc" -ne 0 ] && echo '  FAILED')")")
  echo "($label: ${t} s)"
  return "$rc"
}

need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v python3 >/dev/null || need+=(python3)
command -v readelf >/dev/null || need+=(binutils)
command -v dpkg-deb >/dev/null || need+=(dpkg)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

timed "systemd unit: verify + security" systemd/check.sh "$target_dir/debug/agent"
sizes=()
for t in $targets; do
  timed "cross build $t (${PROFILE:-release-small})" \
    bash -o pipefail -c 'cross/build.sh "$0" 2>&1 | tee "$1"' "$t" "$target_dir/cross-build-$t.log"
  sizes+=("$(grep '^sizes:' "$target_dir/cross-build-$t.log" | tail -n1)")
  if [ "$t" != amd64 ]; then
    timed "qemu-user run $t vs native" cross/qemu-test.sh "$t" "$target_dir/debug"
  fi
  # Root (or sudo): dpkg chowns files in the throwaway root.
  timed "package $t: dpkg install/upgrade/remove/purge" \
    as_root env EDGEWATCH_CROSS_TARGET_DIR="$EDGEWATCH_CROSS_TARGET_DIR" PROFILE="${PROFILE:-release-small}" packaging/test-deb.sh "$t"
done

# The amd64 package from the native build the tests already made (stripped), instead of a third
# cross build: CI checks the packaging on every change in minutes; the release .deb for amd64
# comes from `cross/build.sh amd64` like the others.
if [ -n "${EDGEWATCH_DEPLOY_NATIVE_PACKAGE:-}" ]; then
  native_bin=$target_dir/deb-native/agent
  mkdir -p "$(dirname "$native_bin")"
  strip -o "$native_bin" "$target_dir/debug/agent"
  timed "package amd64 (native test build): dpkg install/upgrade/remove/purge" \
    as_root env EDGEWATCH_DEB_BIN="$native_bin" packaging/test-deb.sh amd64
fi

printf '\n==> deployment checks: times\n'
printf '%s\n' "${summary[@]}"
printf '%s\n' "${sizes[@]}"
