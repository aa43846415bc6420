#!/usr/bin/env bash
# Installs the edgewatch-agent .deb into a throwaway root with the real dpkg and its real
# maintainer scripts (dpkg --root + --force-script-chrootless: the scripts run with DPKG_ROOT
# set), then checks files, conffiles, the system user, the state directory, enabling, and the
# behaviour of upgrade (config and outbox kept), remove (kept) and purge (deleted).
#
# Usage: packaging/test-deb.sh aarch64|armv7|amd64
# Needs a binary from cross/build.sh for the target. Exits non-zero naming the first failed check.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: packaging/test-deb.sh aarch64|armv7|amd64}
case "$target" in
  aarch64) debarch=arm64 ;; armv7) debarch=armhf ;; amd64) debarch=amd64 ;;
  *) echo "unknown target '$target'" >&2; exit 2 ;;
esac
for tool in dpkg dpkg-deb systemd-sysusers systemctl readelf; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (scripts/test.sh installs it)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "FAIL: installing into a throwaway root needs root (chown)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
v1=$(VERSION=0.1.0 packaging/build-deb.sh "$target" "$work/debs" | tail -n1)
v2=$(VERSION=0.1.1 packaging/build-deb.sh "$target" "$work/debs" | tail -n1)
root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
dpkg --root="$root" --add-architecture "$debarch" 2>/dev/null || true
# --force-depends: the throwaway root has no libc6/systemd packages registered.
dpkg_r() { dpkg --root="$root" --force-script-chrootless --force-depends --force-confold "$@" >>"$work/dpkg.log" 2>&1 ||
  { cat "$work/dpkg.log" >&2; echo "FAIL: dpkg $*" >&2; exit 1; }; }
fails=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what" >&2; fails=$((fails + 1)); fi
}
status_of() { dpkg-query --root="$root" -W -f='${db:Status-Abbrev}${Version}' edgewatch-agent 2>/dev/null || true; }
owner() { stat -c '%U:%G %a' "$1"; }
uid_of() { awk -F: -v u="$1" '$1 == u { print $3 }' "$root/etc/passwd"; }

echo "== install $(basename "$v1")"
dpkg_r -i "$v1"
check "installed 0.1.0" test "$(status_of)" = "ii 0.1.0"
check "/usr/bin/agent is an executable $debarch ELF" \
  sh -c "test -x '$root/usr/bin/agent' && readelf -h '$root/usr/bin/agent' | grep -qiE 'Machine:.*($( [ "$debarch" = arm64 ] && echo AArch64; [ "$debarch" = armhf ] && echo ARM; [ "$debarch" = amd64 ] && echo X86-64))'"
check "/etc/edgewatch/agent.toml is a conffile" \
  sh -c "dpkg-query --root='$root' -W -f='\${Conffiles}' edgewatch-agent | grep -q '/etc/edgewatch/agent.toml'"
check "the unit is installed" test -f "$root/lib/systemd/system/edgewatch-agent.service"
check "system user edgewatch exists with no login shell" \
  sh -c "grep -qE '^edgewatch:x:[0-9]+:[0-9]+:.*:/var/lib/edgewatch:/usr/sbin/nologin$' '$root/etc/passwd'"
check "the user is a system user (uid < 1000)" test "$(uid_of edgewatch)" -lt 1000
uid=$(uid_of edgewatch)
check "state dir /var/lib/edgewatch is edgewatch's, mode 750" \
  test "$(stat -c '%u %a' "$root/var/lib/edgewatch")" = "$uid 750"
check "the config is root:edgewatch 640" \
  test "$(stat -c '%U %a' "$root/etc/edgewatch/agent.toml") $(stat -c '%g' "$root/etc/edgewatch/agent.toml")" = \
  "root 640 $(awk -F: '$1 == "edgewatch" { print $3 }' "$root/etc/group")"
check "the service is enabled (multi-user.target.wants)" \
  test -L "$root/etc/systemd/system/multi-user.target.wants/edgewatch-agent.service"
# The site edits the config; the agent writes its outbox.
echo '# site change' >> "$root/etc/edgewatch/agent.toml"
mkdir -p "$root/var/lib/edgewatch/outbox"
echo pending > "$root/var/lib/edgewatch/outbox/db"

echo "== upgrade to $(basename "$v2")"
dpkg_r -i "$v2"
check "upgraded to 0.1.1" test "$(status_of)" = "ii 0.1.1"
check "upgrade kept the edited config" grep -q '^# site change' "$root/etc/edgewatch/agent.toml"
check "upgrade kept the outbox" grep -q pending "$root/var/lib/edgewatch/outbox/db"
check "upgrade kept the user's uid" test "$(uid_of edgewatch)" = "$uid"

echo "== remove"
dpkg_r -r edgewatch-agent
check "removed, config files remain (rc)" test "$(status_of)" = "rc 0.1.1"
check "remove deleted the binary" test ! -e "$root/usr/bin/agent"
check "remove deleted the unit" test ! -e "$root/lib/systemd/system/edgewatch-agent.service"
check "remove kept the config" grep -q '^# site change' "$root/etc/edgewatch/agent.toml"
check "remove kept the outbox" grep -q pending "$root/var/lib/edgewatch/outbox/db"

echo "== reinstall after remove, then purge"
dpkg_r -i "$v2"
check "reinstall kept the edited config" grep -q '^# site change' "$root/etc/edgewatch/agent.toml"
dpkg_r -P edgewatch-agent
check "purged: no package left" test -z "$(status_of | grep -v '^un' || true)"
check "purge deleted /etc/edgewatch" test ! -e "$root/etc/edgewatch"
check "purge deleted the outbox (/var/lib/edgewatch)" test ! -e "$root/var/lib/edgewatch"
check "purge disabled the service" test ! -e "$root/etc/systemd/system/multi-user.target.wants/edgewatch-agent.service"

if [ "$fails" -ne 0 ]; then echo "package checks for $debarch: $fails FAILED" >&2; exit 1; fi
echo "package checks for $debarch: all passed"
