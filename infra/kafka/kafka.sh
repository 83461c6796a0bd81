#!/usr/bin/env bash
# Runs a single-node Apache Kafka 3.9.1 broker (KRaft: one process is both broker and controller)
# from the jars on Maven Central, without the distribution tarball, Docker or systemd.
#
#   infra/kafka/kafka.sh fetch                      downloads the jars into the cache (once)
#   infra/kafka/kafka.sh start-temp                 throwaway broker for tests: prints
#                                                   `export TEST_KAFKA_BROKERS=127.0.0.1:PORT` and
#                                                   `export TEST_KAFKA_DIR=...` (use with eval)
#   infra/kafka/kafka.sh restart-temp DIR [--kill]  stops that broker (SIGTERM, or SIGKILL with
#                                                   --kill: a crash) and starts it again on the same
#                                                   data and ports; prints the same two lines
#   infra/kafka/kafka.sh stop-temp DIR              stops it and deletes DIR
#   infra/kafka/kafka.sh start-local DATADIR PORT   persistent broker for the local stack (formatted
#                                                   on first use, kept across runs); its controller
#                                                   listens on PORT+1 (or $KAFKA_CONTROLLER_PORT)
#   infra/kafka/kafka.sh stop-local DATADIR         stops it; the data is kept
#   infra/kafka/kafka.sh status-local DATADIR       exit 0 when it runs, and prints its port
#   infra/kafka/kafka.sh run-class CLASS [ARGS]     runs a Kafka tool from the same jars, e.g.
#                                                   org.apache.kafka.tools.ProducerPerformance
#
# Environment: KAFKA_LIBS_DIR (the jar cache, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/shop/kafka-3.9.1/libs), KAFKA_HEAP_OPTS (the broker's heap,
# default -Xmx512m), KAFKA_START_TIMEOUT (seconds to wait for a broker, default 90).
#
# The jars: pom.xml beside this script lists the broker, the Kafka tools and the log4j backend;
# `fetch` copies their runtime dependencies with Maven into the cache, which then plays the part of
# the distribution's libs/ folder. A marker file holding the hash of pom.xml is written only after
# a complete download, so an interrupted download is redone and a changed pom.xml fetches again.
#
# Layout of a broker folder (DATADIR for start-local, a mktemp folder for start-temp):
#   server.properties    the broker's configuration, written by start-temp and start-local
#   log4j.properties     a copy of log4j.properties beside this script
#   data/                log.dirs: the topics and the KRaft metadata log (formatted once)
#   logs/server.log      the broker's log
#   broker.out           the JVM's own stdout and stderr (errors from before logging starts)
#   broker.pid           the broker's process id while it runs
#
# The broker runs as whoever runs this script, root included (Kafka does not mind), in its own
# session (setsid), so Ctrl-C in a terminal reaches the script that started it rather than the
# broker, and that script stops it in order. It listens on 127.0.0.1 only.
set -euo pipefail

KAFKA_VERSION=3.9.1
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
LIBS_DIR=${KAFKA_LIBS_DIR:-${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/shop/kafka-$KAFKA_VERSION/libs}
START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
# A clean shutdown of a single node takes a few seconds; past these the broker is killed.
TEMP_STOP_TIMEOUT=30
LOCAL_STOP_TIMEOUT=60
TEMP_MARKER=.shop-kafka-temp # stop-temp only deletes folders that carry it
LIBS_MARKER=.complete

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
}

# Makes sure a command exists, installing the project's packages once if it does not.
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  log "$1 not found; installing packages (scripts/install-deps.sh)"
  bash "$ROOT/scripts/install-deps.sh" >&2
  command -v "$1" >/dev/null 2>&1 || die "$1 is still missing after scripts/install-deps.sh"
}

# ---- jars ----------------------------------------------------------------------------------------

pom_hash() { sha256sum "$SCRIPT_DIR/pom.xml" | cut -d' ' -f1; }

libs_ready() {
  [ -f "$LIBS_DIR/$LIBS_MARKER" ] && [ "$(cat "$LIBS_DIR/$LIBS_MARKER")" = "$(pom_hash)" ]
}

cmd_fetch() {
  libs_ready && return 0
  need mvn
  local parent
  parent=$(dirname "$LIBS_DIR")
  mkdir -p "$parent"
  # One download at a time (two test runs may start together): the others wait for the lock and
  # then find the marker. The subshell holds the lock on fd 9 and closes it when it ends, so no
  # broker started later inherits it.
  (
    flock -w 900 9 || die "timed out waiting for another download into $LIBS_DIR"
    libs_ready && exit 0
    rm -rf "$parent"/libs.partial.* # left by an interrupted download (we hold the lock)
    local tmp
    tmp=$(mktemp -d "$parent/libs.partial.XXXXXX")
    log "downloading the Kafka $KAFKA_VERSION jars (Maven Central) into $LIBS_DIR; only once"
    # Maven 3.8 writes colour resets even in batch mode; they are stripped from its output.
    if ! (cd "$SCRIPT_DIR" && mvn -B -q -f pom.xml dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp") 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2; then
      rm -rf "$tmp"
      die "mvn could not resolve the Kafka jars (is Maven Central reachable?)"
    fi
    [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || {
      rm -rf "$tmp"
      die "the download lacks kafka_2.13-$KAFKA_VERSION.jar"
    }
    chmod 0755 "$tmp"
    pom_hash >"$tmp/$LIBS_MARKER"
    rm -rf "$LIBS_DIR"
    mv "$tmp" "$LIBS_DIR"
    log "jars cached in $LIBS_DIR ($(find "$LIBS_DIR" -name '*.jar' | wc -l) files)"
  ) 9>"$parent/.fetch.lock"
}

# ---- helpers -------------------------------------------------------------------------------------

abspath() { realpath -m -- "$1"; }

valid_port() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }

port_in_use() {
  # A successful connect means something listens there.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints two distinct free ports on 127.0.0.1 (both sockets are bound at once, so they differ).
free_ports() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c '
import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])' && return 0
  fi
  # Fallback: random high ports that refuse connections.
  local p1 p2 i
  for i in $(seq 1 200); do
    p1=$((20000 + (RANDOM * 32768 + RANDOM + i) % 40000))
    p2=$((p1 + 1))
    if ! port_in_use "$p1" && ! port_in_use "$p2"; then
      echo "$p1 $p2"
      return 0
    fi
  done
  die "found no free TCP ports"
}

# The port of listener NAME (PLAINTEXT or CONTROLLER) in DIR/server.properties.
conf_port() {
  sed -n 's/^listeners=//p' "$1/server.properties" 2>/dev/null | tr ',' '\n' |
    sed -n "s#^$2://[^:]*:\\([0-9]*\\)\$#\\1#p"
}

# Writes DIR/server.properties and DIR/log4j.properties for a broker on PORT, controller on CPORT.
write_config() {
  local dir=$1 port=$2 cport=$3
  mkdir -p "$dir/data" "$dir/logs"
  cp "$SCRIPT_DIR/log4j.properties" "$dir/log4j.properties"
  cat >"$dir/server.properties" <<EOF
# Written by infra/kafka/kafka.sh start-temp / start-local (restart-temp keeps it).
# One process in KRaft mode, broker and controller at once, on 127.0.0.1 only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data

# A single node: the internal topics cannot have the default 3 replicas, or consumer groups and
# transactions fail. One partition each makes them quick to create on first use.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
default.replication.factor=1
min.insync.replicas=1

# Topics are created on purpose, with their own partitions and retention, never by a typo.
auto.create.topics.enable=false
num.partitions=1

# After a crash (kill -9), the restarted controller keeps the dead incarnation's registration until
# its session times out (9 s by default, then the next registration retry, about 16 s in all); a
# shorter session brings a killed broker back sooner. Heartbeats go to the same process over the
# loopback, so 6 missed ones in a row do not happen on a merely busy machine.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000

# No 3 s wait before the first consumer group rebalance.
group.initial.rebalance.delay.ms=0
# The compaction cleaner takes 128 MB of heap by default; the broker has 512 MB.
log.cleaner.dedupe.buffer.size=16777216
EOF
}

broker_pid() { cat "$1/broker.pid" 2>/dev/null || true; }

# The broker of DIR runs: its pid is alive, not a zombie, and runs kafka.Kafka on DIR's config (so
# a recycled pid is not taken for it).
is_running() {
  local dir=$1 pid state
  pid=$(broker_pid "$dir")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $dir/server.properties"
}

# Formats DIR/data for a new cluster (what bin/kafka-storage.sh format does).
format_storage() {
  local dir=$1 id
  rm -rf "$dir/data"
  mkdir -p "$dir/data"
  # A cluster id as `kafka-storage.sh random-uuid` prints it: 16 random bytes in URL-safe base64
  # without padding, not starting with '-'. Made here, it saves starting a JVM.
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    case "$id" in -*) ;; *) break ;; esac
  done
  if ! (cd "$dir" && java -Xmx256m -cp "$LIBS_DIR/*" \
    -Dlog4j.configuration="file:$SCRIPT_DIR/tools-log4j.properties" kafka.tools.StorageTool \
    format -t "$id" -c "$dir/server.properties") >"$dir/format.log" 2>&1; then
    cat "$dir/format.log" >&2
    return 1
  fi
}

# Starts the broker of DIR in the background, in its own session; the pid lands in DIR/broker.pid.
start_broker() {
  local dir=$1 i
  rm -f "$dir/broker.pid"
  # 512 MB of heap is plenty for a test broker on 2 cores; GC settings as bin/kafka-run-class.sh
  # has them.
  # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS holds several options
  (cd "$dir" && exec setsid bash -c 'echo $$ >broker.pid; exec "$@"' kafka-broker \
    java ${KAFKA_HEAP_OPTS:--Xmx512m} -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 \
    -Djava.awt.headless=true -Dlog4j.configuration="file:$dir/log4j.properties" \
    -Dkafka.logs.dir="$dir/logs" -cp "$LIBS_DIR/*" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$dir/broker.out" 2>&1) &
  for i in $(seq 1 100); do
    [ -s "$dir/broker.pid" ] && return 0
    sleep 0.05
  done
  log "the broker process did not start"
  return 1
}

# Waits until the broker of DIR accepts connections on PORT. The PLAINTEXT listener opens only
# once the broker has caught up with the metadata log and been unfenced, so an open port means
# it serves requests. Returns 1 when the process died, 2 on timeout.
wait_ready() {
  local dir=$1 port=$2 deadline
  deadline=$((SECONDS + START_TIMEOUT))
  while [ "$SECONDS" -lt "$deadline" ]; do
    is_running "$dir" || return 1
    port_in_use "$port" && is_running "$dir" && return 0
    sleep 0.2
  done
  log "the broker did not accept connections on 127.0.0.1:$port within ${START_TIMEOUT}s"
  return 2
}

# Stops the broker of DIR: SIGTERM (a clean shutdown) and, past TIMEOUT seconds, SIGKILL. With
# --kill, SIGKILL at once.
stop_broker() {
  local dir=$1 timeout=$2 mode=${3:-} pid deadline
  if ! is_running "$dir"; then
    rm -f "$dir/broker.pid"
    return 0
  fi
  pid=$(broker_pid "$dir")
  if [ "$mode" != --kill ]; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + timeout))
    while is_running "$dir" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    is_running "$dir" && log "the broker (pid $pid) did not stop within ${timeout}s; killing it"
  fi
  if is_running "$dir"; then
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while is_running "$dir" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  fi
  is_running "$dir" && die "the broker (pid $pid) survived SIGKILL"
  rm -f "$dir/broker.pid"
}

# Starts the broker of DIR and waits for it; on failure stops whatever is left of it.
start_and_wait() {
  local dir=$1 port=$2 rc=0
  start_broker "$dir" || return 1
  wait_ready "$dir" "$port" || rc=$?
  if [ "$rc" -ne 0 ]; then
    stop_broker "$dir" 5 --kill || true
    return "$rc"
  fi
}

show_logs() {
  local dir=$1
  if [ -s "$dir/logs/server.log" ]; then
    log "last lines of $dir/logs/server.log (without the configuration dumps):"
    grep -v $'^\t' "$dir/logs/server.log" | tail -n 40 >&2 || true
  fi
  if [ -s "$dir/broker.out" ]; then
    log "last lines of $dir/broker.out:"
    tail -n 20 "$dir/broker.out" >&2 || true
  fi
}

print_exports() { # DIR PORT
  printf 'export TEST_KAFKA_BROKERS=%q\nexport TEST_KAFKA_DIR=%q\n' "127.0.0.1:$2" "$1"
}

now_ms() { date +%s%3N; }

# ---- commands ------------------------------------------------------------------------------------

cmd_start_temp() {
  local t0 dir attempt port cport rc
  t0=$(now_ms)
  cmd_fetch
  need java
  dir=$(abspath "$(mktemp -d "${TMPDIR:-/tmp}/shop-kafka.XXXXXX")")
  touch "$dir/$TEMP_MARKER"
  for attempt in 1 2 3; do
    read -r port cport < <(free_ports)
    if ! valid_port "${port:-}" || ! valid_port "${cport:-}"; then
      die "could not choose free ports"
    fi
    write_config "$dir" "$port" "$cport"
    format_storage "$dir" || {
      rm -rf "$dir"
      die "formatting the broker's storage failed"
    }
    rc=0
    start_and_wait "$dir" "$port" || rc=$?
    if [ "$rc" -eq 0 ]; then
      print_exports "$dir" "$port"
      log "temporary Kafka broker on 127.0.0.1:$port, started in $(($(now_ms) - t0)) ms (data and logs in $dir)"
      return 0
    fi
    # Another program may have taken a port between choosing it and binding it: try new ones.
    if [ "$rc" -eq 1 ] && [ "$attempt" -lt 3 ] &&
      grep -qs 'Address already in use' "$dir/logs/server.log" "$dir/broker.out"; then
      log "port $port or $cport was taken meanwhile (attempt $attempt); trying other ports"
      rm -rf "$dir/logs" "$dir/broker.out"
      continue
    fi
    break
  done
  show_logs "$dir"
  rm -rf "$dir"
  die "could not start a temporary Kafka broker"
}

# DIR of a temp broker, checked.
temp_dir_arg() {
  local dir=$1
  [ -n "$dir" ] || die "usage: kafka.sh $2 DIR"
  dir=$(abspath "$dir")
  [ -d "$dir" ] || die "$dir does not exist"
  [ -f "$dir/$TEMP_MARKER" ] || die "$dir is not a temporary broker made by kafka.sh start-temp"
  echo "$dir"
}

cmd_restart_temp() {
  local dir port mode=${2:-} t0
  case "$mode" in "" | --kill) ;; *) die "usage: kafka.sh restart-temp DIR [--kill]" ;; esac
  dir=$(temp_dir_arg "${1:-}" restart-temp)
  port=$(conf_port "$dir" PLAINTEXT)
  valid_port "$port" || die "no PLAINTEXT port in $dir/server.properties"
  stop_broker "$dir" "$TEMP_STOP_TIMEOUT" "$mode"
  t0=$(now_ms)
  if ! start_and_wait "$dir" "$port"; then
    show_logs "$dir"
    die "the broker in $dir did not start again on port $port"
  fi
  print_exports "$dir" "$port"
  log "Kafka broker on 127.0.0.1:$port restarted in $(($(now_ms) - t0)) ms"
}

cmd_stop_temp() {
  local dir=${1:-}
  [ -n "$dir" ] || die "usage: kafka.sh stop-temp DIR"
  dir=$(abspath "$dir")
  [ -d "$dir" ] || return 0
  [ -f "$dir/$TEMP_MARKER" ] || die "$dir is not a temporary broker made by kafka.sh start-temp; not deleting it"
  stop_broker "$dir" "$TEMP_STOP_TIMEOUT"
  rm -rf "$dir"
}

cmd_start_local() {
  local dir port cport rport
  [ $# -eq 2 ] || die "usage: kafka.sh start-local DATADIR PORT"
  dir=$(abspath "$1")
  port=$2
  cport=${KAFKA_CONTROLLER_PORT:-$((port + 1))}
  valid_port "$port" || die "bad port: $port"
  valid_port "$cport" || die "bad controller port: $cport"
  [ "$port" != "$cport" ] || die "the broker and controller ports must differ"
  if is_running "$dir"; then
    rport=$(conf_port "$dir" PLAINTEXT)
    if [ "$rport" != "$port" ]; then
      die "the broker in $dir already runs on port $rport, not $port (stop it: kafka.sh stop-local $dir)"
    fi
    log "Kafka broker already running on 127.0.0.1:$port (data in $dir)"
    return 0
  fi
  cmd_fetch
  need java
  port_in_use "$port" && die "port $port is taken by another program; choose another one"
  port_in_use "$cport" && die "controller port $cport is taken by another program (KAFKA_CONTROLLER_PORT=...)"
  mkdir -p "$dir"
  chmod 0700 "$dir"
  write_config "$dir" "$port" "$cport"
  if [ ! -f "$dir/data/meta.properties" ]; then
    log "formatting a new Kafka broker in $dir/data"
    format_storage "$dir" || die "formatting the broker's storage failed"
  fi
  if ! start_and_wait "$dir" "$port"; then
    show_logs "$dir"
    die "the Kafka broker did not start (log: $dir/logs/server.log)"
  fi
  log "Kafka broker running on 127.0.0.1:$port (data in $dir/data, log in $dir/logs/server.log)"
}

cmd_stop_local() {
  local dir
  [ $# -eq 1 ] || die "usage: kafka.sh stop-local DATADIR"
  dir=$(abspath "$1")
  if is_running "$dir"; then
    stop_broker "$dir" "$LOCAL_STOP_TIMEOUT"
    log "Kafka broker in $dir stopped (data kept)"
  else
    log "Kafka broker in $dir is not running"
  fi
}

cmd_status_local() {
  local dir
  [ $# -eq 1 ] || die "usage: kafka.sh status-local DATADIR"
  dir=$(abspath "$1")
  if is_running "$dir"; then
    echo "running on port $(conf_port "$dir" PLAINTEXT)"
  else
    echo "not running"
    return 3
  fi
}

cmd_run_class() {
  [ $# -ge 1 ] || die "usage: kafka.sh run-class CLASS [ARGS...]"
  cmd_fetch
  need java
  local class=$1
  shift
  exec java -Xmx256m -cp "$LIBS_DIR/*" \
    -Dlog4j.configuration="file:$SCRIPT_DIR/tools-log4j.properties" "$class" "$@"
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case "$cmd" in
    fetch) cmd_fetch ;;
    start-temp) cmd_start_temp ;;
    restart-temp) cmd_restart_temp "$@" ;;
    stop-temp) cmd_stop_temp "$@" ;;
    start-local) cmd_start_local "$@" ;;
    stop-local) cmd_stop_local "$@" ;;
    status-local) cmd_status_local "$@" ;;
    run-class) cmd_run_class "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
