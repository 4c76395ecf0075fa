#!/usr/bin/env bash
# Lambda size and cold start: builds the three functions (release, this machine's architecture;
# cargo lambda's arm64 build is the deployed one, see the README), prints each binary's size as
# built and stripped, then starts the connect function fresh 20 times under ylambda's local
# Runtime API on the aws backend (moto + redis-server on loopback, started here and stopped by
# PID) and on the embedded one: process start to the answer to its first $connect, and the same
# event warm.
#
#   scripts/cold-start.sh [--profile PROFILE] [--starts N]
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
starts=20
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --starts) starts="$2"; shift 2 ;;
        *) echo "usage: $0 [--profile PROFILE] [--starts N]" >&2; exit 2 ;;
    esac
done

cargo build --profile "$profile" -p ylambda -p ylambda-connect -p ylambda-disconnect -p ylambda-message
dir="${CARGO_TARGET_DIR:-target}/$profile"
echo "== sizes ($profile, $(uname -m))"
for f in ylambda-connect ylambda-disconnect ylambda-message; do
    stripped=$(mktemp)
    strip --strip-all -o "$stripped" "$dir/$f"
    awk -v f="$f" -v built="$(stat -c %s "$dir/$f")" -v small="$(stat -c %s "$stripped")" \
        'BEGIN { printf "%-20s %6.2f MB built, %6.2f MB stripped\n", f, built / 1e6, small / 1e6 }'
    rm -f "$stripped"
done

cleanup() {
    bash scripts/local-redis.sh stop >/dev/null 2>&1 || true
    bash scripts/local-aws.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
echo "== cold start, embedded backend"
"$dir/ylambda" bench-cold-start --lambdas "$dir" --starts "$starts" >/dev/null
eval "$(bash scripts/local-aws.sh start)"
eval "$(bash scripts/local-redis.sh start)"
echo "== cold start, aws backend (DynamoDB on moto, Redis doc store)"
YLAMBDA_BACKEND=aws YLAMBDA_DOC_STORE=redis \
    "$dir/ylambda" bench-cold-start --lambdas "$dir" --starts "$starts" >/dev/null
