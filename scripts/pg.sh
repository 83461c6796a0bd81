#!/usr/bin/env bash
# Manages PostgreSQL clusters for this project without systemd or the Debian cluster wrappers.
#
#   scripts/pg.sh start-temp                 throwaway cluster for tests: prints
#                                            `export TEST_DATABASE_URL=...` and
#                                            `export SHOP_TEST_PG_DIR=...` (use with eval)
#   scripts/pg.sh stop-temp DIR              stops it and deletes DIR
#   scripts/pg.sh start-local DATADIR PORT   persistent cluster for the local stack (created on
#                                            first use, kept across runs, durable settings)
#   scripts/pg.sh stop-local DATADIR         stops it; the data is kept
#   scripts/pg.sh status-local DATADIR       exit 0 when it runs, and prints its port
#   scripts/pg.sh psql-local DATADIR [ARGS]  psql as the superuser over the cluster's unix socket
#
# Who runs the server: initdb and pg_ctl refuse to run as root, so as root every server command
# runs as the `postgres` user (runuser) and the cluster's folders are owned by postgres. As a
# normal user the server runs as that user and no privilege is needed.
#
# Layout of a cluster folder (DATADIR for start-local, a mktemp folder for start-temp):
#   DATADIR/pgdata/       the PostgreSQL data directory (PGDATA)
#   DATADIR/server.log    the server's log
#   DATADIR/.s.PGSQL.N    the unix socket (when the path is short enough for a socket, else a
#                         private mktemp folder; postmaster.pid records which)
# DATADIR is mode 0700 and owned by the server's user, so only that user (and root) can reach
# the unix socket. The superuser is `postgres`; over the socket it is trusted, over TCP
# (127.0.0.1 only) the temp cluster trusts too, while the local cluster asks for a password
# (scram-sha-256) that scripts/run.sh sets from .env through the socket (psql-local).
#
# Folders under /root: a checkout in /root (mode 0700) is not reachable by the postgres user, so
# a cluster in ./data/pg would fail to start. We keep the data in the checkout anyway (it belongs
# to the checkout and is removed with it) and, as root, give the postgres user search permission
# (x, not read: it cannot list anything) on exactly the parent folders that need it, with a POSIX
# ACL (setfacl, package `acl`), falling back to `chmod o+x` only where ACLs are not supported.
# Every such change is printed.
set -euo pipefail

log() { printf 'pg.sh: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

find_pgbin() {
  local bin
  bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    log "PostgreSQL server binaries not found under /usr/lib/postgresql; installing packages"
    bash "$SCRIPT_DIR/install-deps.sh"
    bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
      die "no /usr/lib/postgresql/<major>/bin/initdb after install"
    fi
  fi
  PGBIN=$bin
}

# Runs a command as the user that owns the clusters: postgres when we are root, else ourselves.
# It runs from / so that a current directory the postgres user cannot enter does not matter.
as_pg() {
  if [ "$IS_ROOT" -eq 1 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

abspath() {
  local p=$1
  case "$p" in
    /*) ;;
    *) p="$PWD/$p" ;;
  esac
  # Normalise without requiring the path to exist.
  python3 -c 'import os,sys; print(os.path.normpath(sys.argv[1]))' "$p" 2>/dev/null || printf '%s\n' "$p"
}

# As root: makes every existing ancestor of $1 searchable by the postgres user (see the header).
ensure_traversable() {
  [ "$IS_ROOT" -eq 1 ] || return 0
  local target=$1
  if as_pg test -x "$target"; then return 0; fi
  local p="" part parts
  IFS=/ read -r -a parts <<<"${target#/}"
  for part in "${parts[@]}"; do
    [ -n "$part" ] || continue
    p="$p/$part"
    [ -d "$p" ] || break
    if ! as_pg test -x "$p"; then
      if command -v setfacl >/dev/null 2>&1 && setfacl -m u:postgres:x "$p" 2>/dev/null; then
        log "gave the postgres user search permission on $p (ACL u:postgres:x)"
      else
        chmod o+x "$p"
        log "made $p searchable by others (chmod o+x; ACLs unavailable) so postgres can reach the cluster"
      fi
    fi
  done
  as_pg test -x "$target" || die "the postgres user still cannot reach $target"
}

# Creates DIR (mode 0700) owned by the cluster's user.
make_owned_dir() {
  local dir=$1
  mkdir -p "$dir"
  chmod 0700 "$dir"
  if [ "$IS_ROOT" -eq 1 ]; then
    # Also repairs a folder left behind by a run as another user.
    find "$dir" ! -user postgres -exec chown postgres:postgres {} +
  fi
}

free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' && return 0
  fi
  # Fallback: probe random high ports until one refuses connections.
  local port i
  for i in $(seq 1 200); do
    port=$((20000 + (RANDOM * 32768 + RANDOM + i) % 40000))
    if ! port_in_use "$port"; then
      echo "$port"
      return 0
    fi
  done
  die "found no free TCP port"
}

port_in_use() {
  # A successful connect means something listens there.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Socket directory: the cluster folder when `<dir>/.s.PGSQL.<port>` fits in a unix socket path
# (107 bytes), else a private folder from mktemp.
socket_dir_for() {
  local dir=$1 port=$2
  if [ $((${#dir} + 12 + ${#port})) -lt 100 ]; then
    echo "$dir"
  else
    local s
    s=$(mktemp -d /tmp/shop-pgsock.XXXXXX)
    [ "$IS_ROOT" -eq 1 ] && chown postgres:postgres "$s"
    echo "$s"
  fi
}

remove_private_socket_dir() {
  case "${1:-}" in
    /tmp/shop-pgsock.*) rm -rf "$1" ;;
  esac
}

# pg_ctl start; returns non-zero when the server did not come up.
pg_start() {
  local dir=$1 port=$2 sockdir=$3
  shift 3
  as_pg "$PGBIN/pg_ctl" -D "$dir/pgdata" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k '$sockdir' -c listen_addresses=127.0.0.1 $*" start >/dev/null
}

running_port() { # DATADIR -> port of the running server (from postmaster.pid)
  sed -n 4p "$1/pgdata/postmaster.pid" 2>/dev/null
}
running_socket_dir() {
  sed -n 5p "$1/pgdata/postmaster.pid" 2>/dev/null
}

is_running() {
  [ -f "$1/pgdata/PG_VERSION" ] || return 1
  as_pg "$PGBIN/pg_ctl" -D "$1/pgdata" status >/dev/null 2>&1 || return 1
  # A postmaster killed with SIGKILL stays a zombie until it is reaped: not running.
  local pid state
  pid=$(sed -n 1p "$1/pgdata/postmaster.pid" 2>/dev/null || true)
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
  [ -n "$pid" ] && [ "$state" != Z ]
}

cmd_start_temp() {
  find_pgbin
  local base dir port attempt sockdir
  base=${TMPDIR:-/tmp}
  dir=$(mktemp -d "$base/shop-pg.XXXXXX")
  touch "$dir/.shop-pg-temp" # marker: stop-temp only deletes folders that carry it
  make_owned_dir "$dir"
  ensure_traversable "$dir"
  as_pg "$PGBIN/initdb" -D "$dir/pgdata" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
    >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    die "initdb failed"
  }
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    # Test settings: no durability (fsync, synchronous_commit, full_page_writes off); enough
    # connections for tests running in parallel, each with its own database and pools.
    sockdir=$(socket_dir_for "$dir" "$port")
    if pg_start "$dir" "$port" "$sockdir" -c fsync=off -c synchronous_commit=on \
      -c full_page_writes=off -c max_connections=300; then
      printf 'export TEST_DATABASE_URL=%q; export SHOP_TEST_PG_DIR=%q\n' \
        "postgresql://postgres@127.0.0.1:$port/postgres" "$dir"
      log "temporary PostgreSQL on 127.0.0.1:$port (data in $dir)"
      return 0
    fi
    log "start on port $port failed (attempt $attempt); server log:"
    tail -n 5 "$dir/server.log" >&2 || true
  done
  rm -rf "$dir"
  die "could not start a temporary PostgreSQL"
}

cmd_stop_temp() {
  local dir=${1:-}
  [ -n "$dir" ] || die "usage: pg.sh stop-temp DIR"
  [ -d "$dir" ] || return 0
  [ -f "$dir/.shop-pg-temp" ] || die "$dir is not a temporary cluster made by pg.sh start-temp; not deleting it"
  find_pgbin
  if is_running "$dir"; then
    local sockdir
    sockdir=$(running_socket_dir "$dir")
    as_pg "$PGBIN/pg_ctl" -D "$dir/pgdata" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
    remove_private_socket_dir "$sockdir"
  fi
  rm -rf "$dir"
}

cmd_start_local() {
  local dir port
  [ $# -eq 2 ] || die "usage: pg.sh start-local DATADIR PORT"
  dir=$(abspath "$1")
  port=$2
  if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    die "bad port: $port"
  fi
  find_pgbin
  make_owned_dir "$dir"
  ensure_traversable "$dir"

  if [ ! -f "$dir/pgdata/PG_VERSION" ]; then
    log "creating a PostgreSQL cluster in $dir/pgdata"
    # Socket (local) connections are trusted: only the cluster's owner can enter $dir. TCP asks
    # for a password; the superuser has none until psql-local sets one.
    as_pg "$PGBIN/initdb" -D "$dir/pgdata" -U postgres --auth-local=trust \
      --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      rm -rf "$dir/pgdata"
      die "initdb failed"
    }
  fi

  if is_running "$dir"; then
    local rport
    rport=$(running_port "$dir")
    if [ "$rport" != "$port" ]; then
      die "the cluster in $dir already runs on port $rport, not $port (stop it: pg.sh stop-local $dir)"
    fi
    log "PostgreSQL already running on 127.0.0.1:$port (data in $dir)"
    return 0
  fi

  if port_in_use "$port"; then
    die "port $port is taken by another program; choose another one (PG_PORT=... for scripts/run.sh)"
  fi
  local sockdir
  sockdir=$(socket_dir_for "$dir" "$port")
  # Durable defaults (fsync, synchronous_commit and full_page_writes stay on).
  if ! pg_start "$dir" "$port" "$sockdir"; then
    tail -n 20 "$dir/server.log" >&2 || true
    die "PostgreSQL did not start (log: $dir/server.log)"
  fi
  log "PostgreSQL running on 127.0.0.1:$port (data in $dir, log in $dir/server.log)"
}

cmd_stop_local() {
  local dir
  [ $# -eq 1 ] || die "usage: pg.sh stop-local DATADIR"
  dir=$(abspath "$1")
  find_pgbin
  if is_running "$dir"; then
    local sockdir
    sockdir=$(running_socket_dir "$dir")
    as_pg "$PGBIN/pg_ctl" -D "$dir/pgdata" -m fast -w -t 60 stop >/dev/null
    remove_private_socket_dir "$sockdir"
    log "PostgreSQL in $dir stopped (data kept)"
  else
    log "PostgreSQL in $dir is not running"
  fi
}

cmd_status_local() {
  local dir
  [ $# -eq 1 ] || die "usage: pg.sh status-local DATADIR"
  dir=$(abspath "$1")
  find_pgbin
  if is_running "$dir"; then
    echo "running on port $(running_port "$dir")"
  else
    echo "not running"
    return 3
  fi
}

cmd_psql_local() {
  local dir
  [ $# -ge 1 ] || die "usage: pg.sh psql-local DATADIR [PSQL ARGS...]"
  dir=$(abspath "$1")
  shift
  find_pgbin
  is_running "$dir" || die "PostgreSQL in $dir is not running"
  as_pg "$PGBIN/psql" -X -h "$(running_socket_dir "$dir")" -p "$(running_port "$dir")" \
    -U postgres -v ON_ERROR_STOP=1 "$@"
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case "$cmd" in
    start-temp) cmd_start_temp "$@" ;;
    stop-temp) cmd_stop_temp "$@" ;;
    start-local) cmd_start_local "$@" ;;
    stop-local) cmd_stop_local "$@" ;;
    status-local) cmd_status_local "$@" ;;
    psql-local) cmd_psql_local "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
