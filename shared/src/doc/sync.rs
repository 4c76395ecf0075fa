//! The server's answer to a client's sync step 1, from the room's stored state.
use yrs::updates::decoder::Decode;
use yrs::StateVector;

use super::split::state_vector_v1;
use super::state::{diff, guard, DocError};

/// What a client that sent sync step 1 gets: what it lacks (for sync step 2) and the server's
/// state vector (for the server's own sync step 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncAnswer {
    pub missing: Vec<u8>,
    pub server_state_vector: Vec<u8>,
}

/// Answers a client's sync step 1 from the room's state (one v1 update, as stored).
///
/// A client with nothing (a new tab, the common case) lacks everything: the state goes back as
/// stored, not re-encoded by yrs' diff, which gives an update of the same content and took most of
/// the time on large documents. The stored state passed `validate_update` or was written by yrs'
/// own merge, so it is what every client can read. The server's state vector is read off the
/// update in place ([`state_vector_v1`]), not through yrs' decoder (ARCHITECTURE.md invariant 20:
/// the same numbers, `sync_answer_matches_yrs`).
pub fn answer_sync_step1(
    state: Vec<u8>,
    client_state_vector: &[u8],
) -> Result<SyncAnswer, DocError> {
    let client = guard("read a state vector", || {
        StateVector::decode_v1(client_state_vector)
            .map_err(|e| DocError::InvalidStateVector(e.to_string()))
    })??;
    let server_state_vector =
        state_vector_v1(&state).map_err(|e| DocError::InvalidUpdate(e.to_string()))?;
    let missing = if client.is_empty() {
        state
    } else {
        diff(&state, client_state_vector)?
    };
    Ok(SyncAnswer {
        missing,
        server_state_vector,
    })
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

    fn text_of(updates: &[&[u8]]) -> String {
        let doc = Doc::new();
        for update in updates {
            doc.transact_mut()
                .apply_update(Update::decode_v1(update).unwrap())
                .unwrap();
        }
        let text = doc.get_or_insert_text("t");
        let s = text.get_string(&doc.transact());
        s
    }

    #[test]
    fn sync_answer_matches_yrs() {
        let mut all = edits(1, 40);
        all.extend(edits(2, 25));
        let state = merge(&all).unwrap();
        let yrs_sv =
            |update: &[u8]| StateVector::decode_v1(&state_vector(update).unwrap()).unwrap();

        // A new client gets the state as stored.
        let fresh = answer_sync_step1(state.clone(), &[0]).unwrap();
        assert_eq!(fresh.missing, state);
        assert_eq!(
            StateVector::decode_v1(&fresh.server_state_vector).unwrap(),
            yrs_sv(&state)
        );

        // A client with part of it gets yrs' diff, and with it has everything.
        let half = merge(&all[..20]).unwrap();
        let answer = answer_sync_step1(state.clone(), &state_vector(&half).unwrap()).unwrap();
        assert_eq!(
            answer.missing,
            diff(&state, &state_vector(&half).unwrap()).unwrap()
        );
        assert!(answer.missing.len() < state.len());
        assert_eq!(text_of(&[&half, &answer.missing]), text_of(&[&state]));
        assert_eq!(answer.server_state_vector, fresh.server_state_vector);
    }

    #[test]
    fn bad_input_is_an_error() {
        let state = merge(&edits(3, 5)).unwrap();
        assert!(matches!(
            answer_sync_step1(state, &[0xff]),
            Err(DocError::InvalidStateVector(_))
        ));
        assert!(matches!(
            answer_sync_step1(b"\x05garbage".to_vec(), &[0]),
            Err(DocError::InvalidUpdate(_))
        ));
    }
}
