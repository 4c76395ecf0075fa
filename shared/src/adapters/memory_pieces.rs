//! The in-memory store of messages that arrive in pieces (the embedded doc store's
//! `put_piece`). One lock over all connections: a piece is stored, and its message completed,
//! in one critical section, so exactly one caller completes a message.
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use crate::ports::{PieceLimits, PieceOutcome, PieceRefusal, StoreError, StoreResult};
use crate::protocol::pieces::Piece;

#[derive(Default)]
pub(super) struct MemoryPieces {
    /// Connection id -> message id -> message.
    connections: Mutex<HashMap<String, HashMap<String, Message>>>,
}

enum Message {
    Open {
        count: u32,
        pieces: BTreeMap<u32, String>,
        bytes: usize,
        expires: Instant,
    },
    /// Completed: remembered (without its data) so a late duplicate is not a new message.
    Done { expires: Instant },
}

impl Message {
    fn expires(&self) -> Instant {
        match self {
            Message::Open { expires, .. } | Message::Done { expires } => *expires,
        }
    }
}

impl MemoryPieces {
    pub(super) fn put(
        &self,
        connection_id: &str,
        piece: &Piece<'_>,
        limits: &PieceLimits,
    ) -> StoreResult<PieceOutcome> {
        let mut connections = self
            .connections
            .lock()
            .map_err(|_| StoreError::Backend("piece store lock poisoned".into()))?;
        let now = Instant::now();
        // Expired messages go first, everywhere: memory stays bounded by what is live.
        connections.retain(|_, messages| {
            messages.retain(|_, message| message.expires() > now);
            !messages.is_empty()
        });
        let messages = connections.entry(connection_id.to_string()).or_default();
        let open = messages
            .values()
            .filter(|m| matches!(m, Message::Open { .. }))
            .count();
        let Some(message) = messages.get_mut(piece.message_id) else {
            // A new message: checked before anything is stored, so a refusal leaves no trace.
            if open >= limits.max_open_messages {
                return Ok(PieceOutcome::Refused(PieceRefusal::TooManyOpen));
            }
            if piece.data.len() > limits.max_text_bytes {
                return Ok(PieceOutcome::Refused(PieceRefusal::TooLarge));
            }
            messages.insert(
                piece.message_id.to_string(),
                Message::Open {
                    count: piece.count,
                    pieces: BTreeMap::from([(piece.index, piece.data.to_string())]),
                    bytes: piece.data.len(),
                    expires: now + limits.ttl,
                },
            );
            // A message in pieces has at least two (`parse_piece` checks it).
            return Ok(PieceOutcome::Waiting);
        };
        let Message::Open {
            count,
            pieces,
            bytes,
            ..
        } = message
        else {
            return Ok(PieceOutcome::Duplicate);
        };
        if *count != piece.count {
            return Ok(PieceOutcome::Refused(PieceRefusal::CountMismatch));
        }
        if let Some(stored) = pieces.get(&piece.index) {
            return Ok(if stored == piece.data {
                PieceOutcome::Duplicate
            } else {
                PieceOutcome::Refused(PieceRefusal::Overlap)
            });
        }
        let total = *bytes + piece.data.len();
        if total > limits.max_text_bytes {
            return Ok(PieceOutcome::Refused(PieceRefusal::TooLarge));
        }
        *bytes = total;
        pieces.insert(piece.index, piece.data.to_string());
        if pieces.len() < *count as usize {
            return Ok(PieceOutcome::Waiting);
        }
        let text: String = pieces.values().map(String::as_str).collect();
        *message = Message::Done {
            expires: now + limits.ttl,
        };
        Ok(PieceOutcome::Complete(text))
    }
}
