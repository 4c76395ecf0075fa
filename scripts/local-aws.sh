#!/usr/bin/env bash
# Local AWS without Docker: a moto server on loopback with ylambda's DynamoDB table and S3 bucket,
# created the way template.yaml declares them (table `pk`/`sk`, GSI `gs1` on `sk`/`data`, TTL on
# `ttl`). What the tests and CI use; localstack/ is the Docker alternative.
#
#   eval "$(scripts/local-aws.sh start)"   # start (or reuse) moto; prints `export` lines only
#   scripts/local-aws.sh status            # is the moto we started running?
#   scripts/local-aws.sh stop              # stop the moto this script started (nothing else)
#
# Only `export` lines go to stdout; progress goes to stderr and moto's own output to
# $YLAMBDA_STATE_DIR/moto.log. If `start` fails it prints `false` on stdout, so that
# `eval "$(scripts/local-aws.sh start)"` fails too under `set -e` (eval alone would hide it).
#
# Environment (all optional):
#   YLAMBDA_VENV       Python venv holding moto          (default .ci-work/venv, created if missing)
#   YLAMBDA_STATE_DIR  pid, env and log files            (default .ci-work)
#   MOTO_PORT          port on 127.0.0.1                 (default: a free one)
#   YLAMBDA_TABLE      DynamoDB table to create          (default ylambda)
#   YLAMBDA_BUCKET     S3 bucket to create               (default ylambda-snapshots)
#   PYTHON             interpreter that creates the venv (default python3)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
state_dir="${YLAMBDA_STATE_DIR:-$root/.ci-work}"
venv="${YLAMBDA_VENV:-$state_dir/venv}"
pid_file="$state_dir/moto.pid"
env_file="$state_dir/moto.env"
log_file="$state_dir/moto.log"
table="${YLAMBDA_TABLE:-ylambda}"
bucket="${YLAMBDA_BUCKET:-ylambda-snapshots}"
region=us-east-1
# moto 5 is what this script and the adapters' tests were checked against; 6 may change behaviour.
moto_requirement='moto[server]>=5.1,<6'

cmd="${1:-}"

on_exit() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ "$cmd" = start ]; then
        echo "false # scripts/local-aws.sh start failed (exit $rc); see stderr and $log_file"
    fi
}
trap on_exit EXIT

script_tag=local-aws
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # say, recorded_pid, stop_recorded, free_port

# Is the process PID the moto server we started? (For recorded_pid, scripts/lib.sh.)
is_moto() {
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'moto.server'
}

# The pid in the state file, if that process is alive and is the moto server we started.
running_pid() { recorded_pid "$pid_file" is_moto; }

ensure_moto() {
    if [ ! -x "$venv/bin/python" ]; then
        say "creating Python venv $venv"
        "${PYTHON:-python3}" -m venv "$venv" >&2 || {
            say "cannot create a venv (on Debian/Ubuntu: apt-get install python3-venv)"
            return 1
        }
    fi
    if ! "$venv/bin/python" -c 'import moto.server, boto3' 2>/dev/null || [ ! -x "$venv/bin/moto_server" ]; then
        say "installing $moto_requirement into $venv (from PyPI)"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$moto_requirement" >&2
    fi
}

# Polls until moto answers HTTP, or fails if the process died or 30 s passed.
wait_ready() {
    local pid="$1" endpoint="$2"
    "$venv/bin/python" - "$pid" "$endpoint" <<'PY'
import os, sys, time, urllib.request
pid, endpoint = int(sys.argv[1]), sys.argv[2]
deadline = time.monotonic() + 30
while True:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("moto server exited during start-up")
    try:
        urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).read()
        sys.exit(0)
    except Exception as e:  # not listening yet
        last = e
    if time.monotonic() > deadline:
        sys.exit(f"moto server did not answer within 30 s: {last}")
    time.sleep(0.1)
PY
}

# Creates the table (same shape as template.yaml and the Rust `create_table`) and the bucket.
# Idempotent, so `start` can be re-run against a running server.
create_resources() {
    local endpoint="$1"
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION="$region" \
        "$venv/bin/python" - "$endpoint" "$table" "$bucket" <<'PY'
import sys, time
import boto3
endpoint, table, bucket = sys.argv[1:4]
ddb = boto3.client("dynamodb", endpoint_url=endpoint)
try:
    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "data", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[{
            "IndexName": "gs1",
            "KeySchema": [
                {"AttributeName": "sk", "KeyType": "HASH"},
                {"AttributeName": "data", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }],
    )
except ddb.exceptions.ResourceInUseException:
    pass
ddb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
    ddb.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
    )
s3 = boto3.client("s3", endpoint_url=endpoint)
try:
    s3.create_bucket(Bucket=bucket)
except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
    pass
PY
}

print_env() {
    local endpoint="$1"
    {
        printf 'export AWS_ENDPOINT_URL=%q\n' "$endpoint"
        printf 'export AWS_REGION=%q\n' "$region"
        printf 'export AWS_ACCESS_KEY_ID=test\n'
        printf 'export AWS_SECRET_ACCESS_KEY=test\n'
        printf 'export YLAMBDA_TABLE=%q\n' "$table"
        printf 'export YLAMBDA_BUCKET=%q\n' "$bucket"
        # Redis is not started here: scripts/local-redis.sh prints its own YLAMBDA_REDIS_URL
        # export. If it moves into this script, start it in `start` below and add its line here.
    } | tee "$env_file"
}

start() {
    mkdir -p "$state_dir"
    ensure_moto
    local pid endpoint
    if pid="$(running_pid)"; then
        endpoint="$(sed -n 's/^export AWS_ENDPOINT_URL=//p' "$env_file" 2>/dev/null || true)"
        if [ -n "$endpoint" ]; then
            say "moto already running (pid $pid) at $endpoint"
            create_resources "$endpoint"
            print_env "$endpoint"
            return 0
        fi
        say "moto (pid $pid) is running but $env_file is missing: stop it first"
        return 1
    fi
    rm -f "$pid_file" "$env_file"
    local port="${MOTO_PORT:-$(free_port "$venv/bin/python")}"
    endpoint="http://127.0.0.1:$port"
    say "starting moto server on $endpoint (log: $log_file)"
    # This is `moto_server -H 127.0.0.1 -p PORT`, but serving one request at a time. moto 5's S3
    # PutObject checks If-Match / If-None-Match, then stores the body, then sets its metadata,
    # with no lock around the three: on moto's default threaded server two racing conditional
    # writes can both pass the check (rare, but nothing prevents it; real S3 lets exactly one
    # win), and a concurrent reader can see a new body without its metadata. Serial requests
    # make each write atomic, as on AWS, so the race tests cannot flake on the emulator. The
    # non-threaded server speaks HTTP/1.0 (one request per connection), so no idle keep-alive
    # connection can hold its single worker.
    # stdin/stdout/stderr all redirected: a child holding the caller's stdout open would make
    # `$(scripts/local-aws.sh start)` wait for moto to exit.
    "$venv/bin/python" -c '
import sys
import moto.server as server
run_simple = server.run_simple
server.run_simple = lambda *args, **kwargs: run_simple(*args, **dict(kwargs, threaded=False))
server.main(sys.argv[1:])
' -H 127.0.0.1 -p "$port" </dev/null >>"$log_file" 2>&1 &
    pid=$!
    echo "$pid" >"$pid_file"
    if ! wait_ready "$pid" "$endpoint"; then
        tail -n 20 "$log_file" >&2 || true
        kill "$pid" 2>/dev/null || true
        rm -f "$pid_file"
        return 1
    fi
    create_resources "$endpoint"
    say "moto ready (pid $pid): table $table, bucket $bucket"
    # --- Redis: a sibling `scripts/local-redis.sh start` owns it (see print_env). ---
    print_env "$endpoint"
}

# Stops the moto this script started (nothing else), SIGKILL after 10 s.
stop() { stop_recorded moto "$pid_file" is_moto 10 "$env_file"; }

case "$cmd" in
    start) start ;;
    stop) stop ;;
    status)
        if pid="$(running_pid)"; then
            say "running (pid $pid)"
            cat "$env_file" >&2 2>/dev/null || true
        else
            say "not running"
            exit 1
        fi
        ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
