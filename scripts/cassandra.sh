#!/usr/bin/env bash
# A real Apache Cassandra node (single node, small heap) for tests.
#
#   scripts/cassandra.sh fetch        jars into the cache (once; kept between runs)
#   scripts/cassandra.sh start DIR    configure and start one node on free 127.0.0.1 ports, wait
#                                     until its CQL port serves, print cassandra=HOST:PORT
#                                     (also in DIR/address)
#   scripts/cassandra.sh stop DIR     stop the node of DIR (SIGTERM, then SIGKILL)
#   scripts/cassandra.sh classpath    print the node's classpath (after fetch)
#
# The jars come from Maven Central (org.apache.cassandra:cassandra-all, through
# scripts/cassandra/pom.xml) into $STREAMKIT_CASSANDRA_CACHE (default
# ~/.cache/streamkit/cassandra-<version>); the first fetch downloads about 66 MiB. Cassandra 5.0
# runs on Java 17 (JAVA, or java on PATH) with the module flags of its jvm17-server.options. The
# heap is 768 MiB (STREAMKIT_CASSANDRA_HEAP); a first start takes 20-60 s on 2 cores.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
POM="$HERE/cassandra/pom.xml"
VERSION=$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$POM")
CACHE=${STREAMKIT_CASSANDRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamkit/cassandra-$VERSION}
JAVA=${JAVA:-java}
HEAP=${STREAMKIT_CASSANDRA_HEAP:-768m}

die() {
  echo "cassandra.sh: $*" >&2
  exit 1
}

fetch() {
  if [ -f "$CACHE/lib/.complete" ]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (Maven fetches Cassandra's jars)"
  echo "cassandra.sh: fetching Apache Cassandra $VERSION jars into $CACHE/lib" >&2
  rm -rf "$CACHE/lib"
  mkdir -p "$CACHE"
  mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$CACHE/lib" >&2 ||
    die "maven could not fetch Cassandra's jars"
  touch "$CACHE/lib/.complete"
}

classpath() {
  fetch
  echo "$CACHE/lib/*"
}

# Prints N free TCP ports on 127.0.0.1 (bound together, so they are distinct).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

running() {
  [ -f "$1/pid" ] && kill -0 "$(cat "$1/pid")" 2>/dev/null
}

# Whether the CQL port of $1 accepts connections.
serves() {
  python3 - "$1" <<'EOF'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
try:
    socket.create_connection((host, int(port)), timeout=1).close()
except OSError:
    sys.exit(1)
EOF
}

# The flags of Cassandra 5.0's conf/jvm17-server.options that a node needs on Java 17.
JAVA17_FLAGS=(
  -Djdk.attach.allowAttachSelf=true
  --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
  --add-exports java.base/jdk.internal.ref=ALL-UNNAMED
  --add-exports java.base/sun.nio.ch=ALL-UNNAMED
  --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
  --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
  --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
  --add-exports java.sql/java.sql=ALL-UNNAMED
  --add-exports java.base/java.lang.ref=ALL-UNNAMED
  --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
  --add-opens java.base/java.lang.module=ALL-UNNAMED
  --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
  --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
  --add-opens java.base/jdk.internal.math=ALL-UNNAMED
  --add-opens java.base/jdk.internal.module=ALL-UNNAMED
  --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
  --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
  --add-opens java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens java.base/java.io=ALL-UNNAMED
  --add-opens java.base/java.nio=ALL-UNNAMED
  --add-opens java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens java.base/java.util=ALL-UNNAMED
  --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED
  --add-opens java.base/java.math=ALL-UNNAMED
  --add-opens java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens java.base/java.net=ALL-UNNAMED
)

start() {
  local dir="$1"
  fetch
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if running "$dir"; then
    echo "cassandra=$(cat "$dir/address")"
    return 0
  fi
  local ports storage cql
  read -r -a ports <<<"$(free_ports 2)"
  storage=${ports[0]}
  cql=${ports[1]}
  mkdir -p "$dir/data" "$dir/commitlog" "$dir/saved_caches" "$dir/hints" "$dir/cdc_raw"
  cat >"$dir/cassandra.yaml" <<EOF
cluster_name: streamkit-test
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
data_file_directories: [$dir/data]
commitlog_directory: $dir/commitlog
saved_caches_directory: $dir/saved_caches
hints_directory: $dir/hints
cdc_raw_directory: $dir/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:$storage"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: $storage
native_transport_port: $cql
start_native_transport: true
endpoint_snitch: SimpleSnitch
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
# a test node: small caches and no background work that a test does not need
key_cache_size: 8MiB
counter_cache_size: 1MiB
concurrent_reads: 4
concurrent_writes: 4
concurrent_compactors: 1
dynamic_snitch: false
auto_snapshot: false
EOF
  cat >"$dir/logback.xml" <<EOF
<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>$dir/system.log</file>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE" /></root>
</configuration>
EOF
  echo "127.0.0.1:$cql" >"$dir/address"
  # setsid: the node outlives the caller's process group; the caller stops it with `stop`.
  setsid "$JAVA" -Xms"$HEAP" -Xmx"$HEAP" -Xss512k -XX:+UseG1GC -XX:TieredStopAtLevel=1 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    "${JAVA17_FLAGS[@]}" \
    -Dcassandra.config="file://$dir/cassandra.yaml" -Dlogback.configurationFile="$dir/logback.xml" \
    -Dcassandra.storagedir="$dir" -Dcassandra.triggers_dir="$dir" -Dcassandra-foreground=yes -Dcassandra.jmx.local.port=0 \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=0 \
    -Dcassandra.superuser_setup_delay_ms=0 -Dcassandra.initial_token=0 \
    -cp "$(classpath)" org.apache.cassandra.service.CassandraDaemon \
    >"$dir/stdout.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  local deadline=$((SECONDS + ${STREAMKIT_CASSANDRA_START_TIMEOUT:-240}))
  until serves "127.0.0.1:$cql"; do
    if ! running "$dir"; then
      tail -n 40 "$dir/stdout.log" "$dir/system.log" >&2 2>/dev/null || true
      die "the node in $dir exited while starting"
    fi
    [ $SECONDS -lt $deadline ] || die "the node in $dir did not start in time (see $dir/system.log)"
    sleep 0.5
  done
  echo "cassandra=127.0.0.1:$cql"
}

stop() {
  local dir="$1" pid i
  [ -f "$dir/pid" ] || return 0
  pid=$(cat "$dir/pid")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/pid"
}

cmd=${1:-}
shift || true
case "$cmd" in
  fetch) fetch ;;
  classpath) classpath ;;
  start) [ $# -eq 1 ] || die "usage: start DIR"; start "$1" ;;
  stop) [ $# -eq 1 ] || die "usage: stop DIR"; stop "$1" ;;
  *) sed -n '2,16p' "$0" >&2; exit 2 ;;
esac
