//! A mutation fuzzer for stable Rust, without coverage feedback: it takes inputs from a corpus
//! and mutates them (bit flips, interesting bytes, inserts, deletes, repeats, splices with
//! another input, lib0 var-ints at the encoding's boundaries, tokens of the target's format),
//! runs the target on each, and keeps every input whose panic escaped. It is the driver of
//! `scripts/fuzz.sh --smoke` (no AFL++ needed) and of the short runs in `cargo test`; the long
//! runs use afl (`afl/`), which learns from coverage.
use std::time::{Duration, Instant};

use crate::panics;
use crate::targets::Target;

/// How long a run goes on.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    Time(Duration),
    Executions(u64),
}

/// One input whose panic escaped the target.
#[derive(Clone, Debug)]
pub struct Crash {
    pub input: Vec<u8>,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub executions: u64,
    /// Distinct crashes (by panic message), first input of each.
    pub crashes: Vec<Crash>,
    /// Panics raised and caught inside the target (yrs panics behind `doc::guard`).
    pub caught_panics: u64,
    pub elapsed: Duration,
}

/// Longest input the mutator makes.
pub const MAX_INPUT: usize = 4096;

/// Runs `target` over mutations of `corpus` (the corpus itself first).
pub fn run(target: &Target, corpus: &[Vec<u8>], budget: Budget, seed: u64) -> Report {
    panics::install_quiet_hook();
    let start = Instant::now();
    let panics_before = panics::count();
    let mut report = Report::default();
    let fallback = [Vec::new()];
    let corpus = if corpus.is_empty() {
        &fallback[..]
    } else {
        corpus
    };
    let mut rng = Rng::new(seed);
    let tokens = tokens(target.name);
    let mut escaped = 0u64;
    let mut input = Vec::with_capacity(MAX_INPUT);
    loop {
        let done = match budget {
            Budget::Executions(n) => report.executions >= n,
            Budget::Time(limit) => report.executions % 64 == 0 && start.elapsed() >= limit,
        };
        if done {
            break;
        }
        input.clear();
        let n = report.executions as usize;
        if n < corpus.len() {
            input.extend_from_slice(&corpus[n]);
        } else {
            input.extend_from_slice(&corpus[rng.below(corpus.len())]);
            let rounds = 1 + rng.below(8);
            for _ in 0..rounds {
                mutate(&mut input, corpus, tokens, &mut rng);
            }
            input.truncate(MAX_INPUT);
        }
        report.executions += 1;
        if let Err(message) = panics::run_caught(|| (target.run)(&input)) {
            escaped += 1;
            if !report.crashes.iter().any(|c| c.message == message) {
                report.crashes.push(Crash {
                    input: input.clone(),
                    message,
                });
            }
        }
    }
    report.caught_panics = panics::count() - panics_before - escaped;
    report.elapsed = start.elapsed();
    report
}

/// lib0 var-uint values at the edges: one-byte, two-byte, 32-bit, 53-bit (JavaScript's safe
/// integers, yrs' client ids) and 64-bit limits.
const BOUNDARY_VALUES: [u64; 14] = [
    0,
    1,
    0x7f,
    0x80,
    0x3fff,
    0x4000,
    0xffff_ffff,
    0x1_0000_0000,
    (1 << 53) - 1,
    1 << 53,
    i64::MAX as u64,
    u64::MAX,
    0xff,
    0x100,
];

const INTERESTING_BYTES: [u8; 10] = [0, 1, 2, 7, 8, 0x7f, 0x80, 0xc0, 0xfe, 0xff];

fn tokens(target: &str) -> &'static [&'static [u8]] {
    match target {
        "signaling" => &[
            b"{",
            b"}",
            b"[",
            b"]",
            b"\"type\":",
            b"\"subscribe\"",
            b"\"unsubscribe\"",
            b"\"publish\"",
            b"\"ping\"",
            b"\"topic\":",
            b"\"topics\":",
            b"\"data\":",
            b",",
            b":",
            b"\"\"",
            b"null",
            b"1e999",
            b"-0",
            b"\"\\u0000\"",
            b"\"\\ud800\"",
        ],
        "jwt" => &[
            b".",
            b"eyJ",
            b"=",
            b"S\n",
            b"\n",
            b"\"alg\":\"HS256\"",
            b"\"alg\":\"none\"",
            b"\"exp\":",
            b"\"room\":",
            b"\"rooms\":",
            b"\"access\":\"ro\"",
            b"\"notes\"",
            b"\"*\"",
            b"18446744073709551615",
            b"-1",
        ],
        "pieces" => &[
            b"~1:",
            b":",
            b"\n",
            b"!",
            b"#",
            b"0",
            b"1",
            b"2",
            b"4294967295",
            b"4294967296",
            b"~2:",
        ],
        "on_message" => &[
            crate::targets::on_message::OP_SEPARATOR,
            b"{\"type\":\"subscribe\",\"topics\":[\"t\"]}",
            b"{\"type\":\"publish\",\"topic\":\"t\",\"data\":{}}",
            b"~1:m:0:2:",
            b"\x04\x00\x01\x00",
            b"\x04\x00\x00",
            b"\x04\x01",
            b"\x04\x03",
            b"\x0c",
        ],
        _ => &[],
    }
}

fn mutate(input: &mut Vec<u8>, corpus: &[Vec<u8>], tokens: &[&[u8]], rng: &mut Rng) {
    let len = input.len();
    match rng.below(12) {
        0 if len > 0 => {
            let at = rng.below(len);
            input[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = rng.below(len);
            input[at] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
        }
        2 if len > 0 => {
            let at = rng.below(len);
            input[at] = rng.next() as u8;
        }
        3 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            input.splice(at..at, bytes);
        }
        4 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(32));
            input.drain(at..at + n);
        }
        5 if len > 0 => {
            // Repeat a slice (a message, a struct) somewhere else.
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(64));
            let slice = input[at..at + n].to_vec();
            let to = rng.below(len + 1);
            input.splice(to..to, slice);
        }
        6 => {
            // Splice: the start of this input, the end of another.
            let other = &corpus[rng.below(corpus.len())];
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        7 | 8 => {
            // A var-int at a boundary, inserted or over the bytes at a position.
            let mut bytes = Vec::new();
            var_uint(
                &mut bytes,
                BOUNDARY_VALUES[rng.below(BOUNDARY_VALUES.len())],
            );
            let at = rng.below(len + 1);
            if rng.below(2) == 0 {
                let end = (at + bytes.len()).min(len);
                input.splice(at..end, bytes);
            } else {
                input.splice(at..at, bytes);
            }
        }
        9 => {
            // A var-int that goes on too long, or never ends.
            let n = 9 + rng.below(4);
            let at = rng.below(len + 1);
            input.splice(at..at, std::iter::repeat_n(0xff, n));
        }
        10 if !tokens.is_empty() => {
            let token = tokens[rng.below(tokens.len())];
            let at = rng.below(len + 1);
            input.splice(at..at, token.iter().copied());
        }
        11 if len > 0 => input.truncate(rng.below(len)),
        _ => {
            let at = rng.below(len + 1);
            input.insert(at, rng.next() as u8);
        }
    }
}

fn var_uint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// xorshift64*: small, fast, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n`; `n` > 0.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
