# Shared by scripts/local-aws.sh and scripts/local-redis.sh, which source it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Each of those scripts starts one server and records its PID in a pid file; the helpers here
# find and stop that one process by that PID and signal nothing else. Progress goes to stderr as
# `$script_tag: message` (the sourcing script sets script_tag, e.g. local-aws).

say() { printf '%s: %s\n' "$script_tag" "$*" >&2; }

# recorded_pid PID_FILE IS_OURS: prints the PID in PID_FILE if that process is alive and
# `IS_OURS PID` (a function of the calling script) says it is the server we started; else fails.
# A recycled PID belongs to someone else and must never be signalled.
recorded_pid() {
    local pid_file="$1" is_ours="$2" pid
    [ -f "$pid_file" ] || return 1
    pid="$(cat "$pid_file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    "$is_ours" "$pid" || return 1
    echo "$pid"
}

# stop_recorded NAME PID_FILE IS_OURS GRACE_SECONDS [FILE...]: SIGTERM the process that
# `recorded_pid PID_FILE IS_OURS` finds, wait up to GRACE_SECONDS for it to exit (polling), then
# SIGKILL that one PID if it is still there; then remove PID_FILE and the FILEs (the server's
# state files). Succeeds when nothing is running too.
stop_recorded() {
    local name="$1" pid_file="$2" is_ours="$3" grace="$4" pid
    shift 4
    if ! pid="$(recorded_pid "$pid_file" "$is_ours")"; then
        say "no $name started by this script is running"
        rm -f "$pid_file" "$@"
        return 0
    fi
    kill "$pid"
    # Wait on the condition with a deadline; escalate only for this one pid.
    for _ in $(seq 1 $((grace * 20))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name (pid $pid) ignored SIGTERM for $grace s: sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pid_file" "$@"
    say "$name (pid $pid) stopped"
}

# free_port [PYTHON]: a loopback port nothing listens on. Asks the kernel for one (bind to port
# 0, release it) with PYTHON (default python3, if there is one); without Python, probes random
# ports with bash's /dev/tcp.
free_port() {
    local python="${1:-}" port
    if [ -z "$python" ] && command -v python3 >/dev/null; then
        python=python3
    fi
    if [ -n "$python" ]; then
        "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    say "found no free port"
    exit 1
}
