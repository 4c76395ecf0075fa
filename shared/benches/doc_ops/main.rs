//! Micro-benchmarks of what the server does with Yjs updates (criterion), on inputs it also
//! writes to disk so that `benches/peers/micro-yjs.mjs` times JavaScript yjs on the same bytes:
//! `scripts/micro-bench.sh` runs both and writes benches/MICROBENCHMARKS.md.
//!
//! `YLAMBDA_MICRO_SMOKE=1` shrinks every input (CI's smoke run); `YLAMBDA_MICRO_INPUTS` is where
//! the inputs go (default target/micro-bench/inputs).
use std::path::PathBuf;
use std::time::Duration;

use criterion::BatchSize::LargeInput;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ylambda_shared::adapters::MemoryDocStore;
use ylambda_shared::doc::{
    answer_sync_step1, merge_room,
    split::{split_if_it_integrates_whole, split_update_v1},
    state_vector, validate_update, SyncAnswer,
};
use ylambda_shared::ports::{DocStore, PieceLimits, PieceOutcome};
use ylambda_shared::protocol::pieces::{parse_piece, split_into_pieces};

mod trace;

/// The state vector of a client that has nothing (a fresh tab).
const EMPTY_STATE_VECTOR: [u8; 1] = [0];
/// What the handler cuts a sync step 2 into: 128 KB messages as base64 text, less the framing.
const PIECE_BUDGET: usize = 96 * 1024;

struct Inputs {
    edit: Vec<u8>,
    logs: Vec<(usize, Vec<Vec<u8>>)>,
    snapshots: Vec<(&'static str, Vec<u8>)>,
    /// Per snapshot, the state vector of a client that comes back to it: it has the first 90% of
    /// every client's clock.
    returning: Vec<Vec<u8>>,
}

fn smoke() -> bool {
    std::env::var_os("YLAMBDA_MICRO_SMOKE").is_some()
}

fn inputs() -> Inputs {
    let (log_sizes, snapshot_sizes): (Vec<usize>, Vec<(&str, usize)>) = if smoke() {
        (vec![10, 100], vec![("1mb", 10_000), ("10mb", 50_000)])
    } else {
        (
            vec![100, 1_000, 10_000],
            vec![("1mb", 1_000_000), ("10mb", 10_000_000)],
        )
    };
    let biggest = *log_sizes.last().unwrap_or(&0);
    let full_log = trace::typing_log(biggest, 1);
    let snapshots: Vec<(&str, Vec<u8>)> = snapshot_sizes
        .into_iter()
        .map(|(name, bytes)| (name, trace::snapshot(bytes, 2)))
        .collect();
    let returning = snapshots
        .iter()
        .map(|(_, snapshot)| {
            let sv = state_vector(snapshot).expect("the snapshot has a state vector");
            trace::scaled_state_vector(&sv, 0.9)
        })
        .collect();
    Inputs {
        edit: full_log[0].clone(),
        logs: log_sizes
            .iter()
            .map(|&n| (n, full_log[..n].to_vec()))
            .collect(),
        snapshots,
        returning,
    }
}

/// Writes the inputs for the JavaScript side: one file per input; a log is its updates, each
/// preceded by its length (u32, little-endian).
fn write_inputs(inputs: &Inputs) -> std::io::Result<PathBuf> {
    let dir = std::env::var_os("YLAMBDA_MICRO_INPUTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/micro-bench/inputs"
            ))
        });
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("edit.bin"), &inputs.edit)?;
    for (n, log) in &inputs.logs {
        let mut bytes = Vec::new();
        for update in log {
            bytes.extend_from_slice(&(update.len() as u32).to_le_bytes());
            bytes.extend_from_slice(update);
        }
        std::fs::write(dir.join(format!("log-{n}.bin")), bytes)?;
    }
    for ((name, snapshot), returning) in inputs.snapshots.iter().zip(&inputs.returning) {
        std::fs::write(dir.join(format!("snapshot-{name}.bin")), snapshot)?;
        std::fs::write(dir.join(format!("snapshot-{name}.returning-sv")), returning)?;
    }
    Ok(dir)
}

/// Sync step 2 as the handler answers it: the room's state merged, what the client lacks, and
/// the server's state vector (for its own sync step 1). The handler owns what it read from the
/// stores, so the benchmarks hand the updates over by value, copied outside the timed part.
/// No piece limit: these benchmarks time the answer; cutting has benchmarks of its own.
const NO_CUT: usize = usize::MAX;

fn sync_step2(snapshot: Option<Vec<u8>>, log: Vec<Vec<u8>>) -> SyncAnswer {
    let merged = merge_room(snapshot, log).expect("the trace merges");
    answer_sync_step1(merged.state, &EMPTY_STATE_VECTOR, NO_CUT).expect("and answers a new client")
}

fn benches(c: &mut Criterion, inputs: &Inputs) {
    let mut g = c.benchmark_group("doc");
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("validate", "edit"), |b| {
        b.iter(|| validate_update(&inputs.edit).expect("valid"))
    });
    for (name, snapshot) in &inputs.snapshots {
        g.bench_function(
            BenchmarkId::new("validate", format!("snapshot-{name}")),
            |b| b.iter(|| validate_update(snapshot).expect("valid")),
        );
    }
    for (n, log) in &inputs.logs {
        g.bench_function(BenchmarkId::new("sync_step2", format!("log-{n}")), |b| {
            b.iter_batched(|| log.clone(), |log| sync_step2(None, log), LargeInput)
        });
    }
    for (name, snapshot) in &inputs.snapshots {
        g.bench_function(
            BenchmarkId::new("sync_step2", format!("snapshot-{name}")),
            |b| {
                b.iter_batched(
                    || snapshot.clone(),
                    |snapshot| sync_step2(Some(snapshot), Vec::new()),
                    LargeInput,
                )
            },
        );
    }
    // A fresh client joining a large document just after a few edits: the snapshot and a short
    // log of typing, merged (the log holds Strings, so invariant 22 reads the snapshot too).
    if let (Some((name, snapshot)), Some((n, log))) = (inputs.snapshots.last(), inputs.logs.first())
    {
        g.bench_function(
            BenchmarkId::new("sync_step2", format!("snapshot-{name}+log-{n}")),
            |b| {
                b.iter_batched(
                    || (snapshot.clone(), log.clone()),
                    |(snapshot, log)| sync_step2(Some(snapshot), log),
                    LargeInput,
                )
            },
        );
    }
    // A client that has most of the document (a tab reconnecting) gets yrs' diff.
    for ((name, snapshot), returning) in inputs.snapshots.iter().zip(&inputs.returning) {
        g.bench_function(
            BenchmarkId::new("sync_step2_returning", format!("snapshot-{name}")),
            |b| {
                b.iter_batched(
                    || snapshot.clone(),
                    |snapshot| {
                        answer_sync_step1(snapshot, returning, NO_CUT)
                            .expect("answers a returning client")
                    },
                    LargeInput,
                )
            },
        );
    }
    // Compaction: the snapshot and the log since, merged into the next snapshot.
    if let (Some((name, snapshot)), Some((n, log))) = (inputs.snapshots.first(), inputs.logs.get(1))
    {
        g.bench_function(
            BenchmarkId::new("compaction", format!("snapshot-{name}+log-{n}")),
            |b| {
                b.iter_batched(
                    || (snapshot.clone(), log.clone()),
                    |(snapshot, log)| merge_room(Some(snapshot), log).expect("merges"),
                    LargeInput,
                )
            },
        );
    }
    for (name, snapshot) in &inputs.snapshots {
        g.bench_function(BenchmarkId::new("split", format!("snapshot-{name}")), |b| {
            b.iter(|| split_update_v1(snapshot, PIECE_BUDGET).expect("cuts"))
        });
        // What the server does for a new client: the same cut, after checking (in the same read
        // of the state) that nothing in it would stay pending (ARCHITECTURE.md invariant 26).
        g.bench_function(
            BenchmarkId::new("split_checked", format!("snapshot-{name}")),
            |b| {
                b.iter(|| {
                    split_if_it_integrates_whole(snapshot, PIECE_BUDGET)
                        .expect("cuts")
                        .expect("integrates whole")
                })
            },
        );
    }
    if let Some((name, snapshot)) = inputs.snapshots.first() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let text = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, snapshot);
        let limits = PieceLimits {
            max_text_bytes: 64 << 20,
            max_open_messages: 4,
            ttl: Duration::from_secs(60),
        };
        // API Gateway's 32 KB frames (smaller for the smoke run's small input, so it still is
        // cut into pieces).
        let frame_bytes = (text.len() / 8).clamp(1024, 32 * 1024);
        let mut round = 0u64;
        g.bench_function(
            BenchmarkId::new("pieces", format!("snapshot-{name}")),
            |b| {
                b.iter(|| {
                    round += 1;
                    let id = format!("m{round}");
                    let frames = split_into_pieces(&text, &id, frame_bytes).expect("fits");
                    let store = MemoryDocStore::new();
                    runtime.block_on(async {
                        let mut whole = None;
                        for frame in &frames {
                            let piece = parse_piece(frame, 1024).expect("a piece");
                            match store.put_piece("c", &piece, &limits).await.expect("stored") {
                                PieceOutcome::Complete(t) => whole = Some(t),
                                PieceOutcome::Waiting => {}
                                other => panic!("{other:?}"),
                            }
                        }
                        assert_eq!(whole.as_deref().map(str::len), Some(text.len()));
                    })
                })
            },
        );
    }
    g.finish();
}

fn run(c: &mut Criterion) {
    let inputs = inputs();
    match write_inputs(&inputs) {
        Ok(dir) => eprintln!("micro-bench inputs in {}", dir.display()),
        Err(e) => panic!("cannot write the micro-bench inputs: {e}"),
    }
    benches(c, &inputs);
}

criterion_group!(micro, run);
criterion_main!(micro);
