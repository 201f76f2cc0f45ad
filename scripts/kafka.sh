#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, no ZooKeeper) for tests and benchmarks.
#
#   scripts/kafka.sh fetch                     jars into the cache (once; kept between runs)
#   scripts/kafka.sh start DIR [--brokers N]   format and start N combined broker/controller
#                                              nodes on free 127.0.0.1 ports (default 1), wait
#                                              until every one serves, print
#                                              bootstrap.servers=HOST:PORT,... (also in DIR/bootstrap)
#   scripts/kafka.sh stop DIR                  stop every node of DIR (SIGTERM, then SIGKILL)
#   scripts/kafka.sh kill DIR NODE             kill -9 one node (1-based), as a crash would
#   scripts/kafka.sh restart DIR NODE          start a stopped or killed node again (same ports
#                                              and log dir) and wait until it serves
#   scripts/kafka.sh tool DIR CLASS ARGS...    run a Kafka command-line tool against DIR's
#                                              cluster, e.g. `tool DIR AclCommand --add ...`
#                                              (CLASS under org.apache.kafka.tools; the
#                                              cluster's address is passed as --bootstrap-server)
#   scripts/kafka.sh classpath                 print the broker's classpath (after fetch)
#
# start --authorizer enables ACLs (StandardAuthorizer; a resource without ACLs stays open to
# everyone), so a test can deny one topic with `tool DIR AclCommand`.
#
# The jars come from Maven Central through scripts/kafka/pom.xml into
# $STREAMKIT_KAFKA_CACHE (default ~/.cache/streamkit/kafka-<version>); the first fetch downloads
# about 30 MiB. A cluster of N > 1 nodes gets replication factor N for internal topics and
# min.insync.replicas N-1, so a topic created with replication factor 3 survives a leader loss.
# Java 17 or newer runs the broker (JAVA, or java on PATH).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
POM="$HERE/kafka/pom.xml"
VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")
CACHE=${STREAMKIT_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamkit/kafka-$VERSION}
JAVA=${JAVA:-java}
# Heap per node: small, as for a test broker; override with STREAMKIT_KAFKA_HEAP.
HEAP=${STREAMKIT_KAFKA_HEAP:-512m}

die() {
  echo "kafka.sh: $*" >&2
  exit 1
}

fetch() {
  if [ -f "$CACHE/lib/.complete" ]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (Maven fetches the broker's jars)"
  echo "kafka.sh: fetching Apache Kafka $VERSION jars into $CACHE/lib" >&2
  rm -rf "$CACHE/lib"
  mkdir -p "$CACHE"
  mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$CACHE/lib" >&2 ||
    die "maven could not fetch the broker's jars"
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

node_running() {
  local pidfile="$1/pid"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# Starts the node in directory $1 (already formatted) in the background.
launch() {
  local node="$1"
  node_running "$node" && return 0
  # The previous run's "started" line must not satisfy the wait.
  [ -f "$node/server.log" ] && mv "$node/server.log" "$node/server.log.$(date +%s%N)"
  # setsid: the node outlives the caller's process group (a test's kill of its own children
  # must not take the broker with it); the caller stops it with `stop`.
  setsid "$JAVA" -Xms128m -Xmx"$HEAP" -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Xshare:auto \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$node/log4j2.properties" \
    -cp "$(classpath)" kafka.Kafka "$node/server.properties" \
    >"$node/stdout.log" 2>&1 </dev/null &
  echo $! >"$node/pid"
}

# Waits until the node in $1 logged that it started (and is still alive).
wait_started() {
  local node="$1" deadline=$((SECONDS + ${STREAMKIT_KAFKA_START_TIMEOUT:-120}))
  until grep -q "Kafka Server started" "$node/server.log" 2>/dev/null; do
    if ! node_running "$node"; then
      tail -n 40 "$node/stdout.log" "$node/server.log" >&2 2>/dev/null || true
      die "node $node exited while starting"
    fi
    [ $SECONDS -lt $deadline ] || die "node $node did not start in time (see $node/server.log)"
    sleep 0.2
  done
}

start() {
  local dir="$1" n=1 authorizer=""
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --brokers) n="$2"; shift 2 ;;
      --authorizer)
        authorizer=$'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\nallow.everyone.if.no.acl.found=true'
        shift
        ;;
      *) die "unknown option $1" ;;
    esac
  done
  [ "$n" -ge 1 ] || die "--brokers must be at least 1"
  fetch
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local ports voters="" bootstrap="" i
  read -r -a ports <<<"$(free_ports $((2 * n)))"
  for ((i = 1; i <= n; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:${ports[$((2 * i - 1))]}"
    bootstrap+="${bootstrap:+,}127.0.0.1:${ports[$((2 * i - 2))]}"
  done
  local cluster_id rf=$n min_isr=$((n > 1 ? n - 1 : 1))
  cluster_id=$(python3 -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
  for ((i = 1; i <= n; i++)); do
    local node="$dir/node-$i"
    mkdir -p "$node"
    cat >"$node/server.properties" <<EOF
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:${ports[$((2 * i - 2))]},CONTROLLER://127.0.0.1:${ports[$((2 * i - 1))]}
advertised.listeners=PLAINTEXT://127.0.0.1:${ports[$((2 * i - 2))]}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$node/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
# a test cluster: small segments and fast checks so retention and compaction can be watched
log.segment.bytes=16777216
log.retention.check.interval.ms=5000
log.cleaner.backoff.ms=1000
unclean.leader.election.enable=false
$authorizer
EOF
    cat >"$node/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $node/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
EOF
    "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$node/log4j2.properties" -cp "$(classpath)" \
      kafka.tools.StorageTool format --cluster-id="$cluster_id" -c "$node/server.properties" \
      >"$node/format.log" 2>&1 || { cat "$node/format.log" >&2; die "format of node $i failed"; }
  done
  for ((i = 1; i <= n; i++)); do
    launch "$dir/node-$i"
  done
  for ((i = 1; i <= n; i++)); do
    wait_started "$dir/node-$i"
  done
  echo "$n" >"$dir/nodes"
  echo "$bootstrap" >"$dir/bootstrap"
  echo "bootstrap.servers=$bootstrap"
}

stop() {
  local dir="$1" node pid i
  for node in "$dir"/node-*; do
    [ -f "$node/pid" ] || continue
    pid=$(cat "$node/pid")
    kill -TERM "$pid" 2>/dev/null || true
  done
  for node in "$dir"/node-*; do
    [ -f "$node/pid" ] || continue
    pid=$(cat "$node/pid")
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$node/pid"
  done
}

kill_node() {
  local node="$1/node-$2" pid
  [ -f "$node/pid" ] || die "no node $2 in $1"
  pid=$(cat "$node/pid")
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$node/pid"
}

restart_node() {
  local node="$1/node-$2"
  [ -f "$node/server.properties" ] || die "no node $2 in $1"
  launch "$node"
  wait_started "$node"
}

tool() {
  local dir="$1" class="$2"
  shift 2
  [ -f "$dir/bootstrap" ] || die "no cluster in $dir"
  "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$dir/node-1/log4j2.properties" -cp "$(classpath)" \
    "org.apache.kafka.tools.$class" --bootstrap-server "$(cat "$dir/bootstrap")" "$@"
}

cmd=${1:-}
shift || true
case "$cmd" in
  fetch) fetch ;;
  classpath) classpath ;;
  start) [ $# -ge 1 ] || die "usage: start DIR [--brokers N]"; start "$@" ;;
  stop) [ $# -eq 1 ] || die "usage: stop DIR"; stop "$1" ;;
  kill) [ $# -eq 2 ] || die "usage: kill DIR NODE"; kill_node "$1" "$2" ;;
  tool) [ $# -ge 2 ] || die "usage: tool DIR CLASS ARGS..."; tool "$@" ;;
  restart) [ $# -eq 2 ] || die "usage: restart DIR NODE"; restart_node "$1" "$2" ;;
  *) sed -n '2,28p' "$0" >&2; exit 2 ;;
esac
