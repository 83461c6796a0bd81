#!/usr/bin/env bash
# Functions below run indirectly (through stage and trap), which shellcheck 0.9 takes for dead code.
# shellcheck disable=SC2317
# THE test command. From any directory:
#
#   scripts/test.sh          everything: release-ish build + all tests, then a sanitizer build
#                            (AddressSanitizer + UndefinedBehaviorSanitizer) + all tests again
#   scripts/test.sh --fast   skip the sanitizer build (quick local runs)
#
# Steps: install missing Debian packages (scripts/install-deps.sh) -> configure and build `build`
# (Ninja, RelWithDebInfo, every target) -> start a throwaway PostgreSQL (scripts/pg.sh start-temp)
# and export TEST_DATABASE_URL -> start a throwaway Kafka broker (infra/kafka/kafka.sh start-temp)
# and export TEST_KAFKA_BROKERS -> ctest on `build` (all labels: unit, pg, e2e, kafka) ->
# configure and build `build-asan` (-DSHOP_SANITIZE=ON, Debug at -O1) -> ctest on `build-asan`.
# PostgreSQL and the broker are always stopped and deleted on exit. Exits non-zero when any step
# failed; ends with a summary and a closing line `tests: N passed, N failed, N skipped`.
#
# Environment: CTEST_PARALLEL_LEVEL (default: number of cores) sets how many tests run at once.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

usage() { sed -n '4,18p' "$0" | sed 's/^# \{0,1\}//'; }

FAST=0
for arg in "$@"; do
  case "$arg" in
    --fast) FAST=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      echo "unknown option: $arg" >&2
      exit 2
      ;;
  esac
done

JOBS=$(nproc 2>/dev/null || echo 2)
# Tests may run in parallel: each PostgreSQL test makes its own database and each end-to-end test
# picks free ports. The machine has 2 cores, and the server and the services under test need CPU
# too, so we run as many tests at once as there are cores.
CTEST_JOBS=${CTEST_PARALLEL_LEVEL:-$JOBS}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shop-test.XXXXXX")
SUMMARY=()
FAILED=0
PASSED_TESTS=0
FAILED_TESTS=0
SKIPPED_TESTS=0
KAFKA_DIR="" # the Kafka broker this script started (see "Kafka broker" below)

say() { printf '\n=== %s\n' "$*"; }

record() { # STAGE STATUS SECONDS
  SUMMARY+=("$(printf '%-44s %-8s %5ss' "$1" "$2" "$3")")
  [ "$2" = ok ] || [ "$2" = skipped ] || FAILED=1
}

# Runs one stage: record NAME and its outcome; returns the command's status.
stage() {
  local name=$1 start rc
  shift
  say "$name"
  start=$SECONDS
  set +e
  "$@"
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    record "$name" ok $((SECONDS - start))
  else
    record "$name" FAILED $((SECONDS - start))
  fi
  return "$rc"
}

# A test that crashes (e.g. a sanitizer abort) never runs the destructors that stop the services
# it started, and those would outlive this script. Stop them: processes running a binary from this
# checkout's build folders whose environment points at our throwaway PostgreSQL (so never a
# scripts/run.sh stack or another checkout's tests).
reap_strays() {
  [ -n "${TEST_DATABASE_URL:-}" ] || return 0
  local hostport link pid exe pids=()
  hostport=${TEST_DATABASE_URL#*@}
  hostport=${hostport%%/*}
  for link in /proc/[0-9]*/exe; do
    pid=${link#/proc/}
    pid=${pid%/exe}
    exe=$(readlink "$link" 2>/dev/null) || continue
    case "$exe" in
      "$ROOT"/build/* | "$ROOT"/build-asan/*) ;;
      *) continue ;;
    esac
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -q "^[A-Z_]*DATABASE_URL=.*@$hostport/"; then
      echo "warning: stopping ${exe#"$ROOT"/} (pid $pid), left running by a test" >&2
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  [ "${#pids[@]}" -gt 0 ] || return 0
  sleep 5
  for pid in "${pids[@]}"; do
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
    case "$exe" in
      "$ROOT"/build/* | "$ROOT"/build-asan/*) kill -KILL "$pid" 2>/dev/null || true ;;
    esac
  done
}

cleanup() {
  local rc=$?
  reap_strays || true
  if [ -n "${KAFKA_DIR:-}" ]; then
    bash "$ROOT/infra/kafka/kafka.sh" stop-temp "$KAFKA_DIR" || true
  fi
  if [ -n "${SHOP_TEST_PG_DIR:-}" ]; then
    bash "$ROOT/scripts/pg.sh" stop-temp "$SHOP_TEST_PG_DIR" || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# cmake configure for build dir $1 with extra arguments; copes with a build folder that an older
# configuration made with another generator (it would refuse to reconfigure otherwise).
configure() {
  local dir=$1
  shift
  if [ -f "$dir/CMakeCache.txt" ] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$dir/CMakeCache.txt"; then
    echo "$dir was configured with another generator: clearing its CMake cache"
    rm -rf "$dir/CMakeCache.txt" "$dir/CMakeFiles"
  fi
  # ccache, when installed, makes rebuilds cheap; paths relative to the checkout let a fresh clone
  # elsewhere (as in CI) reuse the cache.
  local launcher=()
  if command -v ccache >/dev/null 2>&1; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$ROOT} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}
  fi
  cmake -S "$ROOT" -B "$dir" -G Ninja "${launcher[@]}" "$@"
}

build() { # DIR CMAKE-ARGS...
  local dir=$1
  shift
  configure "$dir" "$@" && cmake --build "$dir" -j "$JOBS"
}

# ctest on build dir $1; adds its counts to the totals.
run_ctest() {
  local dir=$1 log rc
  log="$WORK/ctest-$(basename "$dir").log"
  set +e
  ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$CTEST_JOBS" --timeout 600 2>&1 |
    tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  reap_strays || true
  local line total failed skipped disabled
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)
  if [ -n "$line" ]; then
    # ctest's total counts skipped tests (as not failed) but not disabled ones.
    failed=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
    total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
    skipped=$(grep -cE '^[[:space:]]*[0-9]+ - .*\(Skipped\)$' "$log" || true)
    disabled=$(grep -cE '^[[:space:]]*[0-9]+ - .*\(Disabled\)$' "$log" || true)
    PASSED_TESTS=$((PASSED_TESTS + total - failed - skipped))
    FAILED_TESTS=$((FAILED_TESTS + failed))
    SKIPPED_TESTS=$((SKIPPED_TESTS + skipped + disabled))
  elif [ "$rc" -ne 0 ]; then
    FAILED_TESTS=$((FAILED_TESTS + 1)) # ctest failed before running tests (e.g. none found)
  fi
  return "$rc"
}

# LeakSanitizer stops the process's threads with ptrace-like machinery; under some sandboxes
# (seccomp or Yama ptrace restrictions, running under strace/gdb) it dies with "LeakSanitizer has
# encountered a fatal error" instead of reporting. This probes it with the same compiler: leak
# checking stays on when it works (it did on the Debian 12 machines this project runs on) and is
# turned off, with a warning, only where it cannot work.
lsan_works() {
  local cxx=${CXX:-c++}
  printf '#include <cstdlib>\nint main() { void* volatile p = std::malloc(64); p = nullptr; return 0; }\n' \
    >"$WORK/lsan_probe.cpp"
  "$cxx" -fsanitize=address -g "$WORK/lsan_probe.cpp" -o "$WORK/lsan_probe" 2>/dev/null || return 1
  ASAN_OPTIONS=detect_leaks=1 "$WORK/lsan_probe" >"$WORK/lsan_probe.out" 2>&1 || true
  grep -q 'ERROR: LeakSanitizer: detected memory leaks' "$WORK/lsan_probe.out"
}

sanitizer_env() {
  local leaks=1
  if ! lsan_works; then
    leaks=0
    echo "warning: LeakSanitizer does not work here (ptrace restricted?): leak checking is off" >&2
    sed -n '1,5p' "$WORK/lsan_probe.out" >&2 || true
  fi
  export ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  if [ -f "$ROOT/scripts/lsan.supp" ]; then
    export LSAN_OPTIONS="suppressions=$ROOT/scripts/lsan.supp:print_suppressions=0"
  fi
  echo "ASAN_OPTIONS=$ASAN_OPTIONS"
  echo "UBSAN_OPTIONS=$UBSAN_OPTIONS"
}

start_postgres() {
  local exports
  exports=$(bash "$ROOT/scripts/pg.sh" start-temp) || return 1
  eval "$exports"
  export TEST_DATABASE_URL SHOP_TEST_PG_DIR
  echo "TEST_DATABASE_URL=$TEST_DATABASE_URL"
}

# --- Kafka broker -------------------------------------------------------------------------------
# A throwaway single-node Apache Kafka broker (infra/kafka/kafka.sh start-temp; the jars come from
# Maven Central on first use and are cached), started after PostgreSQL and kept for both test
# passes. The tests find it through TEST_KAFKA_BROKERS and fail without it. cleanup() above stops
# and deletes the broker this script started: KAFKA_DIR names it, never an inherited variable.
unset TEST_KAFKA_BROKERS TEST_KAFKA_DIR
start_kafka() {
  local exports
  exports=$(bash "$ROOT/infra/kafka/kafka.sh" start-temp) || return 1
  eval "$exports"
  KAFKA_DIR=$TEST_KAFKA_DIR
  export TEST_KAFKA_BROKERS TEST_KAFKA_DIR
  echo "TEST_KAFKA_BROKERS=$TEST_KAFKA_BROKERS"
}
# -------------------------------------------------------------------------------------------------

TOTAL_START=$SECONDS
stage "install packages (scripts/install-deps.sh)" bash "$ROOT/scripts/install-deps.sh" || true

if stage "build: build (RelWithDebInfo)" build "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHOP_SANITIZE=OFF; then
  BUILD_OK=1
else
  BUILD_OK=0
fi

# A failed build stops here: the sanitizer build of the same code would fail the same way.
PG_OK=0
if [ "$BUILD_OK" -eq 1 ] && stage "start PostgreSQL (scripts/pg.sh start-temp)" start_postgres; then
  PG_OK=1
  stage "start Kafka broker (kafka.sh start-temp)" start_kafka || true
  stage "tests: build" run_ctest "$ROOT/build" || true
fi

if [ "$FAST" -eq 1 ]; then
  record "sanitizer build and tests (--fast)" skipped 0
elif [ "$PG_OK" -eq 1 ]; then
  say "sanitizer options"
  sanitizer_env
  if stage "build: build-asan (Debug -O1, ASan+UBSan)" build "$ROOT/build-asan" \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" -DSHOP_SANITIZE=ON; then
    stage "tests: build-asan" run_ctest "$ROOT/build-asan" || true
  fi
fi

say "summary ($((SECONDS - TOTAL_START))s)"
for line in "${SUMMARY[@]}"; do
  echo "  $line"
done
if [ "$FAILED" -ne 0 ]; then
  echo "RESULT: FAILED"
else
  echo "RESULT: all steps passed"
fi
echo "tests: $PASSED_TESTS passed, $FAILED_TESTS failed, $SKIPPED_TESTS skipped"
exit "$FAILED"
