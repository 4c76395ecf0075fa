//! The server's answer to a client's sync step 1, from the room's stored state.
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use super::split::{
    integrates_whole, split_if_it_integrates_whole, split_update_v1, state_vector_v1, SplitError,
};
use super::state::{diff, guard, DocError};

/// What a client that sent sync step 1 gets: what it lacks (the updates of its sync step 2
/// answers, in order) and the server's state vector (for the server's own sync step 1).
#[derive(Debug)]
pub struct SyncAnswer {
    /// Each at most the piece limit, unless `over_limit` says why not.
    pub pieces: Vec<Vec<u8>>,
    pub server_state_vector: Vec<u8>,
    pub over_limit: Option<OverLimit>,
}

/// Why a piece of a sync answer is over the limit. It is sent as it is: the gateway may refuse
/// it, but the client keeps its own state and the server the document, so nothing is lost.
#[derive(Debug, thiserror::Error)]
pub enum OverLimit {
    /// The update could not be cut (a struct too big for a piece on its own).
    #[error("cannot cut the answer to fit: {0}")]
    Uncut(SplitError),
    /// The state's structs that cannot integrate, which travel in one update (see
    /// [`answer_sync_step1`]).
    #[error("{bytes} bytes of structs that cannot integrate travel whole")]
    PendingWhole { bytes: usize },
}

/// Answers a client's sync step 1 from the room's state (one v1 update, as stored), cut into
/// updates of at most `max_piece_bytes`.
///
/// A client with nothing (a new tab, the common case) lacks everything: the state goes back as
/// stored, not re-encoded by yrs' diff, which gives an update of the same content and took most of
/// the time on large documents. The stored state passed `validate_update` or was written by yrs'
/// own merge, so it is what every client can read. The server's state vector is read off the
/// update in place ([`state_vector_v1`]), not through yrs' decoder (ARCHITECTURE.md invariant 20:
/// the same numbers, `sync_answer_matches_yrs`).
///
/// An answer over the limit is cut ([`split_update_v1`]) when the state integrates whole
/// ([`integrates_whole`]). A state that holds structs yrs keeps pending (only a writer that no
/// Yjs client is can make one) is cut around them instead: yrs integrates the state, what it
/// integrated is cut, and the pending structs follow in one update, as they would arrive in the
/// whole. Cut too, they could make another document than the whole (ARCHITECTURE.md invariant
/// 26, `a_state_with_pending_structs_keeps_them_in_one_piece`).
pub fn answer_sync_step1(
    state: Vec<u8>,
    client_state_vector: &[u8],
    max_piece_bytes: usize,
) -> Result<SyncAnswer, DocError> {
    let client = guard("read a state vector", || {
        StateVector::decode_v1(client_state_vector)
            .map_err(|e| DocError::InvalidStateVector(e.to_string()))
    })??;
    let server_state_vector = state_vector_v1(&state).map_err(invalid)?;
    let missing = if client.is_empty() {
        None
    } else {
        Some(diff(&state, client_state_vector)?)
    };
    let answer = |pieces, over_limit| SyncAnswer {
        pieces,
        server_state_vector: server_state_vector.clone(),
        over_limit,
    };
    if missing.as_ref().map_or(state.len(), Vec::len) <= max_piece_bytes {
        return Ok(answer(vec![missing.unwrap_or(state)], None));
    }
    let uncut = |e| Some(OverLimit::Uncut(e));
    match missing {
        // A new client of a large room (the usual case): one read of the state decides and cuts.
        None => match split_if_it_integrates_whole(&state, max_piece_bytes) {
            Ok(Some(pieces)) => return Ok(answer(pieces, None)),
            Ok(None) => {}
            Err(e) => return Ok(answer(vec![state], uncut(e))),
        },
        Some(missing) => {
            // A state the crate's reader refuses (a snapshot some older version wrote) is cut
            // as before; the cut says what it could not do.
            if integrates_whole(&state).unwrap_or(true) {
                let (pieces, e) = cut_or_keep_whole(missing, max_piece_bytes);
                return Ok(answer(pieces, e.and_then(uncut)));
            }
        }
    }
    let (pieces, over_limit) = cut_around_pending(&state, &client, max_piece_bytes)?;
    Ok(answer(pieces, over_limit))
}

/// The update in pieces of at most `max_piece_bytes`, or whole with the reason it could not be
/// cut (sending it whole may still fail at the gateway, but nothing is lost: the sender keeps its
/// state and the server its document).
pub fn cut_or_keep_whole(
    update: Vec<u8>,
    max_piece_bytes: usize,
) -> (Vec<Vec<u8>>, Option<SplitError>) {
    match split_update_v1(&update, max_piece_bytes) {
        Ok(pieces) => (pieces, None),
        Err(e) => (vec![update], Some(e)),
    }
}

/// What the client lacks of what integrates, cut, then the pending structs and the pending
/// deletions together in one update.
fn cut_around_pending(
    state: &[u8],
    client: &StateVector,
    max_piece_bytes: usize,
) -> Result<(Vec<Vec<u8>>, Option<OverLimit>), DocError> {
    let (integrated, pending) = guard("separate a state's pending structs", || {
        let doc = Doc::new();
        let decoded = Update::decode_v1(state).map_err(invalid)?;
        doc.transact_mut().apply_update(decoded).map_err(invalid)?;
        let txn = doc.transact();
        let integrated = txn.encode_diff_v1(client);
        let store = txn.store();
        let structs = store
            .pending_update()
            .map(|pending| pending.update.encode_v1());
        let deletions = store.pending_ds().map(|deletions| {
            // An update with no structs: a zero client count, then the delete set.
            let mut update = vec![0];
            update.extend(deletions.encode_v1());
            update
        });
        let pending = match (structs, deletions) {
            // Together: a pending map entry that kept its content is deleted by the pending
            // delete set alone, and without it the update would be refused (an item may name
            // the inside of a deleted entry only: split::map_entries; found by afl).
            (Some(structs), Some(deletions)) => {
                vec![
                    yrs::merge_updates_v1([structs.as_slice(), deletions.as_slice()])
                        .map_err(invalid)?,
                ]
            }
            (structs, deletions) => structs.into_iter().chain(deletions).collect(),
        };
        Ok::<_, DocError>((integrated, pending))
    })??;
    let (mut pieces, uncut) = cut_or_keep_whole(integrated, max_piece_bytes);
    let mut over_limit = uncut.map(OverLimit::Uncut);
    for update in pending {
        if update.len() > max_piece_bytes && over_limit.is_none() {
            over_limit = Some(OverLimit::PendingWhole {
                bytes: update.len(),
            });
        }
        pieces.push(update);
    }
    Ok((pieces, over_limit))
}

fn invalid(e: impl std::fmt::Display) -> DocError {
    DocError::InvalidUpdate(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{merge, state_vector};
    use yrs::{Doc, GetString, Text, Transact, Update};

    fn edits(client: u64, n: usize) -> Vec<Vec<u8>> {
        let doc = Doc::with_client_id(client);
        let text = doc.get_or_insert_text("t");
        (0..n)
            .map(|i| {
                let mut txn = doc.transact_mut();
                text.insert(&mut txn, 0, &format!("{i} "));
                txn.encode_update_v1()
            })
            .collect()
    }

    #[test]
    fn sync_answer_matches_yrs() {
        let mut all = edits(1, 40);
        all.extend(edits(2, 25));
        let state = merge(&all).unwrap();
        let yrs_sv =
            |update: &[u8]| StateVector::decode_v1(&state_vector(update).unwrap()).unwrap();

        // A new client gets the state as stored.
        let fresh = answer_sync_step1(state.clone(), &[0], usize::MAX).unwrap();
        assert_eq!(fresh.pieces, std::slice::from_ref(&state));
        assert_eq!(
            StateVector::decode_v1(&fresh.server_state_vector).unwrap(),
            yrs_sv(&state)
        );

        // A client with part of it gets yrs' diff, and with it has everything.
        let half = merge(&all[..20]).unwrap();
        let answer =
            answer_sync_step1(state.clone(), &state_vector(&half).unwrap(), usize::MAX).unwrap();
        let missing = &answer.pieces[0];
        assert_eq!(
            *missing,
            diff(&state, &state_vector(&half).unwrap()).unwrap()
        );
        assert!(missing.len() < state.len());
        assert_eq!(seen(&[&half, missing]).1, seen(&[&state]).1);
        assert_eq!(answer.server_state_vector, fresh.server_state_vector);
    }

    /// A doc's state: the snapshot (what is in and what deleted) and the text.
    fn seen(updates: &[&[u8]]) -> (yrs::Snapshot, String, bool) {
        let doc = Doc::new();
        for update in updates {
            doc.transact_mut()
                .apply_update(Update::decode_v1(update).unwrap())
                .unwrap();
        }
        let text = doc.get_or_insert_text("t");
        let txn = doc.transact();
        (
            txn.snapshot(),
            text.get_string(&txn),
            txn.has_missing_updates(),
        )
    }

    #[test]
    fn a_state_with_pending_structs_keeps_them_in_one_piece() {
        use yrs::updates::encoder::Encode;
        // Client 3's edit reached client 2 (over y-webrtc, say), and client 2's edit after it
        // reached the server, but client 3's did not: the server's state holds client 2's edit
        // pending.
        let base = merge(&edits(1, 40)).unwrap();
        let (b, c) = (Doc::with_client_id(2), Doc::with_client_id(3));
        for doc in [&b, &c] {
            doc.transact_mut()
                .apply_update(Update::decode_v1(&base).unwrap())
                .unwrap();
        }
        let insert = |doc: &Doc, at: u32, what: &str| {
            let text = doc.get_or_insert_text("t");
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, at, what);
            txn.encode_update_v1()
        };
        let from_c = insert(&c, 0, "ccc");
        b.transact_mut()
            .apply_update(Update::decode_v1(&from_c).unwrap())
            .unwrap();
        let from_b = insert(&b, 1, "bbbbbbbbbb");
        let state = merge(&[base.as_slice(), &from_b]).unwrap();

        let max = 64;
        let answer = answer_sync_step1(state.clone(), &[0], max).unwrap();
        assert!(answer.pieces.len() > 2, "{} pieces", answer.pieces.len());
        assert!(answer.over_limit.is_none(), "{:?}", answer.over_limit);
        assert!(answer.pieces.iter().all(|piece| piece.len() <= max));
        // The last piece is client 2's edit, whole.
        let last = Update::decode_v1(answer.pieces.last().unwrap()).unwrap();
        assert_eq!(last.state_vector().get(&yrs::ClientID::new(2)), 10);
        let pieces: Vec<&[u8]> = answer.pieces.iter().map(Vec::as_slice).collect();
        let (whole, in_pieces) = (seen(&[&state]), seen(&pieces));
        assert_eq!(in_pieces, whole);
        assert!(whole.2, "client 2's edit waits for client 3's");
        // Once client 3's edit arrives, both hold client 2's document.
        let mut all = pieces.clone();
        all.push(&from_c);
        let expected = b.get_or_insert_text("t").get_string(&b.transact());
        assert_eq!(seen(&all).1, expected);
        assert_eq!(seen(&[&state, &from_c]).1, expected);
        // A client that has the base gets the rest of the same: nothing, then the pending edit.
        let has_base = StateVector::decode_v1(&state_vector(&base).unwrap()).unwrap();
        let returning = answer_sync_step1(state, &has_base.encode_v1(), max).unwrap();
        let mut after_base: Vec<&[u8]> = vec![&base];
        after_base.extend(returning.pieces.iter().map(Vec::as_slice));
        assert_eq!(seen(&after_base), whole);
    }

    #[test]
    fn bad_input_is_an_error() {
        let state = merge(&edits(3, 5)).unwrap();
        assert!(matches!(
            answer_sync_step1(state, &[0xff], usize::MAX),
            Err(DocError::InvalidStateVector(_))
        ));
        assert!(matches!(
            answer_sync_step1(b"\x05garbage".to_vec(), &[0], usize::MAX),
            Err(DocError::InvalidUpdate(_))
        ));
    }
}
