#!/usr/bin/env bash
# The one command that runs every check and every test; CI (.ci/run) runs exactly this.
# Works on a fresh Debian/Ubuntu machine with Rust: installs what is missing, skips nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

step() {
  echo
  echo "== $*"
}

# The mdBook version that builds docs/ (scripts/book.sh).
MDBOOK_VERSION=0.4.52

step "system packages"
install_packages "${BUILD_PACKAGES[@]}" "${POSTGRES_PACKAGES[@]}" "${BROWSER_PACKAGES[@]}" "${JAVA_PACKAGES[@]}" "${DOCKER_PACKAGES[@]}"

step "throwaway PostgreSQL server (for the tests that write to Postgres)"
start_throwaway_postgres

step "throwaway Apache Kafka broker (for the tests that need a real broker)"
start_throwaway_kafka

step "throwaway Apache Cassandra node (for the tests that write to Cassandra)"
start_throwaway_cassandra

step "Python confluent-kafka client (for the schema registry interop tests)"
ensure_python_interop

step "pyarrow (reads back the vehicle_trips lake's Parquet files)"
ensure_python_pyarrow

step "throwaway Azurite (the Azure Storage emulator, for the vehicle_trips Azure lake test)"
start_throwaway_azurite

step "Kafka Streams conformance suite: build its Java side (Maven fetches Kafka Streams once)"
# Before the tests, so that tests/conformance_kafka_streams.rs finds it built and a first
# download does not count against the test's time limit.
mvn -q -B -Dstyle.color=never -f conformance/pom.xml package

step "cargo-nextest"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest --version | head -n 1
else
  cargo install cargo-nextest --locked
fi

step "format: cargo fmt --check"
cargo fmt --all -- --check

step "lint: cargo clippy, warnings are errors"
cargo clippy --workspace --all-targets -- -D warnings

step "docs: cargo doc, warnings are errors"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "tests: cargo nextest (unit and integration)"
cargo nextest run --workspace --no-fail-fast

step "doc tests: cargo test --doc (the book's pages included)"
cargo test --workspace --doc

step "binaries the Docker image ships (dev profile; docker/Dockerfile runs the same script with --release)"
bash scripts/build-binaries.sh

step "the book's getting-started commands (the quickstart, end to end on the embedded broker)"
bash scripts/setup.sh
cargo run -p quickstart

step "docker: docker-compose config (one broker, and the three-broker profile)"
docker-compose -f docker/compose.yaml config -q
docker-compose -f docker/compose.yaml --env-file docker/cluster.env --profile cluster config -q
# Each streamkit service runs a shipped binary with flags it has (their --help, dev builds above).
python3 scripts/check-compose-flags.py target/debug

step "book: mdbook build, warnings are errors, every link resolves"
if mdbook --version 2>/dev/null | grep -qx "mdbook v$MDBOOK_VERSION"; then
  mdbook --version
else
  cargo install mdbook --locked --version "$MDBOOK_VERSION"
fi
bash scripts/book.sh

echo
echo "== all checks passed"
