use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::executor::block_on;
use ylambda_shared::adapters::MemoryDocStore;
use ylambda_shared::ports::{DocStore, PieceLimits, PieceOutcome, PieceRefusal};
use ylambda_shared::protocol::pieces::{parse_piece, split_into_pieces, Piece};

/// Most pieces per message in this target.
const MAX_PIECES: u32 = 8;
const LIMITS: PieceLimits = PieceLimits {
    max_text_bytes: 64,
    max_open_messages: 3,
    ttl: Duration::from_secs(3600),
};

/// Lines of text (separated by `\n`), each one frame sent to the embedded doc store's reassembly
/// (`DocStore::put_piece` of `MemoryDocStore`) after `parse_piece`:
/// - `~1:{id}:{index}:{count}:{data}` (or anything else) from connection `a`;
/// - `!` then a frame: the same from connection `b`;
/// - `#` then text: the text cut by `split_into_pieces` into frames of at most 24 bytes, sent
///   last piece first on a connection of its own, which must give back exactly that text.
///
/// Properties: a parsed piece prints back as the frame it came from; every outcome is what a
/// reference model of the port's contract (`ports::DocStore::put_piece`) says, so a message is
/// assembled exactly once, from the first data of each of its pieces, in index order, within
/// the size and open-message limits.
pub fn pieces(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let store = MemoryDocStore::new();
    let mut model = Model::default();
    for (n, line) in text.split('\n').enumerate() {
        if let Some(whole) = line.strip_prefix('#') {
            round_trip(&store, &format!("split{n}"), whole);
            continue;
        }
        let (connection, frame) = match line.strip_prefix('!') {
            Some(frame) => ("b", frame),
            None => ("a", line),
        };
        let Ok(piece) = parse_piece(frame, MAX_PIECES) else {
            continue;
        };
        assert_eq!(piece.to_string(), frame, "a piece prints back as its frame");
        let got = block_on(store.put_piece(connection, &piece, &LIMITS)).expect("memory store");
        let expected = model.put(connection, &piece);
        assert_eq!(
            got, expected,
            "outcome of {frame:?} on connection {connection}"
        );
    }
}

/// A text cut into pieces and sent in reverse order comes back whole, once.
fn round_trip(store: &MemoryDocStore, connection: &str, whole: &str) {
    // Pieces cut text by bytes: keep it ASCII, as base64 is.
    let whole: String = whole.chars().filter(char::is_ascii).collect();
    let Some(frames) = split_into_pieces(&whole, "m", 24) else {
        return;
    };
    assert!(
        frames.iter().all(|f| f.len() <= 24),
        "a piece over 24 bytes"
    );
    if frames.len() == 1 {
        assert_eq!(frames[0], whole, "a text that fits is sent as it is");
        return;
    }
    let limits = PieceLimits {
        max_text_bytes: whole.len(),
        max_open_messages: 1,
        ..LIMITS
    };
    for (i, frame) in frames.iter().rev().enumerate() {
        let piece = parse_piece(frame, u32::MAX).expect("split_into_pieces makes pieces");
        let got = block_on(store.put_piece(connection, &piece, &limits)).expect("memory store");
        if i + 1 < frames.len() {
            assert_eq!(got, PieceOutcome::Waiting, "piece {i} of {}", frames.len());
        } else {
            assert_eq!(got, PieceOutcome::Complete(whole.clone()), "reassembled");
        }
    }
}

/// The contract of `put_piece`, written out plainly.
#[derive(Default)]
struct Model {
    messages: HashMap<(String, String), Message>,
}

enum Message {
    Open {
        count: u32,
        pieces: BTreeMap<u32, String>,
    },
    Done,
}

impl Model {
    fn put(&mut self, connection: &str, piece: &Piece<'_>) -> PieceOutcome {
        let open = self
            .messages
            .iter()
            .filter(|((c, _), m)| c == connection && matches!(m, Message::Open { .. }))
            .count();
        let key = (connection.to_string(), piece.message_id.to_string());
        let Some(message) = self.messages.get_mut(&key) else {
            if open >= LIMITS.max_open_messages {
                return PieceOutcome::Refused(PieceRefusal::TooManyOpen);
            }
            if piece.data.len() > LIMITS.max_text_bytes {
                return PieceOutcome::Refused(PieceRefusal::TooLarge);
            }
            let pieces = BTreeMap::from([(piece.index, piece.data.to_string())]);
            self.messages.insert(
                key,
                Message::Open {
                    count: piece.count,
                    pieces,
                },
            );
            return PieceOutcome::Waiting;
        };
        let Message::Open { count, pieces } = message else {
            return PieceOutcome::Duplicate;
        };
        if *count != piece.count {
            return PieceOutcome::Refused(PieceRefusal::CountMismatch);
        }
        if let Some(stored) = pieces.get(&piece.index) {
            return if stored == piece.data {
                PieceOutcome::Duplicate
            } else {
                PieceOutcome::Refused(PieceRefusal::Overlap)
            };
        }
        let bytes: usize = pieces.values().map(String::len).sum();
        if bytes + piece.data.len() > LIMITS.max_text_bytes {
            return PieceOutcome::Refused(PieceRefusal::TooLarge);
        }
        pieces.insert(piece.index, piece.data.to_string());
        if pieces.len() < *count as usize {
            return PieceOutcome::Waiting;
        }
        let text = pieces.values().map(String::as_str).collect();
        *message = Message::Done;
        PieceOutcome::Complete(text)
    }
}
