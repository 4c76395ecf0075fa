#!/usr/bin/env bash
# A throwaway local redis-server for tests and development (no persistence, loopback only).
#
#   eval "$(bash scripts/local-redis.sh start)"   # starts it, exports YLAMBDA_REDIS_URL
#   bash scripts/local-redis.sh stop              # stops the server this script started
#
# `start` picks a free loopback port (or $REDIS_PORT), installs the Debian package redis-server
# when the binary is missing and we are root, waits until the server answers PING, records its PID
# in .ci-work/redis.pid and prints only the `export` line on stdout; everything else goes to
# stderr or .ci-work/redis.log. The tests FLUSHALL this server: never point them at real data.
set -euo pipefail
script_tag=local-redis
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # say, recorded_pid, stop_recorded, free_port
cd "$(dirname "$0")/.."

work="${YLAMBDA_STATE_DIR:-.ci-work}"  # pid, url and log files (override for a second instance)
pid_file="$work/redis.pid"
log_file="$work/redis.log"
url_file="$work/redis.url"

ensure_installed() {
    command -v redis-server >/dev/null && return 0
    if [ "$(id -u)" != 0 ]; then
        say "redis-server is not installed (Debian: apt-get install redis-server) and we are not root"
        exit 1
    fi
    say "installing redis-server"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server >&2; then
        apt-get update >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server >&2
    fi
}

# Is the process PID our redis-server? (For recorded_pid, scripts/lib.sh.)
is_redis() { [ "$(ps -p "$1" -o comm= 2>/dev/null)" = redis-server ]; }

running_pid() { recorded_pid "$pid_file" is_redis; }

start() {
    ensure_installed
    mkdir -p "$work"
    if pid=$(running_pid) && [ -s "$url_file" ]; then
        # Idempotent: a second start (a re-run after an interrupted one) reuses the server.
        say "already running (pid $pid)"
        echo "export YLAMBDA_REDIS_URL=$(cat "$url_file")"
        return 0
    fi
    local port="${REDIS_PORT:-$(free_port)}"
    # No daemonize: the PID we record is the server's own, and `stop` can kill exactly that one.
    # setsid keeps it out of the caller's process group, so a Ctrl-C in a test run does not kill it.
    setsid redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no </dev/null >>"$log_file" 2>&1 &
    local pid=$!
    echo "$pid" >"$pid_file"
    local deadline=$((SECONDS + 20))
    until [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "redis-server exited during start; its log ($log_file):"
            tail -n 20 "$log_file" >&2 || true
            rm -f "$pid_file"
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "redis-server on port $port did not answer PING within 20 s"
            kill "$pid" 2>/dev/null || true
            rm -f "$pid_file"
            exit 1
        fi
        sleep 0.1
    done
    say "redis-server pid $pid on 127.0.0.1:$port (log: $log_file)"
    echo "redis://127.0.0.1:$port" >"$url_file"
    echo "export YLAMBDA_REDIS_URL=redis://127.0.0.1:$port"
}

# Stops the redis-server this script started (nothing else), SIGKILL after 5 s.
stop() { stop_recorded redis-server "$pid_file" is_redis 5 "$url_file"; }

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
