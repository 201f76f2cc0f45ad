#!/usr/bin/env bash
# Builds the binaries the Docker image ships: the `streamkit` command and every example's
# binary (every workspace member but the benchmarks). One script for both callers, so that
# what CI checks is what the image holds: docker/Dockerfile runs it with --release,
# scripts/test.sh runs it in the dev profile (whose artifacts the tests have mostly built
# already), and streamkit/tests/docker_build_commands.rs checks that both call it.
#
#   build-binaries.sh [--release] [--install DIR]   build the binaries; --install copies them to DIR
#   build-binaries.sh [--release] --deps-only       build only the dependencies (on a skeleton)
#   build-binaries.sh --skeleton DIR                write the manifests, Cargo.lock, this
#                                                   script and stub sources to DIR: what the
#                                                   dependency layer is built from
set -euo pipefail
cd "$(dirname "$0")/.."

# The members that are not shipped: the benchmark harness.
EXCLUDE=(streamkit-bench)

profile=()
profile_dir=debug
install=""
deps_only=false
skeleton=""
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=(--release); profile_dir=release ;;
    --install) install="$2"; shift ;;
    --deps-only) deps_only=true ;;
    --skeleton) skeleton="$2"; shift ;;
    *) echo "build-binaries.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

# The workspace members' directories, from the manifest's `members` globs.
members() {
  python3 - <<'PY'
import glob, tomllib
with open("Cargo.toml", "rb") as f:
    members = tomllib.load(f)["workspace"]["members"]
for pattern in members:
    for d in sorted(glob.glob(pattern)):
        print(d)
PY
}

if [ -n "$skeleton" ]; then
  mkdir -p "$skeleton/scripts"
  cp Cargo.toml Cargo.lock "$skeleton/"
  cp scripts/build-binaries.sh scripts/lib.sh "$skeleton/scripts/"
  for d in $(members); do
    mkdir -p "$skeleton/$d/src"
    cp "$d/Cargo.toml" "$skeleton/$d/Cargo.toml"
    : >"$skeleton/$d/src/lib.rs"
  done
  exit 0
fi

excludes=()
for e in "${EXCLUDE[@]}"; do excludes+=(--exclude "$e"); done

if $deps_only; then
  cargo build --locked --workspace "${excludes[@]}" "${profile[@]}"
  exit 0
fi

cargo build --locked --workspace "${excludes[@]}" --bins "${profile[@]}"

if [ -n "$install" ]; then
  mkdir -p "$install"
  # Every binary target of the shipped members, by name.
  cargo metadata --locked --no-deps --format-version 1 | python3 -c '
import json, sys
excluded = set(sys.argv[1:])
for p in json.load(sys.stdin)["packages"]:
    if p["name"] in excluded:
        continue
    for t in p["targets"]:
        if "bin" in t["kind"]:
            print(t["name"])
' "${EXCLUDE[@]}" | while read -r bin; do
    install -m 0755 "target/$profile_dir/$bin" "$install/$bin"
    echo "installed $install/$bin"
  done
fi
