#!/usr/bin/env bash
# How fast `shopctl replay` writes the event store to a file. From any directory:
#
#   bench/replay.sh                      1,000,000 events, 3 measured runs per format, medians
#   bench/replay.sh --events 200000 --runs 5 --formats jsonl,csv
#
# Options:
#   --events N       events in the store (default 1000000)
#   --runs N         measured runs per format (default 3); one unmeasured warm-up run comes first
#   --formats LIST   comma-separated: jsonl, csv (default jsonl,csv)
#   --no-build       use the shopctl already in $BUILD_DIR
#   --keep           keep the work folder (cluster, outputs) and print its path
#
# Environment: BUILD_DIR (default ./build; configured as RelWithDebInfo when new), TMPDIR (where
# the throwaway cluster and the output files go).
#
# What it does: builds shopctl; starts a throwaway PostgreSQL (scripts/pg.sh start-temp: fsync
# off, which only speeds up the filling); fills the events table straight with SQL
# (bench/fill-events.sh: realistic envelopes and payloads of five kinds, about 200 bytes of JSON
# each; this is not the command path, which is measured by bench/run.sh); then times `shopctl replay --format F --output FILE` (wall
# clock, the whole process: connect, horizon, COPY, formatting, writing, rename), checks the
# line count, and prints every run and the median in events/s, with the load average before
# each run (other work on the machine slows it down). Stops and deletes everything on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }

EVENTS=1000000
RUNS=3
FORMATS=jsonl,csv
BUILD=1
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --events) EVENTS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --formats) FORMATS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
[[ "$EVENTS" =~ ^[0-9]+$ ]] && [ "$EVENTS" -ge 1 ] || { echo "--events wants a whole number >= 1" >&2; exit 2; }
[[ "$RUNS" =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 1 ] || { echo "--runs wants a whole number >= 1" >&2; exit 2; }
IFS=, read -r -a FORMAT_LIST <<<"$FORMATS"
for f in "${FORMAT_LIST[@]}"; do
  case "$f" in jsonl | csv) ;; *) echo "unknown format: $f" >&2; exit 2 ;; esac
done

BUILD_DIR=${BUILD_DIR:-$ROOT/build}
SHOPCTL=$BUILD_DIR/tools/shopctl/shopctl
say() { printf '\n==> %s\n' "$*"; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
die() { printf 'bench/replay.sh: error: %s\n' "$*" >&2; exit 1; }

WORK=""
PG_DIR=""
cleanup() {
  local rc=$?
  trap '' INT TERM EXIT
  [ -n "$PG_DIR" ] && bash "$ROOT/scripts/pg.sh" stop-temp "$PG_DIR" >/dev/null 2>&1 || true
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
command -v psql >/dev/null 2>&1 || die "psql not found (Debian package postgresql-client)"

# ---- database --------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shop-replay-bench.XXXXXX")
say "starting a throwaway PostgreSQL"
eval "$(bash "$ROOT/scripts/pg.sh" start-temp)"
PG_DIR=$SHOP_TEST_PG_DIR
ADMIN_URL=$TEST_DATABASE_URL
psql "$ADMIN_URL" -qAtX -c "CREATE DATABASE replay_bench" >/dev/null
export DATABASE_URL=${ADMIN_URL%/*}/replay_bench
(cd "$WORK" && "$SHOPCTL" migrate >/dev/null)

say "filling the event store with $EVENTS events"
fill_start=$(date +%s.%N)
bash "$ROOT/bench/fill-events.sh" "$EVENTS"
fill_end=$(date +%s.%N)
table_size=$(psql "$DATABASE_URL" -qAtX -c "SELECT pg_size_pretty(pg_total_relation_size('events'))")
printf 'filled in %.1f s; events table with indexes: %s\n' "$(calc "$fill_end - $fill_start")" "$table_size"
# The plan of the replay's read (the same query shopctl copies out, without filters).
echo "plan of the read:"
psql "$DATABASE_URL" -qAtX -c "EXPLAIN SELECT position, stream_id, stream_version, type,
  schema_version, occurred_at, event_id, correlation_id, causation_id, actor, data FROM events
  WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY position" | sed 's/^/  /'
out_fs=$(df -PT "$WORK" | awk 'NR == 2 {print $2}')
echo "outputs go to $WORK (file system: $out_fs)"

# ---- runs ---------------------------------------------------------------------------------------------
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
SUMMARY=()
for format in "${FORMAT_LIST[@]}"; do
  say "shopctl replay --format $format --output FILE: 1 warm-up + $RUNS runs"
  out=$WORK/events.$format
  rates=()
  for ((run = 0; run <= RUNS; run++)); do
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    start=$(date +%s.%N)
    (cd "$WORK" && "$SHOPCTL" replay --format "$format" --output "$out" 2>"$WORK/replay.err") ||
      { cat "$WORK/replay.err" >&2; die "replay failed"; }
    end=$(date +%s.%N)
    lines=$(wc -l <"$out")
    want=$EVENTS
    [ "$format" = csv ] && want=$((EVENTS + 1))
    [ "$lines" -eq "$want" ] || die "the output has $lines lines, expected $want"
    seconds=$(calc "$end - $start")
    rate=$(calc "$EVENTS / $seconds")
    bytes=$(stat -c %s "$out")
    label="run $run"
    [ "$run" -eq 0 ] && label="warm-up"
    printf '  %-8s %6.2f s  %9.0f events/s  %5.0f MB  (load average before: %s)\n' \
      "$label" "$seconds" "$rate" "$(calc "$bytes / 1000000")" "$load"
    if [ "$run" -gt 0 ]; then
      rates+=("$rate")
      printf 'RESULT replay format=%s events=%s run=%s seconds=%.3f events_per_s=%.0f bytes=%s load="%s"\n' \
        "$format" "$EVENTS" "$run" "$seconds" "$rate" "$bytes" "$load" >>"$WORK/results.txt"
    fi
    rm -f "$out"
  done
  med=$(printf '%s\n' "${rates[@]}" | median)
  SUMMARY+=("$(printf '%-5s median %9.0f events/s over %s runs of %s events' "$format" "$med" "$RUNS" "$EVENTS")")
done

say "summary (target: >= 200,000 events/s for 1,000,000 events)"
cat "$WORK/results.txt"
printf '%s\n' "${SUMMARY[@]}"
echo "machine: $(nproc) CPUs; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
