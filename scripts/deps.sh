# Sourced by scripts/demo.sh, scripts/test.sh, bench/e2e.sh and cross/build.sh: installs,
# through apt, the system packages that building the agent needs when they are missing.
#
# rdkafka builds its bundled librdkafka from source with cmake and a C compiler, and links the
# system OpenSSL for TLS to Kafka; nothing else outside crates.io is needed to build the agent.

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

# Set apt_updated=0 again after `dpkg --add-architecture` (cross/build.sh) to refresh the lists.
apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    # A mirror in mid-sync serves an index of the wrong size and apt-get update fails: retry
    # rather than lose the run. If it keeps failing, go on with the lists apt has (an index of
    # another architecture or suite is often all that failed): the install says what is missing.
    local try
    for try in 1 2 3; do
      as_root apt-get update -qq && break
      if [ "$try" -eq 3 ]; then echo "apt-get update keeps failing; going on" >&2; break; fi
      echo "apt-get update failed (try $try); retrying in $((try * 10)) s" >&2
      sleep $((try * 10))
    done
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

ensure_build_deps() {
  local missing=()
  have cmake || missing+=(cmake)
  have make || missing+=(make)
  have cc || missing+=(gcc)
  have c++ || missing+=(g++)
  have pkg-config || missing+=(pkg-config)
  dpkg -s libssl-dev >/dev/null 2>&1 || pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} (to build rdkafka's bundled librdkafka with TLS)"
    apt_install "${missing[@]}"
  fi
}
