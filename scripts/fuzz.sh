#!/usr/bin/env bash
# Fuzzes the code that reads network input (targets in fuzz/src/targets/, seeds in fuzz/corpus/).
#
#   scripts/fuzz.sh [--smoke] [--driver afl|mutate] [--jobs N] [SECONDS_PER_TARGET] [TARGET...]
#
# - default: afl (coverage-guided, AFL++ through cargo-afl, installed with `cargo install
#   cargo-afl` if missing: ~2 min, it builds AFL++ too), 60 s per target, every target, one at a
#   time (`--jobs N` runs N at once; each fuzzer takes a core);
# - `--driver mutate`: the mutation driver (`ylambda-fuzz run`, no coverage, no AFL++), built
#   with the `fuzz` profile; also the fallback when cargo-afl cannot be installed;
# - `--smoke`: what CI runs: the mutation driver, debug build (the one `cargo build --workspace`
#   made), 15 s per target, so about 2 minutes in all.
#
# Prints executions and crashes per target; exits 1 if any target crashed. A crash's input is
# kept (target/fuzz-out/<target>/...); reproduce it with
# `target/debug/ylambda-fuzz replay TARGET FILE`, then make it a test in fuzz/tests/regressions.rs.
# Outputs: target/fuzz-out/ (afl's queues, crashes and stats; the mutation driver's crashes).
# The afl build goes to target/afl (instrumented, so it cannot share the normal build's files).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'fuzz: %s\n' "$*" >&2; }

driver=afl
smoke=false
jobs=1
seconds=
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) smoke=true; driver=mutate ;;
        --driver) driver="$2"; shift ;;
        --jobs) jobs="$2"; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        [0-9]*) seconds="$1" ;;
        *) targets+=("$1") ;;
    esac
    shift
done
if [ -z "$seconds" ]; then
    if $smoke; then seconds=15; else seconds=60; fi
fi
case "$driver" in afl|mutate) ;; *) say "unknown driver $driver (afl or mutate)"; exit 2 ;; esac

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
out="$target_dir/fuzz-out"
mkdir -p "$out"

# The afl toolchain: cargo-afl, and AFL++ built for this rustc (`cargo afl config --build`).
ensure_afl() {
    if ! command -v cargo-afl >/dev/null 2>&1; then
        say "installing cargo-afl (builds AFL++ too, about 2 minutes)"
        cargo install cargo-afl --locked >&2 || return 1
    fi
    local built
    # "Already built for this toolchain" is an error too (cargo-afl 0.18).
    built="$(cargo afl config --build 2>&1)" || grep -q "already built" <<<"$built" || {
        printf '%s\n' "$built" | tail -5 >&2
        return 1
    }
}

if [ "$driver" = afl ] && ! ensure_afl; then
    say "cargo-afl is not available: falling back to the mutation driver"
    driver=mutate
fi

if [ "$driver" = mutate ]; then
    if $smoke; then profile=debug; profile_flag=(); else profile=fuzz; profile_flag=(--profile fuzz); fi
    say "building ylambda-fuzz ($profile)"
    nice -n 10 cargo build -q "${profile_flag[@]}" -p ylambda-fuzz --bin ylambda-fuzz
    bin="$target_dir/$profile/ylambda-fuzz"
else
    say "building the afl targets (target/afl, profile fuzz)"
    # The wrapper keeps yrs built as it ships (cargo-afl's RUSTFLAGS would add debug checks).
    # Cargo does not rebuild when the wrapper changes: a yrs built before it is rebuilt once.
    if [ ! -e "$target_dir/afl/.yrs-as-shipped" ] && [ -d "$target_dir/afl" ]; then
        CARGO_TARGET_DIR="$target_dir/afl" cargo clean -q -p yrs --profile fuzz || true
    fi
    RUSTC_WRAPPER="$PWD/scripts/afl-rustc.sh" CARGO_TARGET_DIR="$target_dir/afl" nice -n 10 \
        cargo afl build -q --profile fuzz --features afl -p ylambda-fuzz
    touch "$target_dir/afl/.yrs-as-shipped"
    bin_dir="$target_dir/afl/fuzz"
    # The replay binary, for the crash report.
    nice -n 10 cargo build -q -p ylambda-fuzz --bin ylambda-fuzz
fi

if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(ls fuzz/corpus)
fi
for t in "${targets[@]}"; do
    [ -d "fuzz/corpus/$t" ] || { say "no target $t (targets: $(ls fuzz/corpus | tr '\n' ' '))"; exit 2; }
done

# run_one TARGET: fuzzes it for $seconds; leaves "execs crashes hangs" in $out/TARGET.result.
run_one() {
    local t="$1" log="$out/$1.log"
    if [ "$driver" = mutate ]; then
        rm -rf "${out:?}/$t"
        local status=0
        nice -n 10 "$bin" run "$t" --seconds "$seconds" --corpus "fuzz/corpus/$t" \
            --crashes "$out" --seed "${FUZZ_SEED:-$RANDOM}" >"$log" 2>&1 || status=$?
        if [ "$status" -gt 1 ]; then
            say "$t: the driver failed (status $status), see $log"
            echo "0 1 0" >"$out/$t.result"
            return
        fi
        local execs crashes
        execs="$(sed -n 's/.*execs=\([0-9]*\).*/\1/p' "$log" | head -1)"
        crashes="$(sed -n 's/.* crashes=\([0-9]*\).*/\1/p' "$log" | head -1)"
        echo "${execs:-0} ${crashes:-1} 0" >"$out/$t.result"
    else
        rm -rf "${out:?}/$t"
        # No UI; this machine's CPU frequency and core dump settings are not ours to change;
        # other jobs share the cores, so no pinning.
        AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 \
            nice -n 10 cargo afl fuzz -V "$seconds" -m none -i "fuzz/corpus/$t" -o "$out/$t" \
            -- "$bin_dir/afl-${t//_/-}" >"$log" 2>&1 || true
        local stats="$out/$t/default/fuzzer_stats"
        if [ ! -f "$stats" ]; then
            say "$t: afl-fuzz did not start, see $log"
            tail -20 "$log" >&2
            echo "0 1 0" >"$out/$t.result"
            return
        fi
        local execs crashes hangs
        execs="$(awk -F' *: *' '$1=="execs_done"{print $2}' "$stats")"
        crashes="$(find "$out/$t/default/crashes" -type f -name 'id:*' | wc -l)"
        hangs="$(find "$out/$t/default/hangs" -type f -name 'id:*' | wc -l)"
        echo "${execs:-0} $crashes $hangs" >"$out/$t.result"
    fi
}

say "driver $driver, $seconds s per target, $jobs at a time: ${targets[*]}"
start=$SECONDS
running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

failed=0
total=0
printf '\n%-12s %14s %9s %7s %7s\n' target executions execs/s crashes hangs
for t in "${targets[@]}"; do
    read -r execs crashes hangs <"$out/$t.result"
    printf '%-12s %14s %9s %7s %7s\n' "$t" "$execs" "$((execs / seconds))" "$crashes" "$hangs"
    total=$((total + execs))
    if [ "$crashes" -gt 0 ]; then
        failed=1
        if [ "$driver" = afl ]; then
            dir="$out/$t/default/crashes"
        else
            dir="$out/$t"
        fi
        say "$t crashed; inputs in $dir; replay: target/debug/ylambda-fuzz replay $t $dir"
        if [ -x "$target_dir/debug/ylambda-fuzz" ] && [ -d "$dir" ]; then
            "$target_dir/debug/ylambda-fuzz" replay "$t" "$dir" | head -20 >&2 || true
        fi
    fi
done
printf '%-12s %14s   (%d s wall clock, driver %s)\n' total "$total" "$((SECONDS - start))" "$driver"
exit "$failed"
