#!/usr/bin/env bash
# Micro-benchmarks: criterion times the server's work on Yjs updates (shared/benches/doc_ops/main.rs:
# validate, sync step 2 from logs and snapshots, compaction, the splitter, piece reassembly);
# benches/peers/micro-yjs.mjs times JavaScript yjs on the same input files; one table, with
# the ratios.
#
#   scripts/micro-bench.sh            # release build, full inputs (a few minutes):
#                                     #   writes benches/MICROBENCHMARKS.md
#   scripts/micro-bench.sh --smoke    # CI: debug build, tiny inputs, milliseconds per benchmark;
#                                     #   target/micro-bench/smoke.md (figures meaningless)
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
case "${1:-}" in
    --smoke) smoke=1 ;;
    "") ;;
    *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac

out=target/micro-bench
inputs="$out/inputs"
criterion_dir="${CARGO_TARGET_DIR:-target}/criterion"
rm -rf "$inputs" "$criterion_dir/doc"
mkdir -p "$out"
if [ ! -d benches/peers/node_modules ]; then
    (cd benches/peers && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ "$smoke" = 1 ]; then
    YLAMBDA_MICRO_SMOKE=1 YLAMBDA_MICRO_INPUTS="$PWD/$inputs" \
        cargo bench --profile dev -p ylambda-shared --bench doc_ops -- \
        --warm-up-time 0.01 --measurement-time 0.05 --noplot
    node benches/peers/micro-yjs.mjs --inputs "$inputs" --criterion "$criterion_dir" \
        --out "$out/smoke.md" --budget-ms 20
    # Every operation has a row, and every row a figure.
    rows=$(grep -c '^| [a-z_0-9]* | ' "$out/smoke.md")
    if [ "$rows" -lt 12 ]; then
        echo "micro-bench smoke: expected at least 12 rows, got $rows" >&2
        exit 1
    fi
    exit 0
fi

YLAMBDA_MICRO_INPUTS="$PWD/$inputs" cargo bench -p ylambda-shared --bench doc_ops -- --noplot
node benches/peers/micro-yjs.mjs --inputs "$inputs" --criterion "$criterion_dir" \
    --out "$out/table.md"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
yjs=$(node -p "require('./benches/peers/node_modules/yjs/package.json').version")
{
    echo "# Micro-benchmarks: ylambda's update work (yrs) vs JavaScript yjs"
    echo
    echo "Produced by \`scripts/micro-bench.sh\` on $(date -u +%Y-%m-%d): $cpu, $(nproc) cores;"
    echo "release build, yrs 0.28.1; yjs $yjs on Node $(node --version). Medians: criterion's for"
    echo "Rust (\`shared/benches/doc_ops/main.rs\`), of at least 5 runs after a warm-up for yjs"
    echo "(\`benches/peers/micro-yjs.mjs\`). Both read the same input files."
    echo
    echo "Inputs: a deterministic generated trace (a real editing trace as Yjs updates from a"
    echo "registry package was not looked for long enough to find one). Logs: four clients typing into one text, each update 1 to 20 characters"
    echo "inserted at a random place or (one in ten) 1 to 10 deleted, applied to the others as in a"
    echo "live room. Snapshots: one client pasting paragraphs of 256 to 4,095 characters at random"
    echo "places, an eighth of the edits deleting up to 200; a few characters are not ASCII."
    echo "Operations: **validate** is what the server does to each incoming update (decode, apply to"
    echo "a throwaway document, the reference checks, re-encode; yjs: apply to a Y.Doc and encode)."
    echo "**sync_step2** answers a fresh client from the stored log or snapshot (merge; a client with"
    echo "nothing gets the merged state as it is, and the server's state vector is read off it; yjs:"
    echo "the faster of mergeUpdates + diffUpdate and applying to a Y.Doc). **sync_step2_returning**"
    echo "answers a client that has 90% of every client's clock (yrs' diff; yjs: the faster of"
    echo "diffUpdate and a Y.Doc). **compaction** merges the 1 MB snapshot and 1,000 updates."
    echo "**split** cuts a state into updates under 96 KB; **split_checked** is the cut a new client's"
    echo "answer gets: the same, after walking the state (in the same read) for structs that would"
    echo "stay pending; **pieces** reassembles a message sent in 32 KB frames (ylambda only)."
    echo
    cat "$out/table.md"
} > benches/MICROBENCHMARKS.md
echo "wrote benches/MICROBENCHMARKS.md" >&2
