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

# PostgreSQL for the tests that write to a real database (the Postgres sink, the bus_arrivals
# example): the server and client packages.
POSTGRES_PACKAGES=(postgresql postgresql-client)

# Headless Chromium for the test that loads the bus_arrivals page in a browser.
BROWSER_PACKAGES=(chromium)

# Debian's docker-compose checks docker/compose.yaml (`docker-compose config`; no engine needed).
DOCKER_PACKAGES=(docker-compose)

# Java 17 and Maven run the real Apache Kafka broker (scripts/kafka.sh) and the Kafka Streams
# conformance suite and benchmark contender.
JAVA_PACKAGES=(openjdk-17-jdk-headless maven)

# Cleanup commands run, last registered first, when the calling shell exits (one EXIT trap
# for every throwaway server).
ON_EXIT_COMMANDS=()
on_exit() {
  ON_EXIT_COMMANDS=("$*" "${ON_EXIT_COMMANDS[@]}")
  trap 'for c in "${ON_EXIT_COMMANDS[@]}"; do eval "$c" || true; done' EXIT
}

# Starts a throwaway single-node Apache Kafka broker (KRaft) through scripts/kafka.sh (its jars
# are fetched into ~/.cache/streamkit once), stops it when the calling shell exits, and exports
# STREAMKIT_TEST_KAFKA (its bootstrap servers) and STREAMKIT_TEST_KAFKA_DIR for the tests that
# need a real broker.
start_throwaway_kafka() {
  local dir line
  bash scripts/kafka.sh fetch
  dir=$(mktemp -d /tmp/streamkit-kafka.XXXXXX)
  line=$(bash scripts/kafka.sh start "$dir") || { rm -rf "$dir"; return 1; }
  on_exit "bash scripts/kafka.sh stop $dir >/dev/null 2>&1; rm -rf $dir"
  export STREAMKIT_TEST_KAFKA="${line#bootstrap.servers=}"
  export STREAMKIT_TEST_KAFKA_DIR="$dir"
  echo "throwaway Apache Kafka at $STREAMKIT_TEST_KAFKA (logs in $dir/node-1)"
}

# Starts a throwaway Apache Cassandra node (scripts/cassandra.sh: jars from Maven Central into
# a cache outside the repo, one node with a small heap on free loopback ports), stops it when
# the calling shell exits, and exports STREAMKIT_TEST_CASSANDRA (host:port of its CQL port).
start_throwaway_cassandra() {
  local dir line
  bash scripts/cassandra.sh fetch
  dir=$(mktemp -d /tmp/streamkit-cassandra.XXXXXX)
  line=$(bash scripts/cassandra.sh start "$dir") || { rm -rf "$dir"; return 1; }
  on_exit "bash scripts/cassandra.sh stop $dir >/dev/null 2>&1; rm -rf $dir"
  export STREAMKIT_TEST_CASSANDRA="${line#cassandra=}"
  echo "throwaway Apache Cassandra at $STREAMKIT_TEST_CASSANDRA (logs in $dir/system.log)"
}

# Starts a throwaway PostgreSQL server (its own data directory under a temporary folder, a
# loopback port, trust authentication), stops it when the calling shell exits, and exports
# STREAMKIT_TEST_POSTGRES_URL for the tests. initdb refuses to run as root, so as root the
# server runs as the `postgres` user the package creates.
start_throwaway_postgres() {
  local bin dir port user
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "error: initdb not found under /usr/lib/postgresql/*/bin" >&2
    return 1
  fi
  dir=$(mktemp -d /tmp/streamkit-pg.XXXXXX)
  port=${STREAMKIT_TEST_POSTGRES_PORT:-55432}
  user=$(id -un)
  local run=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$dir"
    run=(runuser -u postgres --)
    user=postgres
  fi
  "${run[@]}" "$bin/initdb" -D "$dir/data" -U "$user" --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; return 1; }
  "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null ||
    { cat "$dir/server.log" >&2; return 1; }
  on_exit "${run[*]} $bin/pg_ctl -D $dir/data -m immediate stop >/dev/null 2>&1; rm -rf $dir"
  export STREAMKIT_TEST_POSTGRES_URL="postgres://$user@127.0.0.1:$port/postgres"
  echo "throwaway PostgreSQL at $STREAMKIT_TEST_POSTGRES_URL (data in $dir)"
}

# Confluent's Python client (SchemaRegistryClient, AvroSerializer, AvroDeserializer) for the
# schema registry interop tests, in a venv under the repo (.venv/interop, git-ignored), pinned
# in scripts/python-interop.txt; reinstalled only when that file changes. Exports
# STREAMKIT_TEST_PYTHON, the venv's interpreter, which the tests require.
ensure_python_interop() {
  local venv=.venv/interop req=scripts/python-interop.txt stamp
  stamp="$venv/.installed-$(sha256sum "$req" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
      install_packages python3-venv
      rm -rf "$venv"
      /usr/bin/python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    touch "$stamp"
  fi
  export STREAMKIT_TEST_PYTHON="$PWD/$venv/bin/python"
  echo "python interop client: $("$STREAMKIT_TEST_PYTHON" -c 'import confluent_kafka; print("confluent-kafka", confluent_kafka.version())')"
}

# pyarrow for the vehicle_trips lake test (the Parquet files read back by an independent
# reader), in a venv under the repo (.venv/pyarrow, git-ignored), pinned in
# scripts/python-pyarrow.txt; reinstalled only when that file changes. Exports
# STREAMKIT_TEST_PYARROW, the venv's interpreter, which the test requires.
ensure_python_pyarrow() {
  local venv=.venv/pyarrow req=scripts/python-pyarrow.txt stamp
  stamp="$venv/.installed-$(sha256sum "$req" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
      install_packages python3-venv
      rm -rf "$venv"
      /usr/bin/python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    touch "$stamp"
  fi
  export STREAMKIT_TEST_PYARROW="$PWD/$venv/bin/python"
  echo "pyarrow: $("$STREAMKIT_TEST_PYARROW" -c 'import pyarrow; print(pyarrow.__version__)')"
}

# The Azurite version start_throwaway_azurite installs from npm.
AZURITE_VERSION=3.37.0

# Starts a throwaway Azurite (the Azure Storage emulator, from npm into
# ~/.cache/streamkit/azurite-VERSION once; needs node and npm) serving Blob Storage on a free
# loopback port with its data in a temporary folder, creates the container `streamkit-test`,
# stops it when the calling shell exits, and exports STREAMKIT_TEST_AZURITE (its blob URL) and
# AZURITE_BLOB_STORAGE_URL (the same, where object_store's emulator mode looks) for the
# vehicle_trips Azure lake test.
start_throwaway_azurite() {
  local cache="${STREAMKIT_AZURITE_CACHE:-$HOME/.cache/streamkit}/azurite-$AZURITE_VERSION" dir port pid i
  if ! command -v npm >/dev/null 2>&1; then
    install_packages nodejs npm
  fi
  if [ ! -x "$cache/node_modules/.bin/azurite-blob" ]; then
    mkdir -p "$cache"
    npm install --no-audit --no-fund --loglevel=error --prefix "$cache" "azurite@$AZURITE_VERSION"
  fi
  dir=$(mktemp -d /tmp/streamkit-azurite.XXXXXX)
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$cache/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$port" \
    --location "$dir" --skipApiVersionCheck --silent >"$dir/azurite.log" 2>&1 &
  pid=$!
  disown "$pid" 2>/dev/null || true
  # SIGKILL: its data is thrown away anyway, and a busy Azurite may sit on a SIGTERM.
  on_exit "kill -9 $pid >/dev/null 2>&1; rm -rf $dir"
  for i in $(seq 1 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then
      break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$dir/azurite.log" >&2
      return 1
    fi
    sleep 0.2
  done
  export STREAMKIT_TEST_AZURITE="http://127.0.0.1:$port"
  export AZURITE_BLOB_STORAGE_URL="$STREAMKIT_TEST_AZURITE"
  python3 scripts/azurite-container.py "$STREAMKIT_TEST_AZURITE" streamkit-test || return 1
  echo "throwaway Azurite (Blob Storage) at $STREAMKIT_TEST_AZURITE (data in $dir)"
}
