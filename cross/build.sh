#!/usr/bin/env bash
# Cross-builds release binaries of `agent` and `firmware-sim` for a gateway target with the
# size-tuned `release-small` profile, installing what it needs when missing, and prints sizes.
#
# Usage: cross/build.sh aarch64|armv7|amd64
#
# Toolchain: with rustup (a developer machine) `rustup target add <triple>` is used. Without it
# (CI, Debian hosts that cannot download toolchains) Debian bookworm-security's `rustc-web` /
# `cargo-web` and the matching target standard library `libstd-rust-web-dev:<arch>` are installed
# through multiarch. Either way the gcc cross compilers from Debian link the binaries, and
# librdkafka is built from source for the target by rdkafka's cmake build.
#
# Environment:
#   EDGEWATCH_CROSS_TARGET_DIR  cargo target dir (default: <repo>/target/cross)
#   EDGEWATCH_CROSS_TOOLCHAIN   rustup|debian (default: rustup when `rustup target add` works,
#                               else debian)
#   EDGEWATCH_CROSS_CARGO_HOME  CARGO_HOME for the Debian toolchain (default: target/cross-cargo-home)
#   EDGEWATCH_CROSS_INSTALL_ONLY=1  install the toolchain and packages, build nothing
#   PROFILE                     cargo profile (default: release-small)
# Output: binaries in $TARGET_DIR/<triple>/<profile>/{agent,firmware-sim}; the last line of
# output is machine readable: "sizes: <triple> agent=<bytes> firmware-sim=<bytes>".
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

target=${1:?usage: cross/build.sh aarch64|armv7|amd64}
profile=${PROFILE:-release-small}
# as_root, apt_install (retries a failing apt-get update), have.
. scripts/deps.sh

case "$target" in
  aarch64) triple=aarch64-unknown-linux-gnu; debarch=arm64; gnu=aarch64-linux-gnu ;;
  armv7) triple=armv7-unknown-linux-gnueabihf; debarch=armhf; gnu=arm-linux-gnueabihf ;;
  amd64) triple=x86_64-unknown-linux-gnu; debarch=amd64; gnu=x86_64-linux-gnu ;;
  *) echo "unknown target '$target': expected aarch64, armv7 or amd64" >&2; exit 2 ;;
esac
native=0
[ "$(dpkg --print-architecture 2>/dev/null || echo unknown)" = "$debarch" ] && native=1

missing() { # prints the packages (name[:arch]) of "$@" that are not installed
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"
  done
}

# --- toolchain -------------------------------------------------------------------------------
toolchain=${EDGEWATCH_CROSS_TOOLCHAIN:-}
if [ -z "$toolchain" ]; then
  if command -v rustup >/dev/null 2>&1 && rustup target add "$triple" >/dev/null 2>&1; then
    toolchain=rustup
  else
    toolchain=debian
  fi
fi

host_pkgs=(cmake make pkg-config)
if [ "$native" -eq 0 ]; then
  host_pkgs+=("gcc-$gnu" "g++-$gnu" "libc6-dev-$debarch-cross" qemu-user)
fi
[ "$toolchain" = debian ] && host_pkgs+=(rustc-web cargo-web)
# Install the host (amd64) packages first: if a foreign index fails to download, apt drops the
# whole suite's indexes for that run (see docs/deploy.md).
need=$(missing "${host_pkgs[@]}")
# shellcheck disable=SC2086
[ -n "$need" ] && { echo "installing host packages: $need"; apt_install $need; }

if [ "$native" -eq 0 ] && ! dpkg --print-foreign-architectures | grep -qx "$debarch"; then
  echo "enabling multiarch: $debarch"
  as_root dpkg --add-architecture "$debarch"
  apt_updated=0
fi
if [ "$toolchain" = debian ] && [ -n "$(missing "libstd-rust-web-dev:$debarch")" ]; then
  # The target std must be exactly the compiler's version.
  v=$(dpkg-query -W -f='${Version}' rustc-web)
  echo "installing libstd-rust-web-dev:$debarch=$v"
  apt_install "libstd-rust-web-dev:$debarch=$v"
fi
ssl_sysroot=
if [ "$native" -eq 0 ] && [ -n "$(missing "libssl-dev:$debarch")" ]; then
  echo "installing libssl-dev:$debarch"
  if ! apt_install "libssl-dev:$debarch"; then
    # libssl-dev is Multi-Arch: same: the target's version must equal the host's, which fails
    # whenever the host has a security update the target architecture's index does not (yet)
    # carry. The headers and libssl.so.3 of any 3.0.x do: unpack them into a private sysroot.
    ssl_sysroot=${EDGEWATCH_CROSS_TARGET_DIR:-$repo/target/cross}/sysroot-$debarch
    if [ ! -f "$ssl_sysroot/.complete" ]; then
      echo "multiarch libssl-dev:$debarch not installable: unpacking it into $ssl_sysroot"
      rm -rf "$ssl_sysroot"
      mkdir -p "$ssl_sysroot/debs"
      (cd "$ssl_sysroot/debs" && apt-get download "libssl-dev:$debarch" "libssl3:$debarch")
      for deb in "$ssl_sysroot"/debs/*.deb; do dpkg-deb -x "$deb" "$ssl_sysroot"; done
      # One include dir for openssl-sys and cmake: merge the multiarch configuration headers.
      cp -a "$ssl_sysroot/usr/include/$gnu/openssl/." "$ssl_sysroot/usr/include/openssl/"
      ln -sf "$gnu/libssl.so" "$gnu/libcrypto.so" "$ssl_sysroot/usr/lib/"
      touch "$ssl_sysroot/.complete"
    fi
  fi
fi
if [ "$native" -eq 0 ] && [ -z "$ssl_sysroot" ] && [ -f "${EDGEWATCH_CROSS_TARGET_DIR:-$repo/target/cross}/sysroot-$debarch/.complete" ] &&
   [ -n "$(missing "libssl-dev:$debarch")" ]; then
  ssl_sysroot=${EDGEWATCH_CROSS_TARGET_DIR:-$repo/target/cross}/sysroot-$debarch
fi

if [ -n "${EDGEWATCH_CROSS_INSTALL_ONLY:-}" ]; then
  echo "toolchain for $triple installed ($toolchain)"
  exit 0
fi

if [ "$toolchain" = debian ]; then
  cargo_bin=/usr/bin/cargo
  export RUSTC=/usr/bin/rustc
  # Keep the rustup proxies (no target std) out of the way.
  export CARGO_HOME=${EDGEWATCH_CROSS_CARGO_HOME:-$repo/target/cross-cargo-home}
  [ -d "${HOME:-/nonexistent}/.cargo/registry" ] && [ ! -e "$CARGO_HOME/registry" ] && {
    mkdir -p "$CARGO_HOME"; ln -s "$HOME/.cargo/registry" "$CARGO_HOME/registry"; }
else
  cargo_bin=cargo
fi

# --- per-target environment ------------------------------------------------------------------
t_=${triple//-/_}
T_=$(echo "$t_" | tr '[:lower:]' '[:upper:]')
if [ "$native" -eq 0 ]; then
  export "CC_$t_=$gnu-gcc" "CXX_$t_=$gnu-g++" "AR_$t_=$gnu-ar"
  export "CARGO_TARGET_${T_}_LINKER=$gnu-gcc"
  # librdkafka 2.11/2.12's cmake build includes <curl/curl.h> even with curl disabled (upstream
  # issue 5135); nothing from it is used, so an empty header satisfies it.
  stub=$repo/cross/include-stub
  export "CFLAGS_$t_=-I$stub"
  export PKG_CONFIG_ALLOW_CROSS=1
  export "PKG_CONFIG_LIBDIR_$t_=/usr/lib/$gnu/pkgconfig:/usr/share/pkgconfig"
  export "PKG_CONFIG_SYSROOT_DIR_$t_=/"
  # openssl-sys (and librdkafka's cmake through OPENSSL_ROOT_DIR): the multiarch headers and
  # libraries, or the private sysroot.
  if [ -n "$ssl_sysroot" ]; then
    export "${T_}_OPENSSL_LIB_DIR=$ssl_sysroot/usr/lib/$gnu" "${T_}_OPENSSL_INCLUDE_DIR=$ssl_sysroot/usr/include"
    export OPENSSL_ROOT_DIR=$ssl_sysroot/usr
  else
    export "${T_}_OPENSSL_LIB_DIR=/usr/lib/$gnu" "${T_}_OPENSSL_INCLUDE_DIR=/usr/include"
  fi
  # `cargo run/test --target` go through qemu-user with the cross sysroot; LD_LIBRARY_PATH keeps
  # ld.so and libc from the same glibc build (otherwise threaded programs hang under qemu).
  qemu=qemu-aarch64; [ "$target" = armv7 ] && qemu=qemu-arm
  export "CARGO_TARGET_${T_}_RUNNER=$qemu -L /usr/$gnu -E LD_LIBRARY_PATH=/usr/$gnu/lib"
fi

target_dir=${EDGEWATCH_CROSS_TARGET_DIR:-$repo/target/cross}
export CARGO_TARGET_DIR=$target_dir
echo "==> building $triple ($toolchain toolchain: $($cargo_bin --version), profile $profile)"
start=$(date +%s)
"$cargo_bin" build --locked --profile "$profile" --target "$triple" \
  -p edgewatch-agent --bin agent -p firmware-sim --bin firmware-sim -p edgewatch-lab --bin lab
echo "built in $(( $(date +%s) - start )) s"

out=$target_dir/$triple/$profile
agent_size=$(stat -c %s "$out/agent")
sim_size=$(stat -c %s "$out/firmware-sim")
lab_size=$(stat -c %s "$out/lab")
printf '%-32s %10s  %s\n' "$triple agent" "$agent_size" "$(awk -v b="$agent_size" 'BEGIN{printf "%.1f MB", b/1e6}')"
printf '%-32s %10s  %s\n' "$triple firmware-sim" "$sim_size" "$(awk -v b="$sim_size" 'BEGIN{printf "%.1f MB", b/1e6}')"
printf '%-32s %10s  %s\n' "$triple lab" "$lab_size" "$(awk -v b="$lab_size" 'BEGIN{printf "%.1f MB", b/1e6}')"
echo "sizes: $triple agent=$agent_size firmware-sim=$sim_size lab=$lab_size"
