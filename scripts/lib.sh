# Shared by setup.sh and test.sh: install the system packages the build needs.
# shellcheck shell=bash

# Packages: a C toolchain and make/cmake for librdkafka, OpenSSL and zlib headers, libclang
# for RocksDB's bindgen, PostgreSQL for the tests that need a real server.
BUILD_PACKAGES=(build-essential cmake pkg-config libssl-dev zlib1g-dev libclang-dev clang libcurl4-openssl-dev python3)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "== system packages present: $*"
    return
  fi
  echo "== installing: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}
