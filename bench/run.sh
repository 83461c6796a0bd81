#!/usr/bin/env bash
# The shop backend's reproducible load run. From any directory:
#
#   bench/run.sh                     3 runs of 15 s per measurement, medians (about 11 minutes
#                                    on an idle machine; longer when it has to wait, see below)
#   bench/run.sh --quick             1 run of 5 s per measurement (about 3 minutes)
#   bench/run.sh --runs 5 --duration 30
#
# Options:
#   --runs N          repeat every measurement N times and report the median (default 3)
#   --duration S      measured seconds per measurement (default 15); each has a warm-up too
#   --warmup S        unmeasured seconds before each measurement (default 3)
#   --connections N   connections for the list, add-to-cart and checkout loads (default 32)
#   --vis-rate R      add-to-cart commands/s paced beside the visibility probes (default 1000);
#                     visibility-max measures beside as many as 16 connections can send
#   --quick           --runs 1 --duration 5 --warmup 1, no pg_test_fsync, pgbench scale 1
#   --no-build        use the binaries already in $BUILD_DIR
#   --no-install      do not apt-get anything (fail if something is missing)
#   --wait-idle       before measuring, wait (up to 10 min) for the 1-min load average < 1.5
#   --keep            keep the temporary PostgreSQL cluster and logs (path printed at the end)
#   --only LIST       comma-separated subset of: list,product,add-to-cart,checkout,visibility,
#                     pgbench
#   --kafka           run with Apache Kafka: a throwaway broker (infra/kafka/kafka.sh), shop-relay
#                     publishing every event, and the projector consuming the topics; visibility is
#                     then command -> store -> relay -> Kafka -> projector -> query API
#   --busy-limit P    repeat a measurement (at most twice) when processes that are not part of the
#                     run used P % of a CPU or more during it, after waiting for them (default 15;
#                     0: never repeat)
#
# Environment: BUILD_DIR (default ./build), BUILD_TYPE (default RelWithDebInfo for a new build
# directory; an existing one keeps its type unless BUILD_TYPE is set), RESULTS_DIR
# (default bench/results/<date>), COMMAND_API_THREADS / QUERY_API_THREADS (default 16 and 8, as the services),
# TMPDIR (where the throwaway cluster goes; must be a real disk, not tmpfs, for durable commits).
#
# What it does: installs wrk, PostgreSQL (server, client, contrib: pgbench) and sysstat (pidstat)
# when missing; builds command-api, query-api, projector, shopctl and bench/shop-loadgen; starts a
# fresh DURABLE PostgreSQL (fsync=on, synchronous_commit=on, full_page_writes=on) in a temp dir on
# a free port; starts projector, command-api and query-api (LOG_LEVEL=warn); creates an admin
# (shopctl create-admin), loads the demo catalog (shopctl seed-demo) and 200 more products with
# big stock (shop-loadgen seed, through the command API); then, per run: wrk on the product list
# and on single products, shop-loadgen add-to-cart (then how fast the projector catches up),
# checkout, visibility (beside 1,000 paced adds/s) and visibility-max (beside as many adds as 16
# connections send), pgbench -N and -S on a separate database of the same server. Writes every
# raw output, results.txt (one RESULT line per measurement), cpu.txt (pidstat), pg_stat_statements.txt,
# pg_stat_user_tables.txt and summary.md (medians beside the targets) to RESULTS_DIR and prints
# the summary. Everything it started is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }

RUNS=3
DURATION=15
WARMUP=3
CONNECTIONS=32
QUICK=0
BUILD=1
INSTALL=1
WAIT_IDLE=0
KEEP=0
ONLY="list,product,add-to-cart,checkout,visibility,pgbench"
PGBENCH_SCALE=10
BENCH_PRODUCTS=200
VIS_PROBES=4
VIS_BACKGROUND=16
VIS_RATE=1000
BUSY_LIMIT=15
KAFKA=0
KAFKA_DIR=""

while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --vis-rate) VIS_RATE=$2; shift 2 ;;
    --quick) QUICK=1; RUNS=1; DURATION=5; WARMUP=1; PGBENCH_SCALE=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --no-install) INSTALL=0; shift ;;
    --wait-idle) WAIT_IDLE=1; shift ;;
    --keep) KEEP=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --busy-limit) BUSY_LIMIT=$2; shift 2 ;;
    --kafka) KAFKA=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
for v in RUNS DURATION WARMUP CONNECTIONS BUSY_LIMIT VIS_RATE; do
  [[ "${!v}" =~ ^[0-9]+$ ]] && [ "${!v}" -ge 0 ] || { echo "--${v,,} wants a whole number" >&2; exit 2; }
done
[ "$RUNS" -ge 1 ] && [ "$DURATION" -ge 1 ] || { echo "--runs and --duration must be >= 1" >&2; exit 2; }

wanted() { [[ ",$ONLY," == *",$1,"* ]]; }

BUILD_DIR=${BUILD_DIR:-$ROOT/build}
BUILD_TYPE_GIVEN=${BUILD_TYPE:-}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)}
export COMMAND_API_THREADS=${COMMAND_API_THREADS:-16}
export QUERY_API_THREADS=${QUERY_API_THREADS:-8}

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'bench/run.sh: error: %s\n' "$*" >&2; exit 1; }

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
as_pg() { if [ "$IS_ROOT" -eq 1 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# ---- packages ------------------------------------------------------------------------------------
find_pgbin() {
  find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1
}

install_packages() {
  if [ -x "$ROOT/scripts/install-deps.sh" ]; then
    "$ROOT/scripts/install-deps.sh"  # compilers, libraries, PostgreSQL, wrk
  fi
  local need=() pgbin
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
  command -v pidstat >/dev/null 2>&1 || need+=(sysstat)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  pgbin=$(find_pgbin)
  { [ -n "$pgbin" ] && [ -x "$pgbin/initdb" ]; } || need+=(postgresql)
  { [ -n "$pgbin" ] && [ -x "$pgbin/pgbench" ]; } || command -v pgbench >/dev/null 2>&1 ||
    need+=(postgresql-contrib postgresql-client)
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    local sudo=""
    [ "$IS_ROOT" -eq 1 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

# ---- cleanup -------------------------------------------------------------------------------------
declare -A PIDS=()
WORK=""
PGBIN=""
PG_STARTED=0
MONITOR_PID=""

stop_pid() { # NAME PID
  local name=$1 pid=$2
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "  $name did not stop within 10 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap '' INT TERM EXIT
  [ -n "$MONITOR_PID" ] && kill "$MONITOR_PID" 2>/dev/null || true
  local name
  for name in query-api command-api relay projector; do
    [ -n "${PIDS[$name]:-}" ] && stop_pid "$name" "${PIDS[$name]}"
  done
  if [ -n "$KAFKA_DIR" ]; then
    bash "$ROOT/infra/kafka/kafka.sh" stop-temp "$KAFKA_DIR" >/dev/null 2>&1 || true
  fi
  if [ "$PG_STARTED" -eq 1 ]; then
    as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "$KEEP" -eq 1 ] || [ "$rc" -ne 0 ]; then
      echo "kept the cluster and logs in $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "no free port found"
}
random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# ---- 1. packages and build -----------------------------------------------------------------------
if [ "$INSTALL" -eq 1 ]; then
  say "packages"
  install_packages
fi
PGBIN=$(find_pgbin)
[ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] || die "PostgreSQL server binaries not found"
PGBENCH=$PGBIN/pgbench
[ -x "$PGBENCH" ] || PGBENCH=$(command -v pgbench) || die "pgbench not found"
command -v wrk >/dev/null 2>&1 || die "wrk not found"

if [ "$BUILD" -eq 1 ]; then
  say "build ($BUILD_DIR, $BUILD_TYPE)"
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DSHOP_SANITIZE=OFF
  elif [ -n "$BUILD_TYPE_GIVEN" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" >/dev/null
  fi  # else: an existing build directory keeps its own type (reported below)
  ninja -C "$BUILD_DIR" command-api query-api projector shopctl shop-loadgen shop-relay
fi
BIN_COMMAND=$BUILD_DIR/command-api/command-api
BIN_QUERY=$BUILD_DIR/query-api/query-api
BIN_PROJECTOR=$BUILD_DIR/projector/projector
BIN_RELAY=$BUILD_DIR/command-api/shop-relay
BIN_SHOPCTL=$BUILD_DIR/tools/shopctl/shopctl
LOADGEN=$BUILD_DIR/bench/shop-loadgen
for b in "$BIN_COMMAND" "$BIN_QUERY" "$BIN_PROJECTOR" "$BIN_SHOPCTL" "$LOADGEN"; do
  [ -x "$b" ] || die "$b is missing (run without --no-build)"
done
ACTUAL_BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD_DIR/CMakeCache.txt")
ACTUAL_BUILD_TYPE=${ACTUAL_BUILD_TYPE:-RelWithDebInfo (project default)}
SANITIZE=$(sed -n 's/^SHOP_SANITIZE:BOOL=//p' "$BUILD_DIR/CMakeCache.txt")
[ "$SANITIZE" != "ON" ] || die "$BUILD_DIR is built with sanitizers: use another BUILD_DIR"

mkdir -p "$RESULTS_DIR"
RESULTS=$RESULTS_DIR/results.txt
CPU=$RESULTS_DIR/cpu.txt
: >"$RESULTS"
: >"$CPU"

# ---- 2. the machine ------------------------------------------------------------------------------
say "machine"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) logical CPUs" \
    "($(lscpu | sed -n 's/^Thread(s) per core:[[:space:]]*//p') thread(s) per core)"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
  echo "disk: $(df -hT "${TMPDIR:-/tmp}" | awk 'NR==2 {print $1 " " $2 " " $3}')" \
    "($(lsblk -dno NAME,SIZE,ROTA,MODEL 2>/dev/null | grep -v '^zram' | head -1 | sed 's/  */ /g'))"
  echo "kernel: $(uname -sr)"
  echo "postgresql: $("$PGBIN/postgres" --version)"
  echo "build: $ACTUAL_BUILD_TYPE ($BUILD_DIR), $(c++ --version | head -1)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "($(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) changed files in the tree)"
  echo "threads: command-api $COMMAND_API_THREADS, query-api $QUERY_API_THREADS"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$RESULTS_DIR/machine.txt"
[ "$(stat -f -c %T "${TMPDIR:-/tmp}")" != "tmpfs" ] ||
  echo "WARNING: ${TMPDIR:-/tmp} is tmpfs: fsync costs nothing there; set TMPDIR to a real disk"

if [ "$WAIT_IDLE" -eq 1 ]; then
  for _ in $(seq 1 120); do
    awk '{exit !($1 < 1.5)}' /proc/loadavg && break
    echo "  load average $(cut -d' ' -f1 /proc/loadavg): waiting for the machine to be idle"
    sleep 5
  done
fi

# ---- 3. PostgreSQL -------------------------------------------------------------------------------
say "PostgreSQL (durable: fsync=on, synchronous_commit=on)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shop-bench.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/pg" "$WORK/logs"
[ "$IS_ROOT" -eq 1 ] && chown postgres:postgres "$WORK/pg"
chmod 700 "$WORK/pg"
PG_PORT=$(free_port)
as_pg "$PGBIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w -t 60 -o "\
 -p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1 \
 -c fsync=on -c synchronous_commit=on -c full_page_writes=on \
 -c shared_buffers=256MB -c max_connections=200 -c max_wal_size=2GB \
 -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all" start >/dev/null
PG_STARTED=1
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE shop" -c "CREATE DATABASE pgbench"
"${PSQL[@]}" -d shop -c "CREATE EXTENSION pg_stat_statements"
"${PSQL[@]}" -d postgres -At -c "SELECT name || '=' || setting FROM pg_settings WHERE name IN
  ('fsync','synchronous_commit','full_page_writes','wal_sync_method','shared_buffers',
   'max_connections','commit_delay')" | tr '\n' ' ' | sed 's/^/  settings: /; s/$/\n/'
echo "  cluster in $WORK/pg, port $PG_PORT"

# ---- 4. the services -----------------------------------------------------------------------------
say "services"
CMD_PORT=$(free_port)
QRY_PORT=$(free_port)
while [ "$QRY_PORT" = "$CMD_PORT" ]; do QRY_PORT=$(free_port); done
export DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/shop"
export JWT_SECRET
JWT_SECRET=$(random_hex 32)
export PAYMENT_WEBHOOK_SECRET
PAYMENT_WEBHOOK_SECRET=$(random_hex 32)
export COMMAND_API_PORT=$CMD_PORT QUERY_API_PORT=$QRY_PORT
export LOG_LEVEL=warn
export ENV_FILE=$WORK/no-such.env
CMD_URL=http://127.0.0.1:$CMD_PORT
QRY_URL=http://127.0.0.1:$QRY_PORT

"$BIN_SHOPCTL" migrate >/dev/null
start_service() { # NAME BINARY
  "$2" >>"$WORK/logs/$1.log" 2>&1 &
  PIDS[$1]=$!
  echo "  $1 started (pid ${PIDS[$1]})"
}
check_alive() {
  local name
  for name in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
      echo "bench/run.sh: $name died; the end of its log:" >&2
      tail -n 30 "$WORK/logs/$name.log" >&2
      exit 1
    fi
  done
}
wait_health() { # NAME URL
  for _ in $(seq 1 600); do
    check_alive
    curl -fsS -o /dev/null --max-time 2 "$2" 2>/dev/null && return 0
    sleep 0.1
  done
  die "$1 did not answer $2 within 60 s"
}
if [ "$KAFKA" -eq 1 ]; then
  eval "$(bash "$ROOT/infra/kafka/kafka.sh" start-temp)"
  KAFKA_DIR=$TEST_KAFKA_DIR
  export KAFKA_BROKERS=$TEST_KAFKA_BROKERS
  unset TEST_KAFKA_BROKERS TEST_KAFKA_DIR
  echo "  Kafka broker $KAFKA_BROKERS"
  start_service relay "$BIN_RELAY"
else
  unset KAFKA_BROKERS
fi
start_service projector "$BIN_PROJECTOR"
start_service command-api "$BIN_COMMAND"
start_service query-api "$BIN_QUERY"
wait_health command-api "$CMD_URL/health"
wait_health query-api "$QRY_URL/health"
echo "  command API $CMD_URL, query API $QRY_URL"

# ---- 5. catalog ----------------------------------------------------------------------------------
say "catalog: admin, demo catalog and $BENCH_PRODUCTS products with big stock"
ADMIN_EMAIL=bench-admin@example.com
ADMIN_PASSWORD=$(random_hex 12)
"$BIN_SHOPCTL" create-admin --email "$ADMIN_EMAIL" --password "$ADMIN_PASSWORD"
"$BIN_SHOPCTL" seed-demo
"$LOADGEN" --command-url "$CMD_URL" seed --admin-email "$ADMIN_EMAIL" \
  --admin-password "$ADMIN_PASSWORD" --products "$BENCH_PRODUCTS" --stock 1000000000 \
  --out "$WORK/products.txt"
LAST_PRODUCT=$(tail -n 1 "$WORK/products.txt")
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "$QRY_URL/api/products/$LAST_PRODUCT" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null "$QRY_URL/api/products/$LAST_PRODUCT" || die "the seeded products never appeared in the query API"
echo "  $(curl -fsS "$QRY_URL/api/products?limit=20" | wc -c) bytes in the first page of the product list"

# ---- measuring helpers ---------------------------------------------------------------------------
# Waits until the projector has caught up (its position stops moving), so that one measurement's
# backlog does not eat the next one's CPU.
settle() {
  local last="" now
  for _ in $(seq 1 600); do
    now=$(curl -fsS "$QRY_URL/health" 2>/dev/null | sed -n 's/.*"projected_position":\([0-9]*\).*/\1/p')
    [ -n "$now" ] && [ "$now" = "$last" ] && return 0
    last=$now
    sleep 0.5
  done
  echo "  (the projector did not settle within 5 min)"
}

# How far the projector is behind the event store right after a write load, and how fast it
# catches up with nothing else running (its own throughput). catch_up RUN
catch_up() {
  local head behind="" t0 t1 projected=0
  head=$("${PSQL[@]}" -d shop -At -c "SELECT coalesce(max(position), 0) FROM events")
  t0=$(date +%s.%N)
  for _ in $(seq 1 3000); do
    projected=$(curl -fsS "$QRY_URL/health" 2>/dev/null | sed -n 's/.*"projected_position":\([0-9]*\).*/\1/p')
    [ -n "$projected" ] && [ "$projected" -ge "$head" ] && break
    [ -n "$behind" ] || behind=$(( head - ${projected:-0} ))
    sleep 0.05
  done
  t1=$(date +%s.%N)
  behind=${behind:-0}
  echo "RESULT run=$1 scenario=projector-catch-up events=$behind seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')" \
    "rate=$(awk -v a="$t0" -v b="$t1" -v n="$behind" 'BEGIN {printf "%.0f", (b - a > 0.06 && n > 0) ? n / (b - a) : 0}')" |
    tee -a "$RESULTS"
}

# Our processes now: the services, our PostgreSQL's postmaster and its children (backends come
# and go, so this is sampled during each measurement too).
our_pids() {
  local name pm
  for name in "${!PIDS[@]}"; do echo "${PIDS[$name]}"; done
  [ -n "$KAFKA_DIR" ] && cat "$KAFKA_DIR/broker.pid" 2>/dev/null
  pm=$(head -n 1 "$WORK/pg/data/postmaster.pid" 2>/dev/null || true)
  if [ -n "$pm" ]; then
    echo "$pm"
    ps -o pid= --ppid "$pm" 2>/dev/null | tr -d ' '
  fi
}

# pidstat output -> "NAME CPU" per class: our commands by name (services and PostgreSQL only when
# they are ours), "kernel" (kernel threads: the disk's and network's work on our behalf), and
# "other" (everything else: someone else's compiler or cluster). pidstat only lists processes
# still alive at its end, so short-lived ones (a compiler's cc1plus) would be missed: with the
# machine's busy time from /proc/stat at both ends, "other" is at least busy time minus the rest.
# classify PIDSTAT_FILE PID_FILE [STAT_BEFORE STAT_AFTER]
classify() {
  local busy=""
  if [ -n "${3:-}" ] && [ -s "$3" ] && [ -s "${4:-}" ]; then
    busy=$(cat "$3" "$4" | awk -v n="$(nproc)" '
      { b = $2 + $3 + $4 + $7 + $8 + $9; t = b + $5 + $6 }
      NR == 1 { b0 = b; t0 = t }
      NR == 2 { if (t > t0) printf "%.1f", (b - b0) / (t - t0) * 100 * n }')
  fi
  awk -v busy="$busy" '
    FNR == NR { mine[$1] = 1; next }
    /^Average:/ && $3 ~ /^[0-9]+$/ {
      c = $NF
      if (c ~ /^(postgres|command-api|query-api|projector|shop-relay|java)$/) { if (!($3 in mine)) c = "other" }
      else if (c ~ /^(wrk|shop-loadgen|pgbench)$/) { }
      else if (c ~ /^(kworker|jbd2|ksoftirqd|kcompactd|kswapd|rcu_|migration|irq\/|kthreadd|writeback)/) c = "kernel"
      else c = "other"
      cpu[c] += $(NF-2)
    }
    END {
      if (busy != "") {
        known = 0
        for (c in cpu) if (c != "other") known += cpu[c]
        if (busy - known > cpu["other"]) cpu["other"] = busy - known
      }
      for (c in cpu) printf "%s %.1f\n", c, cpu[c]
    }
  ' "$2" "$1"
}

# Samples per-process CPU (pidstat) during the measured part of a measurement: from when FILE
# says "measuring" (shop-loadgen's stderr), or after DELAY seconds when it is a number.
# monitor_start TAG DELAY|FILE SECONDS
monitor_start() {
  MONITOR_PID=""
  command -v pidstat >/dev/null 2>&1 || return 0
  local out=$RESULTS_DIR/pidstat-$1.txt start=$2 seconds=$3
  rm -f "$out" "$out.pids" "$out.stat0" "$out.stat1"
  (
    if [[ "$start" =~ ^[0-9]+$ ]]; then
      sleep "$start"
    else
      for _ in $(seq 1 1200); do
        grep -q '^measuring' "$start" 2>/dev/null && break
        sleep 0.1
      done
      sleep 1
    fi
    head -n 1 /proc/stat >"$out.stat0"
    LC_ALL=C pidstat -u "$seconds" 1 >"$out" 2>/dev/null &
    sleep 1
    our_pids >"$out.pids"
    wait
    head -n 1 /proc/stat >"$out.stat1"
  ) &
  MONITOR_PID=$!
}
# monitor_stop TAG: prints the classified CPU ("NAME CPU" lines).
monitor_stop() {
  [ -n "$MONITOR_PID" ] || return 0
  wait "$MONITOR_PID" 2>/dev/null || true
  MONITOR_PID=""
  local out=$RESULTS_DIR/pidstat-$1.txt
  [ -f "$out" ] || return 0
  our_pids >>"$out.pids"
  classify "$out" "$out.pids" "$out.stat0" "$out.stat1"
}

# Waits (up to 10 minutes) until processes that are not ours use less than BUSY_LIMIT % CPU.
wait_quiet() {
  local f=$WORK/quiet.txt other
  for _ in $(seq 1 60); do
    head -n 1 /proc/stat >"$f.stat0"
    LC_ALL=C pidstat -u 5 1 >"$f" 2>/dev/null || return 0
    head -n 1 /proc/stat >"$f.stat1"
    our_pids >"$f.pids"
    other=$(classify "$f" "$f.pids" "$f.stat0" "$f.stat1" | awk '$1 == "other" {print $2}')
    awk -v o="${other:-0}" -v l="$BUSY_LIMIT" 'BEGIN {exit !(o < l)}' && return 0
    echo "  other processes use ${other}% CPU: waiting for them to finish"
    sleep 5
  done
}

# wrk output -> one RESULT line (on stdout). wrk_result SCENARIO CONNECTIONS FILE
to_ms() { # wrk's "1.23ms", "456.00us", "1.02s", "2.00m"
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
    else printf "%s", v }'
}
wrk_result() {
  local scenario=$1 conns=$2 file=$3 rate p50 p90 p99 max reqs secs non2xx sockerr
  rate=$(awk '/^Requests\/sec:/ {print $2}' "$file")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$file")")
  p90=$(to_ms "$(awk '$1 == "90%" {print $2}' "$file")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$file")")
  max=$(to_ms "$(awk '$1 == "Latency" && NF >= 4 {print $4; exit}' "$file")")
  reqs=$(awk '/requests in/ {print $1}' "$file")
  secs=$(awk '/requests in/ {s = $4; sub(/s,$/, "", s); print s}' "$file")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$file")
  sockerr=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$file")
  local errors=$(( ${non2xx:-0} + ${sockerr:-0} ))
  echo "RESULT scenario=$scenario connections=$conns seconds=$secs ops=$reqs rate=$rate" \
    "errors=$errors p50_ms=$p50 p90_ms=$p90 p99_ms=$p99 max_ms=$max"
}

# Each kind of measurement writes its RESULT line to LINE_FILE and says when its measured part
# starts (monitor_start). Args: TAG, then the kind's own.
LINE_FILE=$WORK/result-line.txt
run_wrk() { # TAG -- wrk args...
  local tag=$1 out=$RESULTS_DIR/wrk-$1.txt
  shift 2
  # Warm-up (caches, connection pools), unmeasured.
  if [ "$WARMUP" -gt 0 ]; then wrk -t2 -c"$CONNECTIONS" -d"${WARMUP}s" "$@" >/dev/null; fi
  monitor_start "$tag" 1 $((DURATION - 2 > 1 ? DURATION - 2 : 1))
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" >"$out"
  wrk_result "${tag%-*}" "$CONNECTIONS" "$out" >"$LINE_FILE"
}

run_loadgen() { # TAG -- loadgen args...
  local tag=$1 out=$RESULTS_DIR/loadgen-$1.txt
  shift 2
  : >"$out.err"
  monitor_start "$tag" "$out.err" $((DURATION - 2 > 1 ? DURATION - 2 : 1))
  "$LOADGEN" --command-url "$CMD_URL" --query-url "$QRY_URL" "$@" \
    --duration "$DURATION" --warmup "$WARMUP" >"$out" 2>"$out.err" ||
    { cat "$out.err" >&2; die "shop-loadgen ${tag%-*} failed"; }
  grep -v '^RESULT' "$out" | sed 's/^/  /'
  grep '^RESULT' "$out" >"$LINE_FILE"
}

PGB=("$PGBENCH" -h 127.0.0.1 -p "$PG_PORT" -U postgres)
run_pgbench() { # TAG -- pgbench args...
  local tag=$1 out=$RESULTS_DIR/pgbench-$1.txt tps lat
  shift 2
  monitor_start "$tag" 1 $((DURATION - 2 > 1 ? DURATION - 2 : 1))
  "${PGB[@]}" "$@" -c 16 -j 2 -T "$DURATION" pgbench >"$out" 2>&1
  tps=$(awk '/^tps = / {print $3; exit}' "$out")
  lat=$(awk '/^latency average = / {print $4; exit}' "$out")
  echo "RESULT scenario=${tag%-*} connections=16 seconds=$DURATION rate=$tps latency_ms=$lat" \
    >"$LINE_FILE"
}

# measure RUN SCENARIO KIND -- args: runs one measurement; when other processes used more than
# BUSY_LIMIT % CPU during it, waits for them and repeats it (at most twice). Appends the RESULT
# line (with run= and other_cpu=) to results.txt and the CPU split to cpu.txt.
measure() {
  local run=$1 scenario=$2 kind=$3 attempt line other cpu
  shift 3
  for attempt in 1 2 3; do
    settle
    : >"$LINE_FILE"
    "run_$kind" "$scenario-$run" "$@"
    line=$(head -n 1 "$LINE_FILE")
    [ -n "$line" ] || die "$scenario: no result (see $RESULTS_DIR)"
    cpu=$(monitor_stop "$scenario-$run")
    other=$(awk '$1 == "other" {print $2}' <<<"$cpu")
    other=${other:-0}
    if [ "$BUSY_LIMIT" -gt 0 ] && [ "$attempt" -lt 3 ] &&
      awk -v o="$other" -v l="$BUSY_LIMIT" 'BEGIN {exit !(o >= l)}'; then
      echo "  $scenario: other processes used ${other}% CPU during the measurement (limit" \
        "$BUSY_LIMIT%): repeating it"
      wait_quiet
      continue
    fi
    break
  done
  line=$(sed -E "s/^RESULT /RESULT run=$run /; s/ scenario=[^ ]+/ scenario=$scenario/" <<<"$line")
  line="$line other_cpu=$other"
  echo "$line" | tee -a "$RESULTS"
  [ -z "$cpu" ] || awk -v r="$run" -v s="$scenario" \
    '{printf "CPU run=%s scenario=%s command=%s cpu=%s\n", r, s, $1, $2}' <<<"$cpu" >>"$CPU"
  check_alive
}

# ---- 6. pgbench's data and the disk --------------------------------------------------------------
if wanted pgbench; then
  say "pgbench -i -s $PGBENCH_SCALE (COPY speed) on the database pgbench"
  "${PGB[@]}" -i -q -s "$PGBENCH_SCALE" pgbench >"$RESULTS_DIR/pgbench-init.txt" 2>&1
  tail -n 1 "$RESULTS_DIR/pgbench-init.txt" | sed 's/^/  /'
  gen=$(sed -n 's/.*client-side generate \([0-9.]*\) s.*/\1/p' "$RESULTS_DIR/pgbench-init.txt")
  if [ -n "$gen" ]; then
    echo "RESULT run=1 scenario=pgbench-copy rows=$((PGBENCH_SCALE * 100000)) seconds=$gen" \
      "rate=$(awk -v n=$((PGBENCH_SCALE * 100000)) -v s="$gen" 'BEGIN {printf "%.0f", n / s}')" |
      tee -a "$RESULTS"
  fi
  if [ "$QUICK" -eq 0 ] && [ -x "$PGBIN/pg_test_fsync" ]; then
    say "pg_test_fsync (how fast this disk makes a commit durable)"
    (cd "$WORK/pg" && as_pg "$PGBIN/pg_test_fsync" -s 2 -f "$WORK/pg/fsync-test") \
      >"$RESULTS_DIR/pg_test_fsync.txt" 2>&1 || true
    fdatasync=$(awk '/one 8kB write/ {one = 1} one && /^[[:space:]]+fdatasync[[:space:]]/ {print $2; exit}' \
      "$RESULTS_DIR/pg_test_fsync.txt" | tr -d ',')
    [ -z "$fdatasync" ] || echo "RESULT run=1 scenario=fsync rate=$fdatasync" | tee -a "$RESULTS"
  fi
fi

# ---- 7. the runs ---------------------------------------------------------------------------------
for run in $(seq 1 "$RUNS"); do
  say "run $run of $RUNS ($DURATION s per measurement after ${WARMUP} s of warm-up; load average $(cut -d' ' -f1 /proc/loadavg))"
  if [ "$BUSY_LIMIT" -gt 0 ]; then wait_quiet; fi
  if wanted list; then
    measure "$run" list wrk -- "$QRY_URL/api/products?limit=20"
  fi
  if wanted product; then
    measure "$run" product wrk -- -s "$ROOT/bench/wrk/product_ids.lua" "$QRY_URL" -- "$WORK/products.txt"
  fi
  if wanted add-to-cart; then
    measure "$run" add-to-cart loadgen -- add-to-cart --connections "$CONNECTIONS" \
      --products-file "$WORK/products.txt"
    catch_up "$run"
  fi
  if wanted checkout; then
    measure "$run" checkout loadgen -- checkout --connections "$CONNECTIONS" \
      --products-file "$WORK/products.txt"
  fi
  if wanted visibility; then
    measure "$run" visibility loadgen -- visibility --connections "$VIS_PROBES" \
      --background "$VIS_BACKGROUND" --background-rate "$VIS_RATE" \
      --products-file "$WORK/products.txt"
    measure "$run" visibility-max loadgen -- visibility --connections "$VIS_PROBES" \
      --background "$VIS_BACKGROUND" --products-file "$WORK/products.txt"
  fi
  if wanted pgbench; then
    measure "$run" pgbench-N pgbench -- -N
    measure "$run" pgbench-S pgbench -- -S
  fi
done

# ---- 8. where the time goes in the database ------------------------------------------------------
"${PSQL[@]}" -d shop -c "\pset pager off" -c "
  SELECT calls, round(total_exec_time::numeric, 0) AS total_ms,
         round(mean_exec_time::numeric, 3) AS mean_ms, rows,
         left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query
  FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25" \
  >"$RESULTS_DIR/pg_stat_statements.txt" 2>&1 || true
"${PSQL[@]}" -d shop -c "\pset pager off" -c "
  SELECT relname, seq_scan, seq_tup_read, idx_scan, n_live_tup, n_dead_tup, n_tup_upd,
         n_tup_hot_upd FROM pg_stat_user_tables ORDER BY seq_tup_read DESC" \
  >"$RESULTS_DIR/pg_stat_user_tables.txt" 2>&1 || true
"${PSQL[@]}" -d shop -At -c "SELECT count(*) FROM events" >"$RESULTS_DIR/events.txt" 2>/dev/null || true
cp "$WORK/logs/"*.log "$RESULTS_DIR/" 2>/dev/null || true

# ---- 9. summary ----------------------------------------------------------------------------------
say "summary (median of $RUNS run(s))"
{
  echo "# bench/run.sh results"
  echo
  echo '```'
  cat "$RESULTS_DIR/machine.txt"
  echo "command: bench/run.sh --runs $RUNS --duration $DURATION --warmup $WARMUP --connections $CONNECTIONS$([ "$QUICK" -eq 1 ] && echo ' (--quick)')"
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo '```'
  echo
  python3 "$ROOT/bench/summarize.py" "$RESULTS" "$CPU"
} >"$RESULTS_DIR/summary.md"
cat "$RESULTS_DIR/summary.md"
echo
echo "raw outputs: $RESULTS_DIR"
