#!/usr/bin/env bash
# Builds the edgewatch-agent .deb for one target from a cross/build.sh binary (dpkg-deb, no
# cargo-deb needed).
#
# Usage: packaging/build-deb.sh aarch64|armv7|amd64 [OUT_DIR]
# Environment: EDGEWATCH_CROSS_TARGET_DIR, PROFILE (as cross/build.sh), VERSION (default: the
# workspace version), EDGEWATCH_DEB_BIN (the agent binary to package instead of the cross
# build's; scripts/deploy-checks.sh uses it for the amd64 package check in CI). Prints the path
# of the .deb as its last line.
#
# Contents: /usr/bin/agent, /etc/edgewatch/agent.toml (conffile, from
# configs/raspberry-pi.toml), /lib/systemd/system/edgewatch-agent.service,
# /usr/lib/sysusers.d/edgewatch.conf; maintainer scripts in packaging/deb/.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
target=${1:?usage: packaging/build-deb.sh aarch64|armv7|amd64 [OUT_DIR]}
out_dir=${2:-$repo/target/deb}
profile=${PROFILE:-release-small}
case "$target" in
  aarch64) triple=aarch64-unknown-linux-gnu; debarch=arm64 ;;
  armv7) triple=armv7-unknown-linux-gnueabihf; debarch=armhf ;;
  amd64) triple=x86_64-unknown-linux-gnu; debarch=amd64 ;;
  *) echo "unknown target '$target': expected aarch64, armv7 or amd64" >&2; exit 2 ;;
esac
bin=${EDGEWATCH_DEB_BIN:-${EDGEWATCH_CROSS_TARGET_DIR:-$repo/target/cross}/$triple/$profile/agent}
[ -x "$bin" ] || { echo "$bin is missing: run cross/build.sh $target first" >&2; exit 1; }
version=${VERSION:-$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)}

# The newest glibc symbol version the binary needs sets the libc6 dependency.
glibc=$(readelf --dyn-syms --wide "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' |
  sort -t. -k1,1n -k2,2n -k3,3n | tail -n1)
# systemd: the unit, systemd-sysusers (postinst) and systemctl.
depends="libc6 (>= $glibc), systemd"
# The system OpenSSL (rdkafka's "ssl" feature), when linked dynamically.
if readelf --dynamic "$bin" | grep -q 'libssl.so.3'; then depends="$depends, libssl3 (>= 3.0)"; fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -D -m 0755 "$bin" "$stage/usr/bin/agent"
install -D -m 0640 configs/raspberry-pi.toml "$stage/etc/edgewatch/agent.toml"
install -D -m 0644 systemd/edgewatch-agent.service "$stage/lib/systemd/system/edgewatch-agent.service"
install -D -m 0644 packaging/deb/sysusers.conf "$stage/usr/lib/sysusers.d/edgewatch.conf"
install -D -m 0644 docs/deploy.md "$stage/usr/share/doc/edgewatch-agent/deploy.md"
install -D -m 0644 docs/config.md "$stage/usr/share/doc/edgewatch-agent/config.md"
install -d "$stage/DEBIAN"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$stage/DEBIAN/"
echo /etc/edgewatch/agent.toml > "$stage/DEBIAN/conffiles"
size_kb=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: edgewatch-agent
Version: $version
Architecture: $debarch
Maintainer: Edgewatch developers <edgewatch@users.noreply.github.com>
Installed-Size: $size_kb
Depends: $depends
Section: misc
Priority: optional
Homepage: https://github.com/edgewatch/edgewatch
Description: edge predictive-maintenance agent for gateways
 Reads vibration and temperature frames from sensor nodes (serial or MQTT),
 extracts machine-health features, scores them on the device, raises alerts
 and forwards them to Kafka through a durable outbox. Runs as the hardened
 systemd service edgewatch-agent.service.
CONTROL
mkdir -p "$out_dir"
deb=$out_dir/edgewatch-agent_${version}_${debarch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb: $(stat -c %s "$deb") bytes, Depends: $depends"
echo "$deb"
