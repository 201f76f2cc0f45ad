#!/usr/bin/env bash
# Installs the system packages building streamkit needs on a fresh Debian/Ubuntu machine
# (Rust itself must already be installed). Then: cargo run --release -p quickstart
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

echo "== system packages"
install_packages "${BUILD_PACKAGES[@]}"
echo "== ready: cargo run --release -p quickstart"
