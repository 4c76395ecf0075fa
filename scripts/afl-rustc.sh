#!/usr/bin/env bash
# RUSTC_WRAPPER for the afl build (scripts/fuzz.sh): builds yrs without debug assertions and
# overflow checks, as Cargo.toml's dev and fuzz profiles do and as the Lambdas ship it.
#
# cargo-afl turns both on for every crate through RUSTFLAGS, which win over a per-package
# profile. A debug build of yrs 0.28.1 overflows its length bookkeeping on merges that Yjs and a
# release yrs apply (`fuzz/tests/regressions.rs`
# `a_merge_only_a_debug_build_of_yrs_overflows_on_is_served`), so without this afl reports those
# as crashes that the shipped code does not have. Our own crates keep both checks. rustc takes
# the last of a repeated `-C` option, so appending is enough.
set -euo pipefail
rustc="$1"
shift
previous=
for arg in "$@"; do
    if [ "$previous" = "--crate-name" ] && [ "$arg" = "yrs" ]; then
        exec "$rustc" "$@" -C debug-assertions=off -C overflow-checks=off
    fi
    previous="$arg"
done
exec "$rustc" "$@"
