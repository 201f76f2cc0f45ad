#!/usr/bin/env bash
# The one command that runs every check and every test (CI runs exactly this).
# Installs what it needs; never skips a test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

step() { echo; echo "== $*"; }

step "system packages"
install_packages "${BUILD_PACKAGES[@]}"

if ! cargo nextest --version >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "tests"
cargo nextest run --workspace --no-fail-fast

step "doc tests"
cargo test --workspace --doc

echo
echo "== all checks passed"
