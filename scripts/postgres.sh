#!/usr/bin/env bash
# Run a throwaway PostgreSQL on 127.0.0.1 for the change-data-capture tests:
# Debian's package (scripts/test.sh installs it when missing), a fresh initdb
# in a temporary directory, wal_level=logical, track_commit_timestamp (the tests
# reconstruct the table as of an instant), trust authentication, fsync off
# (synchronous_commit stays on: logical decoding through SQL reads only flushed WAL).
#
#   scripts/postgres.sh start    # initdb a fresh cluster, start it, wait until ready, print its URL
#   scripts/postgres.sh stop     # fast shutdown (then KILL); removes the cluster; ok if not running
#   scripts/postgres.sh status   # exit 0 if running (prints the URL), 3 if not
#
# Environment:
#   LOOPLINE_POSTGRES_PORT    port (default: a free one, chosen at start and remembered)
#   LOOPLINE_POSTGRES_STATE   where the cluster, its log and the port live
#                             (default ${TMPDIR:-/tmp}/loopline-postgres)
#   LOOPLINE_POSTGRES_BIN     PostgreSQL's bin directory (default: the newest /usr/lib/postgresql/*/bin)
#   LOOPLINE_POSTGRES_USER    the system user the server runs as when this script runs as root
#                             (initdb refuses root; default postgres, made by Debian's package)
set -euo pipefail

STATE=${LOOPLINE_POSTGRES_STATE:-${TMPDIR:-/tmp}/loopline-postgres}
DATA="$STATE/data"
PORT_FILE="$STATE/port"
SERVER_LOG="$STATE/postgres.log"
RUN_AS=${LOOPLINE_POSTGRES_USER:-postgres}

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    echo "usage: $0 start|stop|status" >&2
    exit 2
}

find_bin() {
    if [[ -n ${LOOPLINE_POSTGRES_BIN:-} ]]; then
        [[ -x $LOOPLINE_POSTGRES_BIN/initdb ]] || die "no initdb in LOOPLINE_POSTGRES_BIN=$LOOPLINE_POSTGRES_BIN"
        echo "$LOOPLINE_POSTGRES_BIN"
        return
    fi
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n $dir && -x $dir/initdb ]] ||
        die "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql"
    echo "$dir"
}

# Run a PostgreSQL program as the server's user (as ourselves unless we are root).
as_server() {
    if [[ $(id -u) == 0 ]]; then
        id "$RUN_AS" >/dev/null 2>&1 ||
            die "running as root, and user '$RUN_AS' does not exist to run the server: set LOOPLINE_POSTGRES_USER"
        runuser -u "$RUN_AS" -- "$@"
    else
        "$@"
    fi
}

free_port() {
    local python
    python=${LOOPLINE_PYTHON:-python3}
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

url() { echo "postgresql://postgres@127.0.0.1:$1/postgres"; }

is_running() {
    [[ -f $PORT_FILE && -f $DATA/postmaster.pid ]] || return 1
    local bin
    bin=$(find_bin)
    as_server "$bin/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

cmd_start() {
    if is_running; then
        log "already running"
        url "$(<"$PORT_FILE")"
        return 0
    fi
    local bin port
    bin=$(find_bin)
    port=${LOOPLINE_POSTGRES_PORT:-$(free_port)}
    [[ $port =~ ^[0-9]{1,5}$ ]] || die "LOOPLINE_POSTGRES_PORT must be a TCP port number (got '$port')"
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port on 127.0.0.1 is already in use; set LOOPLINE_POSTGRES_PORT"
    fi
    rm -rf "$STATE"
    mkdir -p "$STATE"
    chmod 755 "$STATE"
    if [[ $(id -u) == 0 ]]; then
        chown "$RUN_AS" "$STATE"
    fi
    if ! as_server "$bin/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 \
        --locale=C >"$STATE/initdb.log" 2>&1; then
        cat "$STATE/initdb.log" >&2
        die "initdb in $DATA failed"
    fi
    echo "$port" >"$PORT_FILE"
    log "starting PostgreSQL ($("$bin/postgres" --version)) on 127.0.0.1:$port (cluster in $DATA)"
    # The socket lives in the cluster's directory: /var/run/postgresql may not exist or be ours.
    if ! as_server "$bin/pg_ctl" start -D "$DATA" -l "$SERVER_LOG" -w -t 60 -o \
        "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$DATA' \
         -c wal_level=logical -c max_replication_slots=32 -c max_wal_senders=32 -c track_commit_timestamp=on \
         -c fsync=off -c full_page_writes=off" >/dev/null; then
        [[ -f $SERVER_LOG ]] && tail -n 50 "$SERVER_LOG" >&2
        die "PostgreSQL did not start on 127.0.0.1:$port (log above, in $SERVER_LOG)"
    fi
    log "ready (log in $SERVER_LOG)"
    url "$port"
}

cmd_stop() {
    if ! is_running; then
        log "not running"
        rm -rf "$STATE"
        return 0
    fi
    local bin
    bin=$(find_bin)
    log "stopping PostgreSQL on port $(<"$PORT_FILE") ..."
    if ! as_server "$bin/pg_ctl" stop -D "$DATA" -m fast -w -t 20 >/dev/null 2>&1; then
        log "not stopped after 20s, sending KILL"
        as_server "$bin/pg_ctl" kill KILL "$(head -n 1 "$DATA/postmaster.pid")" || true
        sleep 1
    fi
    rm -rf "$STATE"
    log "stopped"
}

cmd_status() {
    if is_running; then
        echo "running on $(url "$(<"$PORT_FILE")")"
        return 0
    fi
    echo "not running"
    return 3
}

[[ $# -eq 1 ]] || usage
case $1 in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) usage ;;
esac
