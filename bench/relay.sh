#!/usr/bin/env bash
# How fast the outbox relay publishes the event store to Kafka, beside Kafka's own producer on
# the same machine. From any directory:
#
#   bench/relay.sh                       1,000,000 events, 3 measured runs, medians
#   bench/relay.sh --events 200000 --runs 5
#
# Options:
#   --events N       events in the store (default 1000000)
#   --runs N         measured runs (default 3)
#   --partitions N   partitions per topic (default 3)
#   --batch N        RELAY_BATCH_SIZE, events per Kafka transaction (default 5000)
#   --no-build       use the binaries already in $BUILD_DIR
#
# Environment: BUILD_DIR (default ./build), TMPDIR (where the throwaway servers go).
#
# What it does: builds shop-relay and shopctl; starts a throwaway PostgreSQL (scripts/pg.sh) and
# a throwaway Kafka broker (infra/kafka/kafka.sh); fills the store (bench/fill-events.sh); runs
# Kafka's ProducerPerformance (same jars as the broker) with the relay's producer settings
# (acks=all, idempotence, lz4, linger 5 ms) and records of the relay's average size, once
# without and once with transactions; then, per run, starts shop-relay with a new topic prefix
# (so every run publishes everything from position 0) and measures the wall time from its start
# until its checkpoint is the last event of the store. Prints every run and the medians.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }

EVENTS=1000000
RUNS=3
PARTITIONS=3
BATCH=5000
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --events) EVENTS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --partitions) PARTITIONS=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

BUILD_DIR=${BUILD_DIR:-$ROOT/build}
RELAY=$BUILD_DIR/command-api/shop-relay
SHOPCTL=$BUILD_DIR/tools/shopctl/shopctl
say() { printf '\n==> %s\n' "$*"; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
die() { printf 'bench/relay.sh: error: %s\n' "$*" >&2; exit 1; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

WORK=""
PG_DIR=""
KAFKA_DIR=""
RELAY_PID=""
cleanup() {
  local rc=$?
  trap '' INT TERM EXIT
  [ -n "$RELAY_PID" ] && kill "$RELAY_PID" 2>/dev/null && wait "$RELAY_PID" 2>/dev/null
  [ -n "$KAFKA_DIR" ] && bash "$ROOT/infra/kafka/kafka.sh" stop-temp "$KAFKA_DIR" >/dev/null 2>&1 || true
  [ -n "$PG_DIR" ] && bash "$ROOT/scripts/pg.sh" stop-temp "$PG_DIR" >/dev/null 2>&1 || true
  [ -n "$WORK" ] && rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$BUILD" -eq 1 ]; then
  say "building shop-relay and shopctl in $BUILD_DIR"
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  nice ninja -C "$BUILD_DIR" shop-relay shopctl >/dev/null
fi
[ -x "$RELAY" ] && [ -x "$SHOPCTL" ] || die "binaries missing in $BUILD_DIR (drop --no-build)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shop-relay-bench.XXXXXX")
say "starting a throwaway PostgreSQL and Kafka"
eval "$(bash "$ROOT/scripts/pg.sh" start-temp)"
PG_DIR=$SHOP_TEST_PG_DIR
psql "$TEST_DATABASE_URL" -qAtX -c "CREATE DATABASE relay_bench" >/dev/null
export DATABASE_URL=${TEST_DATABASE_URL%/*}/relay_bench
(cd "$WORK" && "$SHOPCTL" migrate >/dev/null)
eval "$(bash "$ROOT/infra/kafka/kafka.sh" start-temp)"
KAFKA_DIR=$TEST_KAFKA_DIR
BROKERS=$TEST_KAFKA_BROKERS

say "filling the event store with $EVENTS events"
start=$(date +%s.%N)
bash "$ROOT/bench/fill-events.sh" "$EVENTS"
printf 'filled in %.1f s\n' "$(calc "$(date +%s.%N) - $start")"
RECORD=$(psql "$DATABASE_URL" -qAtX -c "SELECT round(avg(length(data::text)) + 330) FROM events")
LAST=$(psql "$DATABASE_URL" -qAtX -c "SELECT tx_id::text || '/' || position FROM events ORDER BY events.tx_id DESC, position DESC LIMIT 1")

producer_perf() { # LABEL [EXTRA ARGS]: prints records/s
  local label=$1 topic
  shift
  topic=perf-$RANDOM$RANDOM
  bash "$ROOT/infra/kafka/kafka.sh" run-class org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$BROKERS" --create --topic "$topic" --partitions "$PARTITIONS" \
    --replication-factor 1 >/dev/null 2>&1 ||
    bash "$ROOT/infra/kafka/kafka.sh" run-class kafka.admin.TopicCommand \
      --bootstrap-server "$BROKERS" --create --topic "$topic" --partitions "$PARTITIONS" \
      --replication-factor 1 >/dev/null
  bash "$ROOT/infra/kafka/kafka.sh" run-class org.apache.kafka.tools.ProducerPerformance \
    --topic "$topic" --num-records "$EVENTS" --record-size "$RECORD" --throughput -1 \
    --producer-props bootstrap.servers="$BROKERS" acks=all enable.idempotence=true \
    compression.type=lz4 linger.ms=5 "$@" 2>&1 | tee "$WORK/perf-$label.txt" |
    awk '/records sent/ && /99.9th/ {print $4; exit}' | tr -d '('
}

say "Kafka's own producer (ProducerPerformance, $EVENTS records of $RECORD bytes)"
plain=$(producer_perf plain)
echo "  no transactions:           ${plain:-?} records/s"
txn=$(producer_perf txn --transactional-id perf-txn --transaction-duration-ms 100)
echo "  transactions every 100 ms: ${txn:-?} records/s"

say "shop-relay: $RUNS runs of $EVENTS events (batches of $BATCH, $PARTITIONS partitions)"
rates=()
sustained_rates=()
for ((run = 1; run <= RUNS; run++)); do
  prefix=bench$run-$RANDOM
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  start=$(date +%s.%N)
  KAFKA_BROKERS=$BROKERS KAFKA_TOPIC_PREFIX=$prefix KAFKA_PARTITIONS=$PARTITIONS \
    RELAY_BATCH_SIZE=$BATCH LOG_LEVEL=warn "$RELAY" >"$WORK/relay-$run.log" 2>&1 &
  RELAY_PID=$!
  first=""
  while :; do
    if [ -z "$first" ]; then
      n=$(psql "$DATABASE_URL" -qAtX -c "SELECT count(*) FROM relay_status WHERE name = '$prefix'" 2>/dev/null || echo 0)
      [ "$n" = "1" ] && first=$(date +%s.%N)
    fi
    at=$(psql "$DATABASE_URL" -qAtX -c "SELECT last_tx::text || '/' || last_position FROM relay_status WHERE name = '$prefix'" 2>/dev/null || true)
    [ "$at" = "$LAST" ] && break
    kill -0 "$RELAY_PID" 2>/dev/null || { cat "$WORK/relay-$run.log" >&2; die "the relay stopped"; }
    sleep 0.05
  done
  end=$(date +%s.%N)
  kill "$RELAY_PID"
  wait "$RELAY_PID" 2>/dev/null || true
  RELAY_PID=""
  seconds=$(calc "$end - $start")
  rate=$(calc "$EVENTS / $seconds")
  # Sustained: from the first committed batch to the last (start-up, the Kafka handshake and
  # topic creation left out).
  [ -n "$first" ] || first=$start
  sustained=$(calc "($EVENTS - $BATCH) / ($end - $first)")
  rates+=("$rate")
  sustained_rates+=("$sustained")
  printf '  run %s  %6.2f s  %9.0f events/s overall, %9.0f events/s sustained  (load average before: %s)\n' \
    "$run" "$seconds" "$rate" "$sustained" "$load"
  printf 'RESULT relay events=%s run=%s seconds=%.3f events_per_s=%.0f sustained_events_per_s=%.0f batch=%s partitions=%s load="%s"\n' \
    "$EVENTS" "$run" "$seconds" "$rate" "$sustained" "$BATCH" "$PARTITIONS" "$load" >>"$WORK/results.txt"
done

say "summary (target: relay >= 50,000 events/s sustained)"
cat "$WORK/results.txt"
printf 'relay median: %.0f events/s overall, %.0f events/s sustained, over %s runs of %s events\n' \
  "$(printf '%s\n' "${rates[@]}" | median)" "$(printf '%s\n' "${sustained_rates[@]}" | median)" "$RUNS" "$EVENTS"
printf 'ProducerPerformance: %s records/s without transactions, %s with\n' "${plain:-?}" "${txn:-?}"
echo "machine: $(nproc) CPUs; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
