#!/usr/bin/env bash
# THE run command: the whole shop backend on this machine, from any directory.
#
#   scripts/run.sh              install packages, build, start everything, stay in the foreground
#   scripts/run.sh --kafka      the same with Apache Kafka: a local broker (data/kafka), the outbox
#                               relay (shop-relay) publishing every event, and the projector
#                               consuming the topics instead of reading the store
#   scripts/run.sh --no-build   use the binaries already in build/
#   scripts/run.sh --help
#
# What it does: installs missing Debian packages (scripts/install-deps.sh); builds `build`
# (Ninja, RelWithDebInfo: the three services and shopctl); starts a persistent PostgreSQL under
# ./data/pg on 127.0.0.1:$PG_PORT (default 55432); writes ./.env on the first run (random
# secrets, kept on later runs so tokens and passwords survive restarts); creates the role and
# database `shop`; runs `shopctl migrate` and `shopctl create-admin`; starts projector,
# command-api and query-api in the background (logs in ./data/logs/); waits for them; loads the
# demo catalog (`shopctl seed-demo`); prints URLs, the admin's credentials and curl examples.
# With --kafka: also starts a persistent single-node Kafka broker under ./data/kafka on
# 127.0.0.1:$KAFKA_PORT (default 59092; infra/kafka/kafka.sh start-local) and shop-relay, and
# gives the projector KAFKA_BROKERS (see docs/KAFKA.md).
# Ctrl-C (or SIGTERM) stops the services and PostgreSQL; the data stays in ./data for next time.
# If a service dies, its log tail is printed and the script exits non-zero.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }

BUILD=1
KAFKA=0
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    --kafka) KAFKA=1 ;;
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

DATA=$ROOT/data
PGDIR=$DATA/pg
LOGS=$DATA/logs
RUNDIR=$DATA/run
ENV_FILE=$ROOT/.env
BIN_COMMAND=$ROOT/build/command-api/command-api
BIN_QUERY=$ROOT/build/query-api/query-api
BIN_PROJECTOR=$ROOT/build/projector/projector
BIN_SHOPCTL=$ROOT/build/tools/shopctl/shopctl
BIN_RELAY=$ROOT/build/command-api/shop-relay
KAFKA_DIR=$DATA/kafka
SERVICES=(projector command-api query-api relay)

say() { printf '\n==> %s\n' "$*"; }
die() {
  printf 'run.sh: error: %s\n' "$*" >&2
  exit 1
}

binary_of() {
  case "$1" in
    projector) echo "$BIN_PROJECTOR" ;;
    command-api) echo "$BIN_COMMAND" ;;
    query-api) echo "$BIN_QUERY" ;;
    relay) echo "$BIN_RELAY" ;;
  esac
}

# ---- stopping ------------------------------------------------------------------------------------
declare -A PIDS=()
PG_STARTED=0
KAFKA_STARTED=0
STOPPING=0

stop_service() { # NAME: SIGTERM, then SIGKILL after 15 s
  local name=$1 pid=${PIDS[$1]:-}
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "$name did not stop within 15 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  rm -f "$RUNDIR/$name.pid"
  unset "PIDS[$name]"
}

cleanup() {
  local rc=$?
  [ "$STOPPING" -eq 0 ] || return 0
  STOPPING=1
  trap '' INT TERM
  if [ "${#PIDS[@]}" -gt 0 ] || [ "$PG_STARTED" -eq 1 ]; then
    say "stopping"
  fi
  # The APIs first (no new writes), then the projector, then the database.
  stop_service query-api
  stop_service command-api
  stop_service relay
  stop_service projector
  if [ "$KAFKA_STARTED" -eq 1 ]; then
    bash "$ROOT/infra/kafka/kafka.sh" stop-local "$KAFKA_DIR" 9>&- || true
  fi
  if [ "$PG_STARTED" -eq 1 ]; then
    bash "$ROOT/scripts/pg.sh" stop-local "$PGDIR" 9>&- || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- .env ----------------------------------------------------------------------------------------
random_hex() { # BYTES
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -hex "$1"
  else
    python3 -c 'import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))' "$1"
  fi
}

# Prints the value of KEY in .env (the last one wins, like the services' parser), or nothing.
env_file_get() {
  [ -f "$ENV_FILE" ] || return 0
  sed -nE "s/^[[:space:]]*(export[[:space:]]+)?$1[[:space:]]*=[[:space:]]*(.*)$/\\2/p" "$ENV_FILE" |
    tail -n 1 | sed -E "s/[[:space:]]+$//; s/^\"(.*)\"$/\\1/; s/^'(.*)'$/\\1/"
}

env_file_set() { # KEY VALUE: replaces the key's line(s) or appends one
  local tmp
  tmp=$(mktemp "$ROOT/.env.XXXXXX")
  if [ -f "$ENV_FILE" ]; then
    grep -vE "^[[:space:]]*(export[[:space:]]+)?$1[[:space:]]*=" "$ENV_FILE" >"$tmp" || true
  fi
  printf '%s=%s\n' "$1" "$2" >>"$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$ENV_FILE"
}

env_file_ensure() { # KEY VALUE: sets the key only when .env has no value for it
  if [ -z "$(env_file_get "$1")" ]; then
    env_file_set "$1" "$2"
    echo "  .env: set $1"
  fi
}

prepare_env_file() {
  if [ ! -f "$ENV_FILE" ]; then
    cat >"$ENV_FILE" <<'EOF'
# Written by scripts/run.sh on its first run; read by the services and shopctl from the current
# directory (the environment wins over this file). The secrets are random and kept across runs:
# delete a line to have run.sh make a new value. See README.md for every key.
EOF
    chmod 600 "$ENV_FILE"
    echo "  wrote $ENV_FILE"
  fi
  # PG_PORT: the environment, else .env, else 55432; remembered in .env.
  local port
  port=${PG_PORT:-$(env_file_get PG_PORT)}
  port=${port:-55432}
  if [ "$(env_file_get PG_PORT)" != "$port" ]; then
    env_file_set PG_PORT "$port"
    echo "  .env: set PG_PORT=$port"
  fi
  env_file_ensure SHOP_DB_PASSWORD "$(random_hex 24)"
  env_file_ensure JWT_SECRET "$(random_hex 32)"
  env_file_ensure PAYMENT_WEBHOOK_SECRET "$(random_hex 32)"
  env_file_ensure ADMIN_EMAIL admin@shop.local
  env_file_ensure ADMIN_PASSWORD "$(random_hex 16)"
  # DATABASE_URL points at the local cluster. It is kept as it is unless it is the one run.sh
  # writes (user shop on 127.0.0.1), which follows PG_PORT and SHOP_DB_PASSWORD.
  local url managed
  url=$(env_file_get DATABASE_URL)
  managed="postgresql://shop:$(env_file_get SHOP_DB_PASSWORD)@127.0.0.1:$port/shop"
  if [ -z "$url" ] || { [[ "$url" =~ ^postgresql://shop:[^@]*@127\.0\.0\.1:[0-9]+/shop$ ]] && [ "$url" != "$managed" ]; }; then
    env_file_set DATABASE_URL "$managed"
    echo "  .env: set DATABASE_URL"
  fi
}

# Exports every key of .env that the environment does not already set (the environment wins, as
# in the services), so that this script and the services see the same values.
load_env_file() {
  local line key value
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line#"${line%%[![:space:]]*}"}
    [ -n "$line" ] || continue
    case "$line" in \#*) continue ;; esac
    line=${line#export }
    [[ "$line" == *=* ]] || continue
    key=${line%%=*}
    key=${key%"${key##*[![:space:]]}"}
    [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    if [ -z "${!key:-}" ]; then
      value=$(env_file_get "$key")
      export "$key=$value"
    fi
  done <"$ENV_FILE"
}

# ---- building ------------------------------------------------------------------------------------
configure() { # as in scripts/test.sh
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

# ---- services ------------------------------------------------------------------------------------
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A host the services listen on, as a client reaches it.
client_host() {
  case "$1" in
    "" | 0.0.0.0 | "*") echo 127.0.0.1 ;;
    ::) echo "[::1]" ;;
    *:*) echo "[$1]" ;;
    *) echo "$1" ;;
  esac
}

# A service left running by an earlier run that was killed hard (SIGKILL) keeps its port: stop it
# when its pid file names a live process of the same binary.
stop_leftover() { # NAME
  local name=$1 pid
  pid=$(cat "$RUNDIR/$name.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" = "$(binary_of "$name")" ]; then
    echo "  stopping $name (pid $pid) left over from an earlier run"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUNDIR/$name.pid"
}

start_service() { # NAME
  local name=$1 bin
  bin=$(binary_of "$name")
  {
    echo
    echo "===== $(date '+%Y-%m-%d %H:%M:%S') scripts/run.sh starts $name ====="
  } >>"$LOGS/$name.log"
  "$bin" >>"$LOGS/$name.log" 2>&1 9>&- &
  PIDS[$name]=$!
  echo "${PIDS[$name]}" >"$RUNDIR/$name.pid"
  echo "  $name started (pid ${PIDS[$name]}, log data/logs/$name.log)"
}

log_tail() { # NAME: the last 40 lines this run wrote to the service's log
  tac "$LOGS/$1.log" 2>/dev/null | sed '/^===== .* scripts\/run.sh starts /q' | tac | tail -n 40 || true
}

service_died() { # NAME
  local name=$1 rc=0
  wait "${PIDS[$name]}" 2>/dev/null || rc=$?
  unset "PIDS[$name]"
  rm -f "$RUNDIR/$name.pid"
  printf '\nrun.sh: %s exited (status %s). Last lines of data/logs/%s.log:\n' "$name" "$rc" "$name" >&2
  log_tail "$name" >&2
  exit 1
}

check_alive() {
  local name
  for name in "${!PIDS[@]}"; do
    kill -0 "${PIDS[$name]}" 2>/dev/null || service_died "$name"
  done
}

wait_health() { # NAME URL
  local name=$1 url=$2
  for _ in $(seq 1 600); do
    check_alive
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
      echo "  $name is up: $url"
      return 0
    fi
    sleep 0.1
  done
  echo "run.sh: $name did not answer $url within 60 s; last lines of its log:" >&2
  log_tail "$name" >&2
  exit 1
}

# ---- main ----------------------------------------------------------------------------------------
say "packages"
bash "$ROOT/scripts/install-deps.sh"

if [ "$BUILD" -eq 1 ]; then
  say "build (build/, RelWithDebInfo)"
  configure "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHOP_SANITIZE=OFF
  cmake --build "$ROOT/build" -j "$(nproc 2>/dev/null || echo 2)" \
    --target command-api query-api projector shopctl shop-relay
fi
for bin in "$BIN_COMMAND" "$BIN_QUERY" "$BIN_PROJECTOR" "$BIN_SHOPCTL" "$BIN_RELAY"; do
  [ -x "$bin" ] || die "$bin is missing: run without --no-build"
done

say "configuration (.env)"
mkdir -p "$LOGS" "$RUNDIR"
prepare_env_file
load_env_file
: "${DATABASE_URL:?}" "${ADMIN_EMAIL:?}" "${ADMIN_PASSWORD:?}" "${PG_PORT:?}" "${SHOP_DB_PASSWORD:?}"
export LOG_LEVEL=${LOG_LEVEL:-info}

# One run at a time per checkout. The lock is on fd 9, which no child keeps (9>&-), so a run
# killed with SIGKILL leaves no lock behind, and its services are stopped by stop_leftover.
exec 9>"$RUNDIR/run.lock"
flock -n 9 || die "another scripts/run.sh is already running in $ROOT"
for name in "${SERVICES[@]}"; do
  stop_leftover "$name"
done

CMD_HOST=$(client_host "${COMMAND_API_HOST:-127.0.0.1}")
CMD_PORT=${COMMAND_API_PORT:-8080}
QRY_HOST=$(client_host "${QUERY_API_HOST:-127.0.0.1}")
QRY_PORT=${QUERY_API_PORT:-8081}
CMD_URL="http://$CMD_HOST:$CMD_PORT"
QRY_URL="http://$QRY_HOST:$QRY_PORT"
for port in "$CMD_PORT" "$QRY_PORT"; do
  if port_in_use "$port"; then
    die "port $port is already taken (another scripts/run.sh?); stop that program or set COMMAND_API_PORT / QUERY_API_PORT"
  fi
done

say "PostgreSQL (data/pg, 127.0.0.1:$PG_PORT)"
PG_STARTED=1
bash "$ROOT/scripts/pg.sh" start-local "$PGDIR" "$PG_PORT" 9>&-
# The superuser reaches the cluster through its private unix socket; the services use the
# role `shop` (owner of the database `shop`, no superuser rights) over TCP with the password.
bash "$ROOT/scripts/pg.sh" psql-local "$PGDIR" -q -d postgres -v "pw=$SHOP_DB_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE shop LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shop')
\gexec
ALTER ROLE shop LOGIN PASSWORD :'pw';
SELECT 'CREATE DATABASE shop OWNER shop' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'shop')
\gexec
SQL
echo "  database shop ready"

say "schema and admin account"
"$BIN_SHOPCTL" migrate
"$BIN_SHOPCTL" create-admin --email "$ADMIN_EMAIL" --password "$ADMIN_PASSWORD"


if [ "$KAFKA" -eq 1 ]; then
  KAFKA_PORT=${KAFKA_PORT:-59092}
  say "Kafka (data/kafka, 127.0.0.1:$KAFKA_PORT)"
  KAFKA_STARTED=1
  bash "$ROOT/infra/kafka/kafka.sh" start-local "$KAFKA_DIR" "$KAFKA_PORT" 9>&-
  export KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
else
  # The embedded default: no Kafka, even when the shell or .env names a broker.
  unset KAFKA_BROKERS
fi

# The projector keeps its place in the store's global order, or per Kafka partition; each refuses
# read models the other built. Switching between the two is a rebuild: empty the read models once.
SOURCE=store
[ "$KAFKA" -eq 1 ] && SOURCE="kafka:${KAFKA_TOPIC_PREFIX:-shop}"
PREVIOUS=store # data from before this marker existed was always projected from the store
[ -f "$RUNDIR/projector-source" ] && PREVIOUS=$(cat "$RUNDIR/projector-source")
if [ "$PREVIOUS" != "$SOURCE" ]; then
  echo "  the projector's source changes ($PREVIOUS -> $SOURCE): the read models are rebuilt"
  bash "$ROOT/scripts/pg.sh" psql-local "$PGDIR" -q -d shop \
    -o /dev/null -c "SELECT projection_reset('read_models')" 9>&-
fi
echo "$SOURCE" >"$RUNDIR/projector-source"

say "services"
if [ "$KAFKA" -eq 1 ]; then
  start_service relay
fi
start_service projector
start_service command-api
start_service query-api
wait_health command-api "$CMD_URL/health"
wait_health query-api "$QRY_URL/health"
sleep 0.5
check_alive
echo "  projector is running"

say "demo catalog"
"$BIN_SHOPCTL" seed-demo

cat <<EOF

==============================================================================================
 The shop backend is running.
   command API (writes):  $CMD_URL
   query API (reads):     $QRY_URL
   admin:                 $ADMIN_EMAIL / $ADMIN_PASSWORD
   logs:                  data/logs/{projector,command-api,query-api$( [ "$KAFKA" -eq 1 ] && echo ",relay")}.log$( [ "$KAFKA" -eq 1 ] && printf '\n   Kafka:                 %s (topics %s.*; kcat -b %s -L)' "$KAFKA_BROKERS" "${KAFKA_TOPIC_PREFIX:-shop}" "$KAFKA_BROKERS")
   configuration:         .env        database: data/pg (127.0.0.1:$PG_PORT)

 Try it (bash; jq was installed by scripts/install-deps.sh):

   curl -s -w '\\n' -X POST $CMD_URL/api/auth/register -H 'Content-Type: application/json' \\
     -d '{"email":"alice@example.com","password":"correct-horse-42","name":"Alice"}'

   TOKEN=\$(curl -s -X POST $CMD_URL/api/auth/login -H 'Content-Type: application/json' \\
     -d '{"email":"alice@example.com","password":"correct-horse-42"}' | jq -r .access)

   curl -s '$QRY_URL/api/products?limit=5' | jq .

   PRODUCT=\$(curl -s '$QRY_URL/api/products?limit=1' | jq -r '.items[0].id')

   curl -s -w '\\n' -X POST $CMD_URL/api/cart/items -H "Authorization: Bearer \$TOKEN" \\
     -H 'Content-Type: application/json' -d "{\"product_id\":\"\$PRODUCT\",\"quantity\":1}"

   curl -s -w '\\n' -X POST $CMD_URL/api/orders -H "Authorization: Bearer \$TOKEN" \\
     -H "Idempotency-Key: \$(date +%s)"

 The whole API: docs/API.md.   Ctrl-C stops everything (the data stays in data/).
==============================================================================================
EOF

# Foreground: watch the services until Ctrl-C / SIGTERM (cleanup stops them) or one dies.
while true; do
  check_alive
  sleep 1 &
  wait $! || true
done
