//! The y-websocket protocol (y-protocols' sync, awareness, auth and query-awareness messages).
//!
//! yrs decodes each message. The outer framing is walked here first (with the crate's lib0
//! reader, [`crate::codec`]), because yrs's `MessageReader` treats a truncated trailing message as
//! the end of the frame and would silently drop it; we want to refuse such a frame as a whole, so
//! that no part of a bad frame is ever applied.
use yrs::sync::awareness::AwarenessUpdate;
use yrs::sync::protocol::{
    MSG_AUTH, MSG_AWARENESS, MSG_QUERY_AWARENESS, MSG_SYNC, MSG_SYNC_STEP_1,
};
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::StateVector;

use crate::codec::{write_var_buf, write_var_uint, CodecError, Reader};
use crate::doc::guard;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("empty frame")]
    Empty,
    #[error("message {index} is truncated at byte {offset}")]
    Truncated { index: usize, offset: usize },
    #[error("message {index} is malformed: {reason}")]
    Malformed { index: usize, reason: String },
}

/// One decoded incoming message.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    SyncStep1(StateVector),
    SyncStep2(Vec<u8>),
    Update(Vec<u8>),
    /// An awareness update: the decoded entries and the encoded update as received.
    Awareness {
        update: AwarenessUpdate,
        encoded: Vec<u8>,
    },
    QueryAwareness,
    /// `Some(reason)` for permission-denied. Clients never send it; it is accepted and ignored.
    Auth(Option<String>),
    /// A message type this server does not know; ignored for forward compatibility.
    Unknown(u8),
}

/// Splits a frame into messages and decodes each one. Fails as a whole if any message is bad.
pub fn decode_messages(frame: &[u8]) -> Result<Vec<Incoming>, ProtocolError> {
    if frame.is_empty() {
        return Err(ProtocolError::Empty);
    }
    let mut out = Vec::new();
    let mut reader = Reader::new(frame);
    while !reader.is_at_end() {
        let index = out.len();
        let start = reader.pos();
        let framing = |error: CodecError| match error {
            CodecError::Truncated { .. } => ProtocolError::Truncated {
                index,
                offset: start,
            },
            CodecError::Invalid { .. } => ProtocolError::Malformed {
                index,
                reason: error.to_string(),
            },
        };
        let tag = reader.read_var_u64("message type").map_err(framing)?;
        match tag {
            t if t == u64::from(MSG_SYNC) => {
                let kind = reader.read_var_u64("sync message type").map_err(framing)?;
                let payload = reader.read_var_buf("sync payload").map_err(framing)?;
                if kind == u64::from(MSG_SYNC_STEP_1) {
                    walk_state_vector(payload).map_err(framing)?;
                }
            }
            t if t == u64::from(MSG_AWARENESS) => {
                let payload = reader.read_var_buf("awareness update").map_err(framing)?;
                walk_awareness_update(payload).map_err(framing)?;
            }
            t if t == u64::from(MSG_AUTH) => {
                let permission = reader.read_var_u64("auth permission").map_err(framing)?;
                if permission == 0 {
                    reader.read_var_buf("auth reason").map_err(framing)?;
                }
            }
            t if t == u64::from(MSG_QUERY_AWARENESS) => {}
            t => {
                // Unknown types follow the convention of a length-prefixed payload.
                reader.read_var_buf("message payload").map_err(framing)?;
                out.push(Incoming::Unknown(u8::try_from(t).unwrap_or(u8::MAX)));
                continue;
            }
        }
        out.push(decode_one(index, reader.since(start))?);
    }
    Ok(out)
}

/// Reads a state vector (a count, then a client id and a clock per entry) before yrs does: yrs
/// reserves room for the count it reads first, so a count its bytes cannot hold is refused here.
/// Accepts whatever yrs accepts (it reads clocks as 32 bits, so a larger one passes this walk
/// and is refused by yrs).
fn walk_state_vector(payload: &[u8]) -> Result<(), CodecError> {
    let mut reader = Reader::new(payload);
    // Two var-ints of at least one byte each.
    let entries = reader.read_count(2, "state vector entries")?;
    for _ in 0..entries {
        reader.read_var_u64("state vector client")?;
        reader.read_var_u64("state vector clock")?;
    }
    Ok(())
}

/// Reads an awareness update (a count, then a client id, a clock and a JSON string per entry)
/// before yrs does, for the same reason as [`walk_state_vector`].
fn walk_awareness_update(payload: &[u8]) -> Result<(), CodecError> {
    let mut reader = Reader::new(payload);
    // Two var-ints and a length of at least one byte each.
    let entries = reader.read_count(3, "awareness entries")?;
    for _ in 0..entries {
        reader.read_var_u64("awareness client")?;
        reader.read_var_u64("awareness clock")?;
        reader.read_var_buf("awareness state")?;
    }
    Ok(())
}

fn decode_one(index: usize, bytes: &[u8]) -> Result<Incoming, ProtocolError> {
    let malformed = |reason: String| ProtocolError::Malformed { index, reason };
    let message = guard("decode y-websocket message", || Message::decode_v1(bytes))
        .map_err(|e| malformed(e.to_string()))?
        .map_err(|e| malformed(e.to_string()))?;
    Ok(match message {
        Message::Sync(SyncMessage::SyncStep1(sv)) => Incoming::SyncStep1(sv),
        Message::Sync(SyncMessage::SyncStep2(u)) => Incoming::SyncStep2(u),
        Message::Sync(SyncMessage::Update(u)) => Incoming::Update(u),
        Message::Awareness(update) => {
            let encoded = update.encode_v1();
            Incoming::Awareness { update, encoded }
        }
        Message::AwarenessQuery => Incoming::QueryAwareness,
        Message::Auth(reason) => Incoming::Auth(reason),
        Message::Custom(tag, _) => Incoming::Unknown(tag),
    })
}

pub fn encode_sync_step1(state_vector: &[u8]) -> Vec<u8> {
    // The state vector is already encoded: write the frame directly instead of decoding it again.
    let mut out = vec![MSG_SYNC, yrs::sync::protocol::MSG_SYNC_STEP_1];
    write_var_buf(&mut out, state_vector);
    out
}

pub fn encode_sync_step2(update: &[u8]) -> Vec<u8> {
    let mut out = vec![MSG_SYNC, yrs::sync::protocol::MSG_SYNC_STEP_2];
    write_var_buf(&mut out, update);
    out
}

pub fn encode_update(update: &[u8]) -> Vec<u8> {
    let mut out = vec![MSG_SYNC, yrs::sync::protocol::MSG_SYNC_UPDATE];
    write_var_buf(&mut out, update);
    out
}

/// An awareness message from an encoded awareness update.
pub fn encode_awareness(encoded_update: &[u8]) -> Vec<u8> {
    let mut out = vec![MSG_AWARENESS];
    write_var_buf(&mut out, encoded_update);
    out
}

/// An auth permission-denied message (y-protocols/auth).
pub fn encode_permission_denied(reason: &str) -> Vec<u8> {
    Message::Auth(Some(reason.to_string())).encode_v1()
}

/// One client's entry in an awareness update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwarenessState {
    pub client: u64,
    pub clock: u32,
    /// The state as JSON text; `null` means the client is gone.
    pub json: String,
}

impl AwarenessState {
    pub fn is_removal(&self) -> bool {
        self.json == "null"
    }
}

/// The entries of a decoded awareness update, in a stable order.
pub fn awareness_states(update: &AwarenessUpdate) -> Vec<AwarenessState> {
    let mut states: Vec<AwarenessState> = update
        .clients
        .iter()
        .map(|(id, entry)| AwarenessState {
            client: id.get(),
            clock: entry.clock,
            json: entry.json.to_string(),
        })
        .collect();
    states.sort_by_key(|s| s.client);
    states
}

/// Encodes an awareness update (y-protocols `encodeAwarenessUpdate` layout).
pub fn encode_awareness_update(states: &[AwarenessState]) -> Vec<u8> {
    let mut update = Vec::new();
    write_var_uint(&mut update, states.len() as u64);
    for state in states {
        write_var_uint(&mut update, state.client);
        write_var_uint(&mut update, u64::from(state.clock));
        write_var_buf(&mut update, state.json.as_bytes());
    }
    update
}

/// The awareness update that tells peers these clients are gone: their last clock with a `null`
/// state, which y-protocols applies as a removal (as the reference server broadcasts it).
pub fn encode_awareness_removal(clients: &[(u64, u32)]) -> Vec<u8> {
    let states: Vec<AwarenessState> = clients
        .iter()
        .map(|(client, clock)| AwarenessState {
            client: *client,
            clock: *clock,
            json: "null".into(),
        })
        .collect();
    encode_awareness(&encode_awareness_update(&states))
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Doc, GetString, ReadTxn, Text, Transact, Update};

    fn doc_with(text: &str, client: u64) -> Doc {
        let doc = Doc::with_client_id(client);
        let t = doc.get_or_insert_text("t");
        t.insert(&mut doc.transact_mut(), 0, text);
        doc
    }

    #[test]
    fn encodes_what_yrs_decodes() {
        let doc = doc_with("hello", 7);
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let sv = doc.transact().state_vector().encode_v1();
        let frames = [
            encode_sync_step1(&sv),
            encode_sync_step2(&update),
            encode_update(&update),
        ];
        let decoded: Vec<_> = frames
            .iter()
            .map(|f| decode_messages(f).unwrap().remove(0))
            .collect();
        assert_eq!(
            decoded[0],
            Incoming::SyncStep1(StateVector::decode_v1(&sv).unwrap())
        );
        assert_eq!(decoded[1], Incoming::SyncStep2(update.clone()));
        assert_eq!(decoded[2], Incoming::Update(update.clone()));
        let applied = Doc::new();
        applied
            .transact_mut()
            .apply_update(Update::decode_v1(&update).unwrap())
            .unwrap();
        let t = applied.get_or_insert_text("t");
        assert_eq!(t.get_string(&applied.transact()), "hello");
    }

    #[test]
    fn several_messages_per_frame() {
        let mut frame = encode_sync_step1(&StateVector::default().encode_v1());
        frame.push(MSG_QUERY_AWARENESS);
        frame.extend(encode_awareness_removal(&[(5, 3)]));
        let messages = decode_messages(&frame).unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1], Incoming::QueryAwareness);
        match &messages[2] {
            Incoming::Awareness { update, .. } => {
                let entry = update.clients.values().next().unwrap();
                assert_eq!(entry.clock, 3);
                assert_eq!(&*entry.json, "null");
            }
            other => panic!("expected awareness, got {other:?}"),
        }
    }

    #[test]
    fn unknown_types_are_skipped_not_fatal() {
        let mut frame = vec![42, 2, 0xaa, 0xbb];
        frame.push(MSG_QUERY_AWARENESS);
        assert_eq!(
            decode_messages(&frame).unwrap(),
            vec![Incoming::Unknown(42), Incoming::QueryAwareness]
        );
    }

    #[test]
    fn truncation_anywhere_rejects_the_frame() {
        let doc = doc_with("truncate me", 9);
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let mut frame = encode_update(&update);
        frame.push(MSG_QUERY_AWARENESS);
        for cut in 1..frame.len() - 1 {
            assert!(
                decode_messages(&frame[..cut]).is_err(),
                "prefix of {cut} bytes was accepted"
            );
        }
        assert!(decode_messages(&[]).is_err());
        // A varint that never ends.
        assert!(decode_messages(&[0x80; 20]).is_err());
    }

    /// Found by afl: yrs reserves room for the entry count of a state vector or an awareness
    /// update before reading any entry, so a sync step 1 of 7 bytes made it allocate ~500 MB
    /// (a Lambda of 256 MB dies of it). The count is checked against the bytes first.
    #[test]
    fn a_count_its_bytes_cannot_hold_is_refused_before_yrs_reads_it() {
        let bomb = [0x9f, 0x98, 0x80, 0x7a];
        let sync_step1 = [&[MSG_SYNC, MSG_SYNC_STEP_1, 4][..], &bomb].concat();
        let awareness = [&[MSG_AWARENESS, 4][..], &bomb].concat();
        for frame in [sync_step1, awareness] {
            // Refused by this module's walk (Truncated), not by yrs' decoder (Malformed).
            assert_eq!(
                decode_messages(&frame),
                Err(ProtocolError::Truncated {
                    index: 0,
                    offset: 0
                }),
                "{frame:?}"
            );
        }
        // Real messages of both kinds still decode (`encodes_what_yrs_decodes` has more).
        let sv = doc_with("x", 3).transact().state_vector().encode_v1();
        assert!(decode_messages(&encode_sync_step1(&sv)).is_ok());
        let states = [AwarenessState {
            client: 3,
            clock: 1,
            json: r#"{"user":"a"}"#.into(),
        }];
        assert!(decode_messages(&encode_awareness(&encode_awareness_update(&states))).is_ok());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545F4914F6CDD1Du64;
        for len in 0..400usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = decode_messages(&bytes);
        }
    }
}
