#!/usr/bin/env bash
# How fast `shopctl rebuild --all` rebuilds the read models. From any directory:
#
#   bench/rebuild.sh                     ~1,090,000 events (seed-demo), 3 measured rebuilds, median
#   bench/rebuild.sh --orders 20000 --runs 5
#
# Options:
#   --orders N       seed-demo shopping sessions (default 100000: about 1,090,000 events with
#                    --users 5000 --products 500)
#   --runs N         measured rebuilds (default 3)
#   --no-build       use the shopctl and projector already in $BUILD_DIR
#   --keep           keep the work folder (cluster, logs) and print its path
#
# Environment: BUILD_DIR (default ./build; configured as RelWithDebInfo when new), TMPDIR (where
# the cluster goes; a real disk, not tmpfs, for durable figures).
#
# What it does: builds shopctl; makes a DURABLE PostgreSQL (fsync, synchronous_commit and
# full_page_writes on) in a temp folder; fills the store through the command path with
# `shopctl seed-demo` (its own sessions commit with synchronous_commit=off, which only speeds up
# the filling); projects the live read models once with `shopctl rebuild --all` (not measured);
# then times `shopctl rebuild --all` RUNS times (wall clock, the whole process: a new version
# beside the live one, bulk build, catch-up, the switch, the old version dropped) and prints each
# run and the median in events/s over the events in the store, with the load average before each
# run. Stops and deletes everything on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }

ORDERS=100000
RUNS=3
BUILD=1
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --orders) ORDERS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
[[ "$ORDERS" =~ ^[0-9]+$ ]] || { echo "--orders wants a whole number" >&2; exit 2; }
[[ "$RUNS" =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 1 ] || { echo "--runs wants a whole number >= 1" >&2; exit 2; }

BUILD_DIR=${BUILD_DIR:-$ROOT/build}
SHOPCTL=$BUILD_DIR/tools/shopctl/shopctl
say() { printf '\n==> %s\n' "$*"; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
die() { printf 'bench/rebuild.sh: error: %s\n' "$*" >&2; exit 1; }
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
as_pg() { if [ "$IS_ROOT" -eq 1 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "no free port"
}

WORK=""
PG_STARTED=0
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] || die "PostgreSQL server binaries not found (scripts/install-deps.sh)"
cleanup() {
  local rc=$?
  trap '' INT TERM EXIT
  if [ "$PG_STARTED" -eq 1 ]; then
    as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "$KEEP" -eq 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- build ---------------------------------------------------------------------------------------
if [ "$BUILD" -eq 1 ]; then
  say "building shopctl in $BUILD_DIR"
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  nice ninja -C "$BUILD_DIR" shopctl >/dev/null
fi
[ -x "$SHOPCTL" ] || die "no shopctl at $SHOPCTL (build it, or drop --no-build)"

# ---- database ------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shop-rebuild-bench.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/pg"
[ "$IS_ROOT" -eq 1 ] && chown postgres:postgres "$WORK/pg"
chmod 700 "$WORK/pg"
say "a durable PostgreSQL in $WORK/pg"
PG_PORT=$(free_port)
as_pg "$PGBIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w -t 60 -o "\
 -p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1 \
 -c fsync=on -c synchronous_commit=on -c full_page_writes=on \
 -c shared_buffers=256MB -c max_wal_size=4GB" start >/dev/null
PG_STARTED=1
PSQL=("$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE shop" >/dev/null
export DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/shop"
export JWT_SECRET
JWT_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
(cd "$WORK" && "$SHOPCTL" migrate >/dev/null)

say "filling the store through the command path: seed-demo --products 500 --users 5000 --orders $ORDERS"
fill_start=$(date +%s.%N)
(cd "$WORK" && PGOPTIONS="-c synchronous_commit=off" "$SHOPCTL" seed-demo --products 500 \
  --users 5000 --orders "$ORDERS" --seed 7 >"$WORK/seed.log" 2>&1) ||
  { tail -n 20 "$WORK/seed.log" >&2; die "seed-demo failed"; }
fill_end=$(date +%s.%N)
EVENTS=$("${PSQL[@]}" -d shop -c "SELECT count(*) FROM events")
printf 'filled in %.1f s: %s events, events table with indexes %s\n' \
  "$(calc "$fill_end - $fill_start")" "$EVENTS" \
  "$("${PSQL[@]}" -d shop -c "SELECT pg_size_pretty(pg_total_relation_size('events'))")"
"${PSQL[@]}" -d shop -c "VACUUM ANALYZE events" -c "CHECKPOINT" >/dev/null

say "projecting the live read models once (not measured)"
(cd "$WORK" && "$SHOPCTL" rebuild --all >"$WORK/rebuild-0.log" 2>&1) ||
  { tail -n 20 "$WORK/rebuild-0.log" >&2; die "rebuild failed"; }

# ---- runs ------------------------------------------------------------------------------------------
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
say "shopctl rebuild --all: $RUNS runs over $EVENTS events"
rates=()
for ((run = 1; run <= RUNS; run++)); do
  "${PSQL[@]}" -d shop -c "CHECKPOINT" >/dev/null
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  start=$(date +%s.%N)
  (cd "$WORK" && "$SHOPCTL" rebuild --all >"$WORK/rebuild-$run.log" 2>&1) ||
    { tail -n 20 "$WORK/rebuild-$run.log" >&2; die "rebuild failed"; }
  end=$(date +%s.%N)
  secs=$(calc "$end - $start")
  rate=$(calc "$EVENTS / $secs")
  rates+=("$rate")
  printf '  run %d: %.2f s, %.0f events/s (load average before: %s)\n' "$run" "$secs" "$rate" "$load"
done
med=$(printf '%s\n' "${rates[@]}" | median)
printf '\nmedian: %.0f events/s over %s events (%d runs)\n' "$med" "$EVENTS" "$RUNS"
echo "last run's output:"
sed 's/^/  /' "$WORK/rebuild-$RUNS.log" | tail -n 15
