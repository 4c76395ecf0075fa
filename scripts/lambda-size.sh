#!/usr/bin/env bash
# The deployed Lambdas' size: builds the three functions as `sam build` does (cargo lambda,
# release, arm64, cross-compiled with zig) and prints each stripped `bootstrap`'s size. Not in
# CI: about 11 to 22 minutes on 2 cores. Needs `pip install cargo-lambda ziglang` and
# `rustup target add aarch64-unknown-linux-gnu` (both from the package registries).
#
#   scripts/lambda-size.sh [--target-dir DIR]   # default: target/lambda-size, kept apart from
#                                               # the host build so neither rebuilds the other
set -euo pipefail
cd "$(dirname "$0")/.."

dir=target/lambda-size
while [ $# -gt 0 ]; do
    case "$1" in
        --target-dir) dir="$2"; shift 2 ;;
        *) echo "usage: $0 [--target-dir DIR]" >&2; exit 2 ;;
    esac
done

command -v cargo-lambda >/dev/null || {
    echo "lambda-size: cargo-lambda is missing (pip install cargo-lambda ziglang)" >&2
    exit 1
}
functions=(ylambda-connect ylambda-disconnect ylambda-message)
start=$SECONDS
CARGO_TARGET_DIR="$dir" cargo lambda build --release --arm64 "${functions[@]/#/--package=}"
echo "== arm64 bootstrap sizes (cargo lambda strips them; built in $((SECONDS - start)) s)"
for f in "${functions[@]}"; do
    bin="$dir/lambda/$f/bootstrap"
    file -b "$bin" | grep -q aarch64 || { echo "lambda-size: $bin is not an arm64 binary" >&2; exit 1; }
    awk -v f="$f" -v n="$(stat -c %s "$bin")" 'BEGIN { printf "%-20s %6.2f MB\n", f, n / 1e6 }'
done
