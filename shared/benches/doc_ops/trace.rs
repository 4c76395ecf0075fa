//! Deterministic editing traces for the micro-benchmarks (generated: no real editing trace as
//! Yjs updates was found in a registry in the time spent looking). A seeded xorshift drives
//! everything, so every run writes the same bytes.
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, Transact, Update};

/// Positions count UTF-16 code units, as in JavaScript (yrs' default, bytes, would let a random
/// position fall inside a character).
fn doc(client_id: u64) -> Doc {
    Doc::with_options(Options {
        client_id: yrs::block::ClientID::new(client_id),
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    })
}

/// xorshift64*: tiny, seeded, the same sequence everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

const WORDS: [&str; 16] = [
    "the ",
    "document ",
    "server ",
    "lambda ",
    "édition ",
    "merge ",
    "state ",
    "vector ",
    "awareness ",
    "cursor ",
    "room ",
    "update ",
    "snapshot ",
    "piece ",
    "ü ",
    "sync ",
];

/// `len` characters of words (a few of them not ASCII, as real text has).
fn words(rng: &mut Rng, len: usize) -> String {
    let mut s = String::new();
    while s.chars().count() < len {
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s.chars().take(len).collect()
}

/// A log of `edits` small updates from four clients typing into one text, each update what one
/// keystroke burst sends: 1 to 20 characters inserted at a random place, or (one in ten) 1 to 10
/// deleted. Each client's update is applied to the other three, as a live room does.
pub fn typing_log(edits: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let docs: Vec<Doc> = (1..=4).map(doc).collect();
    let texts: Vec<_> = docs.iter().map(|d| d.get_or_insert_text("t")).collect();
    let mut log = Vec::with_capacity(edits);
    for _ in 0..edits {
        let k = rng.below(4) as usize;
        let update = {
            let mut txn = docs[k].transact_mut();
            let len = texts[k].len(&txn);
            if len > 10 && rng.below(10) == 0 {
                let n = 1 + rng.below(10) as u32;
                let at = rng.below((len - n) as u64) as u32;
                texts[k].remove_range(&mut txn, at, n);
            } else {
                let at = rng.below(len as u64 + 1) as u32;
                let n = 1 + rng.below(20) as usize;
                texts[k].insert(&mut txn, at, &words(&mut rng, n));
            }
            txn.encode_update_v1()
        };
        for (j, doc) in docs.iter().enumerate() {
            if j != k {
                let decoded = Update::decode_v1(&update).expect("yrs reads its own update");
                doc.transact_mut()
                    .apply_update(decoded)
                    .expect("and applies it");
            }
        }
        log.push(update);
    }
    log
}

/// A document of about `bytes` bytes encoded (its state as one update), built by one client
/// pasting paragraphs of 256 to 4,095 characters at random places and deleting a few.
pub fn snapshot(bytes: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let doc = doc(7);
    let text = doc.get_or_insert_text("t");
    let mut written = 0usize;
    while written < bytes {
        let mut txn = doc.transact_mut();
        let len = text.len(&txn);
        if len > 1000 && rng.below(8) == 0 {
            let n = 1 + rng.below(200) as u32;
            let at = rng.below((len - n) as u64) as u32;
            text.remove_range(&mut txn, at, n);
        } else {
            let n = 256 + rng.below(3840) as usize;
            let paragraph = words(&mut rng, n);
            written += paragraph.len();
            let at = rng.below(len as u64 + 1) as u32;
            text.insert(&mut txn, at, &paragraph);
        }
    }
    let state = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    debug_assert!(!text.get_string(&doc.transact()).is_empty());
    state
}

/// `state_vector` (encoded v1) with every client's clock scaled by `fraction`: the state of a
/// client that has the start of everyone's edits.
pub fn scaled_state_vector(state_vector: &[u8], fraction: f64) -> Vec<u8> {
    use yrs::updates::encoder::Encode;
    let full = StateVector::decode_v1(state_vector).expect("a state vector");
    let mut scaled = StateVector::default();
    for (client, clock) in full.iter() {
        scaled.set_max(*client, (*clock as f64 * fraction) as u32);
    }
    scaled.encode_v1()
}
