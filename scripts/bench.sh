#!/usr/bin/env bash
# Benchmarks ylambda against its peers: one run, this machine, the same loads for every server,
# driven by the Rust load generator (`ylambda bench`).
#
#   scripts/bench.sh [--smoke] [--servers "embedded reference hocuspocus"] [--out DIR]
#
# Servers (each started fresh for every measurement, so memory figures start from the same
# place, and stopped by PID afterwards):
#   embedded    ylambda dev, embedded backend (API Gateway base64 text frames)
#   aws         ylambda dev on redis-server + moto (the redis-url profile; both started here).
#               A steady update is one Redis round trip (the room's members are remembered
#               while its roster version is unchanged, ARCHITECTURE.md invariant 21); each
#               $connect and $disconnect still goes to single-threaded moto (~85 requests/s
#               here), which bounds how fast the idle shape's 2,000 clients connect.
#   serve       ylambda serve (direct mode), embedded backend: binary y-websocket on /{room},
#               the reference's wire
#   reference   @y/websocket-server 0.1.1, in memory (binary y-websocket)
#   hocuspocus  @hocuspocus/server 4.7, no extensions (Hocuspocus' protocol)
#   ysweet      y-sweet 0.9.1 (`y-sweet serve DIR`, filesystem store, no auth; binary y-websocket
#               on /d/{doc}/ws/{doc}). Not from npm: install it with `cargo install y-sweet
#               --locked` (a ~20 min build on 2 cores); $YSWEET_BIN, else `y-sweet` on PATH or in
#               ~/.cargo/bin. Without it the full run says so and leaves it out.
# Shapes:
#   sweep   1 room x 50 clients at increasing offered rates (edits/s over all clients)
#   rooms   100 rooms x 2 clients at 10,000 edits/s
#   idle    2,000 idle connections in 1,000 rooms: memory per connection
# ylambda dev runs with API Gateway's emulated quotas (route throttles, messages per second per
# connection) raised: they model an AWS account's limits, not the server's speed.
#
# Output: DIR/results.jsonl (one `ylambda bench` report per line, with "target" and "shape"),
# DIR/logs/ (the server's log of each measurement that had errors),
# then `ylambda bench-report` writes benches/BENCHMARKS.md and its SVG charts (--smoke: into DIR/report).
# Default DIR: target/bench. Exits 1 if a measurement lost an edit or did not converge at a
# rate the server kept up with (every report is checked in --smoke).
#
# --smoke (what CI runs): the debug build, embedded + reference, a few seconds per shape, tiny
# loads; it checks correctness only (no figure is asserted).
set -euo pipefail
cd "$(dirname "$0")/.."
script_tag=bench
source scripts/lib.sh  # say, free_port

smoke=false
servers=
out=target/bench
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) smoke=true ;;
        --servers) servers="$2"; shift ;;
        --out) out="$2"; shift ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) say "unknown argument $1"; exit 2 ;;
    esac
    shift
done

if $smoke; then
    : "${servers:=embedded reference serve}"
    rates="200"
    duration=2
    rooms_rate=200
    idle_clients=100
    profile=debug
else
    : "${servers:=embedded aws serve reference hocuspocus ysweet}"
    rates="100 500 1000 2000 5000 10000"
    duration=10
    rooms_rate=10000
    idle_clients=2000
    profile=release
fi

if [ -z "${YLAMBDA_BIN:-}" ]; then
    if [ "$profile" = release ]; then
        say "building ylambda (release)"
        cargo build -q --release -p ylambda
    else
        cargo build -q -p ylambda
    fi
    YLAMBDA_BIN="$PWD/target/$profile/ylambda"
fi
bin="$YLAMBDA_BIN"

# y-sweet is a cargo binary, not an npm package: use it if it is installed, else say why not.
ysweet_bin="${YSWEET_BIN:-$(command -v y-sweet || echo "$HOME/.cargo/bin/y-sweet")}"
if [[ " $servers " == *" ysweet "* ]] && [ ! -x "$ysweet_bin" ]; then
    say "y-sweet is not installed ($ysweet_bin): leaving it out (cargo install y-sweet --locked)"
    servers="$(echo " $servers " | sed 's/ ysweet / /; s/^ *//; s/ *$//')"
fi

if [ ! -d benches/peers/node_modules ]; then
    say "installing the peer servers (npm ci in benches/peers)"
    (cd benches/peers && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

# 2,000 clients and the server's 2,000 sockets, in one process tree each.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

mkdir -p "$out"
work="$(mktemp -d)"
results="$out/results.jsonl"
: >"$results"
server_pid=
server_url=
started_backends=false

stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=
}

cleanup() {
    stop_server
    if $started_backends; then
        bash scripts/local-redis.sh stop >/dev/null 2>&1 || true
        bash scripts/local-aws.sh stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# wait_for_line FILE REGEX: the first match of REGEX in FILE (written by the server we just
# started), within 30 s; fails if the server exits first.
wait_for_line() {
    local file="$1" regex="$2" line
    for _ in $(seq 1 600); do
        if line="$(grep -m1 -oE "$regex" "$file" 2>/dev/null)"; then
            echo "$line"
            return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    say "the server did not start; its output:"
    tail -20 "$file" >&2
    return 1
}

# start_server NAME: starts a fresh NAME; sets server_pid, server_url and wire.
start_server() {
    local name="$1" log="$work/$1.log" port
    case "$name" in
        embedded|aws)
            wire=apigw
            rm -rf "$work/data"
            (
                if [ "$name" = embedded ]; then export YLAMBDA_BACKEND=embedded; fi
                export YLAMBDA_THROTTLE_CONNECT_RATE=1000000 YLAMBDA_THROTTLE_CONNECT_BURST=1000000
                export YLAMBDA_THROTTLE_MESSAGE_RATE=1000000 YLAMBDA_THROTTLE_MESSAGE_BURST=1000000
                export YLAMBDA_MAX_MESSAGES_PER_SEC=1000000 RUST_LOG="${RUST_LOG:-warn}"
                exec "$bin" dev --listen 127.0.0.1:0 --data-dir "$work/data"
            ) >"$log" 2>&1 &
            server_pid=$!
            server_url="$(wait_for_line "$log" 'ws://127\.0\.0\.1:[0-9]+')"
            ;;
        serve)
            wire=ywebsocket
            rm -rf "$work/data"
            (
                export YLAMBDA_BACKEND=embedded YLAMBDA_MAX_MESSAGES_PER_SEC=1000000
                export RUST_LOG="${RUST_LOG:-warn}"
                exec "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data"
            ) >"$log" 2>&1 &
            server_pid=$!
            server_url="$(wait_for_line "$log" 'ws://127\.0\.0\.1:[0-9]+')"
            ;;
        reference)
            wire=ywebsocket
            port="$(free_port)"
            PORT="$port" node benches/peers/reference.mjs >"$log" 2>&1 &
            server_pid=$!
            wait_for_line "$log" 'running at' >/dev/null
            server_url="ws://127.0.0.1:$port"
            ;;
        hocuspocus)
            wire=hocuspocus
            PORT=0 node benches/peers/hocuspocus.mjs >"$log" 2>&1 &
            server_pid=$!
            server_url="$(wait_for_line "$log" 'ws://127\.0\.0\.1:[0-9]+')"
            ;;
        ysweet)
            wire=ysweet
            port="$(free_port)"
            rm -rf "$work/ysweet-data"
            mkdir -p "$work/ysweet-data"
            "$ysweet_bin" serve "$work/ysweet-data" --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
            server_pid=$!
            wait_for_line "$log" "Listening on ws://127\.0\.0\.1:$port" >/dev/null
            server_url="ws://127.0.0.1:$port"
            ;;
        *) say "unknown server $name (embedded, aws, serve, reference, hocuspocus, ysweet)"; exit 2 ;;
    esac
}

failed=0
# measure SERVER SHAPE BENCH_ARGS...: one fresh server, one `ylambda bench`, one line of results.
measure() {
    local server="$1" shape="$2" report="$work/report.json"
    shift 2
    start_server "$server"
    if ! "$bin" bench --url "$server_url" --protocol "$wire" --server-pid "$server_pid" "$@" \
        >"$report" 2>"$work/bench.err"; then
        say "$server $shape $*: the load generator failed:"
        # the error itself, not the end of a backtrace
        grep -v '^ *[0-9]*: \|^ *at ' "$work/bench.err" | tail -5 >&2
        failed=1
        stop_server
        return
    fi
    stop_server
    say "$server $shape: $(tail -1 "$work/bench.err")"
    # A measurement with errors keeps its server's log, the only place the server's side of an
    # error shows (the work directory goes when the script ends).
    if ! grep -q ' 0 errors' <(tail -1 "$work/bench.err"); then
        mkdir -p "$out/logs"
        cp "$work/$server.log" "$out/logs/$server-$shape-$(date +%s).log"
        say "kept the server's log in $out/logs/"
    fi
    python3 - "$server" "$shape" "$report" "$results" "$smoke" <<'EOF' || failed=1
import json, sys
server, shape, report, results, smoke = sys.argv[1:]
r = json.load(open(report))
r["target"], r["shape"] = server, shape
with open(results, "a") as f:
    f.write(json.dumps(r) + "\n")
# A server that kept up (delivered what it was offered) must have lost nothing and converged;
# past saturation, losses are the measurement, not a failure (full runs only).
kept_up = r["delivered"] == r["expected_deliveries"]
if (smoke == "true" or kept_up) and (r["errors"] or not r["converged"] or r["synced"] != r["clients"]):
    print(f"bench: {server} {shape}: errors {r['errors']} {r['error_samples']}, converged "
          f"{r['converged']}, synced {r['synced']}/{r['clients']}", file=sys.stderr)
    sys.exit(1)
EOF
}

for server in $servers; do
    if [ "$server" = aws ] && ! $started_backends; then
        eval "$(bash scripts/local-aws.sh start)"
        eval "$(bash scripts/local-redis.sh start)"
        export YLAMBDA_BACKEND=aws
        started_backends=true
    fi
    for rate in $rates; do
        measure "$server" sweep --clients 50 --rooms 1 --rate "$rate" --duration "$duration"
    done
    measure "$server" rooms --clients 200 --rooms 100 --rate "$rooms_rate" --duration "$duration"
    measure "$server" idle --clients "$idle_clients" --rooms "$((idle_clients / 2))" --rate 0 \
        --duration "$duration" --drain 0
    if [ "$server" = aws ]; then unset YLAMBDA_BACKEND; fi
done

# The smoke run writes its report beside its results, so the report code cannot rot either.
if $smoke; then report_dir="$out/report"; else report_dir=benches; fi
"$bin" bench-report --results "$results" --out "$report_dir"
say "wrote $report_dir/BENCHMARKS.md and $report_dir/charts/"

say "results: $results"
exit "$failed"
