# Shared by setup.sh and test.sh (source it): install the system packages the build needs.
# shellcheck shell=bash

# A C/C++ toolchain, make and cmake build librdkafka and RocksDB; pkg-config with the OpenSSL
# and zlib headers link librdkafka (TLS, compression); libclang and clang run RocksDB's
# bindgen; libcurl headers serve librdkafka builds with OAuth/OIDC; python3 runs helper scripts.
BUILD_PACKAGES=(build-essential cmake pkg-config libssl-dev zlib1g-dev libclang-dev clang libcurl4-openssl-dev python3)

# Runs a command as root: directly when root, through sudo otherwise.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "error: need root or sudo to run: $*" >&2
    return 1
  fi
}

# Whether a Debian package is installed (not merely known or removed with its config kept).
package_installed() {
  dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

# Installs those of the given packages that are missing; no apt-get at all when none is.
install_packages() {
  local missing=() p
  for p in "$@"; do
    package_installed "$p" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages already installed: $*"
    return 0
  fi
  echo "installing: ${missing[*]}"
  as_root apt-get update -q
  # Through env: sudo does not pass the caller's environment on.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}
