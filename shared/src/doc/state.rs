//! Merging, diffing and validating Yjs updates (v1 encoding) with yrs.
use std::panic::{catch_unwind, AssertUnwindSafe};

use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

/// Above this many updates, merge through a transient `Doc`: `merge_updates_v1` over thousands of
/// small updates is slow (measured with yrs 0.28.1: 3.2 s vs ~0.1 s for 20,000 updates).
const MERGE_THROUGH_DOC_ABOVE: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocError {
    #[error("invalid update: {0}")]
    InvalidUpdate(String),
    #[error("invalid state vector: {0}")]
    InvalidStateVector(String),
    /// yrs panicked on this input. We never let that reach the network path.
    #[error("yrs failed while trying to {0}")]
    Panicked(String),
}

/// Runs yrs code on untrusted bytes, turning a panic into an error: one bad update must not take
/// the server down (ARCHITECTURE.md invariant 4). yrs debug-asserts on client ids over 53 bits, for one.
pub fn guard<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, DocError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| DocError::Panicked(what.to_string()))
}

/// What validation learned about an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validated {
    /// Carries inserts or deletes: store it.
    Content,
    /// Carries nothing (a sync step 2 from a client that had nothing new): skip it.
    Empty,
}

/// Decodes an update and integrates it into a throwaway document, so that an update yrs cannot
/// apply is refused before it is stored and fails nobody later.
///
/// It must also survive yrs' update-level re-encoding (`diff_updates_v1`, which answers every
/// sync step 1, and `merge_updates_v1`, which compaction uses) as bytes yrs can decode: yrs
/// 0.28.1 applies some updates (found by fuzzing, `fuzz/tests/regressions.rs`) that this
/// re-encoding turns into undecodable bytes, which would then go to every client of the room.
/// And its items must name only structs a real document could hold
/// ([`super::split::check_references`]): yrs keeps the others pending without a look. The
/// document it makes must pass the same two checks on yrs' encoding of it.
pub fn validate_update(update: &[u8]) -> Result<Validated, DocError> {
    guard("validate an update", || {
        let invalid = |e: &dyn std::fmt::Display| DocError::InvalidUpdate(e.to_string());
        // The update as sent, read by our own strict reader before yrs reads it at all: yrs
        // reserves room for the counts it reads first (14 bytes made it allocate ~500 MB, found
        // by fuzzing), and some inputs (an item of length 0) make it corrupt its own memory
        // while integrating them, which no panic guard catches.
        super::split::check_references(update).map_err(|e| invalid(&e))?;
        let decoded = Update::decode_v1(update).map_err(|e| invalid(&e))?;
        if decoded.is_empty() {
            return Ok(Validated::Empty);
        }
        let doc = Doc::new();
        doc.transact_mut()
            .apply_update(decoded)
            .map_err(|e| invalid(&e))?;
        // What yrs writes back must decode, and its items must name only what a document could
        // hold (yrs keeps the others pending, unchecked, and they split into pieces that do not
        // add up to the whole).
        let sound = |written: &[u8], what: &str| {
            Update::decode_v1(written).map_err(|e| {
                DocError::InvalidUpdate(format!("yrs cannot read its own {what} of it: {e}"))
            })?;
            super::split::check_references(written).map_err(|e| invalid(&e))
        };
        // First yrs' update-level re-encoding (what the server diffs, merges and cuts later)...
        let reencoded =
            yrs::diff_updates_v1(update, &EMPTY_STATE_VECTOR).map_err(|e| invalid(&e))?;
        sound(&reencoded, "re-encoding")?;
        // ...then the document's own encoding (what merging many updates through a `Doc` gives):
        // yrs writes some accepted updates back as bytes it cannot read, or with an item naming
        // itself (found by fuzzing). In this order: encoding some inputs the first check refuses
        // panics in yrs.
        let state = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        sound(&state, "encoding")?;
        Ok(Validated::Content)
    })?
}

/// The v1 encoding of the state vector of an empty document.
const EMPTY_STATE_VECTOR: [u8; 1] = [0];

/// Merges updates into one. Overlap is harmless (merging is idempotent).
pub fn merge<B: AsRef<[u8]>>(updates: &[B]) -> Result<Vec<u8>, DocError> {
    match updates.len() {
        0 => Ok(empty_update()),
        1 => Ok(updates[0].as_ref().to_vec()),
        n if n <= MERGE_THROUGH_DOC_ABOVE => merge_update_level(updates),
        _ => merge_through_doc(updates).or_else(|e| {
            // Integration is where yrs trips on strange but valid input (a debug build's length
            // bookkeeping overflows on some item orders Yjs takes, found by fuzzing); the
            // update-level merge does not integrate, so the room's state can still be read.
            tracing::warn!(error = %e, "merging through a document failed: merged update by update");
            merge_update_level(updates)
        }),
    }
}

/// A room's state, merged from its updates as the server sends and stores it.
#[derive(Debug)]
pub struct MergedRoom {
    pub state: Vec<u8>,
    /// Items merged as GC ([`merge_room`]): their parent is not a type, or they name the inside
    /// of a live map entry.
    pub gc_items: usize,
    /// Why the updates were merged without that check: one of them is an update the crate's
    /// reader refuses (a snapshot some older version wrote, say; every log entry passed it).
    pub unchecked: Option<String>,
}

/// Merges a room's snapshot and log into its state. Each update was validated alone; together,
/// one may name as parent an item of another that is not a type, which yrs refuses or panics on:
/// such items become GC first, as Yjs integrates them (ARCHITECTURE.md invariant 22,
/// [`super::split::gc_items_under_non_types`]). Then an item of the merged state that names the
/// inside of a live map entry, which two updates can make though neither holds one, becomes GC
/// too (invariant 27, [`super::split::gc_items_naming_live_entries`]).
///
/// Takes the updates by value: a room with nothing in its log (the common case for a document
/// at rest) is its snapshot as stored, returned without a copy (10 MB copied was ~10% of the
/// sync answer to a fresh client, benches/MICROBENCHMARKS.md).
pub fn merge_room(
    snapshot: Option<Vec<u8>>,
    mut log: Vec<Vec<u8>>,
) -> Result<MergedRoom, DocError> {
    let as_is = |state| MergedRoom {
        state,
        gc_items: 0,
        unchecked: None,
    };
    let snapshot = match (snapshot, log.len()) {
        (snapshot, 0) => return Ok(as_is(snapshot.unwrap_or_else(empty_update))),
        (None, 1) => return Ok(as_is(log.pop().unwrap_or_else(empty_update))),
        (snapshot, _) => snapshot,
    };
    let snapshot = snapshot.as_deref();
    let checked = super::split::gc_items_under_non_types(snapshot, &log);
    let (base, to_merge, gc_items, unchecked): (Option<&[u8]>, Vec<&[u8]>, _, _) = match &checked {
        Ok(checked) => (
            checked.base.as_deref(),
            checked.log.iter().map(AsRef::as_ref).collect(),
            checked.replaced,
            None,
        ),
        // Merging it as before beats refusing the room.
        Err(e) => (
            snapshot,
            log.iter().map(Vec::as_slice).collect(),
            0,
            Some(e.to_string()),
        ),
    };
    let state = merge_onto(base, &to_merge)?;
    // The entry and the item naming its inside may come in different updates, each valid alone.
    // A room whose updates hold no map key (text alone) has no entry: the state is not read.
    let map_keys = checked.as_ref().ok().and_then(|checked| checked.map_keys);
    let (state, named_inside, unchecked) = match map_keys {
        Some(false) => (state, 0, unchecked),
        _ => match super::split::gc_items_naming_live_entries(&state) {
            Ok(Some((state, count))) => (state, count, unchecked),
            Ok(None) => (state, 0, unchecked),
            Err(e) => (state, 0, unchecked.or_else(|| Some(e.to_string()))),
        },
    };
    Ok(MergedRoom {
        state,
        gc_items: gc_items + named_inside,
        unchecked,
    })
}

fn merge_onto(snapshot: Option<&[u8]>, log: &[&[u8]]) -> Result<Vec<u8>, DocError> {
    let all: Vec<&[u8]> = snapshot.into_iter().chain(log.iter().copied()).collect();
    merge(&all)
}

fn merge_update_level<B: AsRef<[u8]>>(updates: &[B]) -> Result<Vec<u8>, DocError> {
    guard("merge updates", || {
        yrs::merge_updates_v1(updates.iter().map(AsRef::as_ref))
            .map_err(|e| DocError::InvalidUpdate(e.to_string()))
    })?
}

fn merge_through_doc<B: AsRef<[u8]>>(updates: &[B]) -> Result<Vec<u8>, DocError> {
    guard("merge updates through a document", || {
        let doc = Doc::new();
        {
            let mut txn = doc.transact_mut();
            for update in updates {
                let decoded = Update::decode_v1(update.as_ref())
                    .map_err(|e| DocError::InvalidUpdate(e.to_string()))?;
                txn.apply_update(decoded)
                    .map_err(|e| DocError::InvalidUpdate(e.to_string()))?;
            }
        }
        // Includes updates still pending on missing dependencies, so nothing is dropped.
        let merged = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        Ok(merged)
    })?
}

/// What `update` holds that a peer with `state_vector` (encoded v1) lacks.
pub fn diff(update: &[u8], state_vector: &[u8]) -> Result<Vec<u8>, DocError> {
    guard("diff an update", || {
        yrs::diff_updates_v1(update, state_vector)
            .map_err(|e| DocError::InvalidUpdate(e.to_string()))
    })?
}

/// The state vector (encoded v1) of an update.
pub fn state_vector(update: &[u8]) -> Result<Vec<u8>, DocError> {
    guard("read a state vector", || {
        yrs::encode_state_vector_from_update_v1(update)
            .map_err(|e| DocError::InvalidUpdate(e.to_string()))
    })?
}

/// The v1 encoding of an update with no structs and no deletes.
pub fn empty_update() -> Vec<u8> {
    vec![0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::encoder::Encode;
    use yrs::{GetString, Text};

    fn edits(client: u64, n: usize) -> Vec<Vec<u8>> {
        let doc = Doc::with_client_id(client);
        let text = doc.get_or_insert_text("t");
        (0..n)
            .map(|i| {
                let mut txn = doc.transact_mut();
                let len = text.len(&txn);
                text.insert(&mut txn, len, &format!("{}", i % 10));
                txn.encode_update_v1()
            })
            .collect()
    }

    fn text_of(update: &[u8]) -> String {
        let doc = Doc::new();
        doc.transact_mut()
            .apply_update(Update::decode_v1(update).unwrap())
            .unwrap();
        let t = doc.get_or_insert_text("t");
        let s = t.get_string(&doc.transact());
        s
    }

    #[test]
    fn both_merge_paths_agree() {
        let few = edits(1, 10);
        let many = edits(2, 500);
        assert_eq!(text_of(&merge(&few).unwrap()), "0123456789");
        let merged = merge(&many).unwrap();
        assert_eq!(text_of(&merged).len(), 500);
        let via_yrs = yrs::merge_updates_v1(many.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(text_of(&merged), text_of(&via_yrs));
    }

    #[test]
    fn merge_is_idempotent_on_overlap() {
        let updates = edits(3, 20);
        let once = merge(&updates).unwrap();
        let twice = merge(&[once.clone(), once.clone(), updates[5].clone()]).unwrap();
        assert_eq!(text_of(&once), text_of(&twice));
    }

    #[test]
    fn merge_through_doc_keeps_updates_with_missing_dependencies() {
        let mut updates = edits(4, 200);
        let first = updates.remove(0); // everything else now depends on a missing update
        let merged = merge(&updates).unwrap();
        assert_eq!(text_of(&merge(&[merged, first]).unwrap()).len(), 200);
    }

    /// A room state the on_message fuzz target made from updates each valid alone: Format items
    /// with crossing origins, then a delete set over them. Yjs and a release build of yrs 0.28.1
    /// apply it; in a debug build yrs' length bookkeeping overflows (a panic) while deleting.
    const INTEGRATION_TRIPS_YRS: &str = "01050100040101740568656c6c6f840102026c6f8401040c2077c3b6726c6420f09f988046010004626f6c640474727565c6010e010504626f6c64046e756c6c0101010122";

    #[test]
    fn a_merge_yrs_cannot_integrate_is_done_update_by_update() {
        let tricky: Vec<u8> = (0..INTEGRATION_TRIPS_YRS.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&INTEGRATION_TRIPS_YRS[i..i + 2], 16).unwrap())
            .collect();
        let mut updates = vec![tricky];
        updates.extend(edits(9, MERGE_THROUGH_DOC_ABOVE)); // past the limit: through a `Doc`
        let merged = merge(&updates).expect("the room's state can be read");
        let expected = yrs::merge_updates_v1(updates.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(
            StateVector::decode_v1(&state_vector(&merged).unwrap()).unwrap(),
            StateVector::decode_v1(&state_vector(&expected).unwrap()).unwrap()
        );
    }

    #[test]
    fn diff_sends_only_what_is_missing() {
        let updates = edits(5, 30);
        let all = merge(&updates).unwrap();
        let half = merge(&updates[..15]).unwrap();
        let missing = diff(&all, &state_vector(&half).unwrap()).unwrap();
        assert!(missing.len() < all.len());
        assert_eq!(text_of(&merge(&[half, missing]).unwrap()).len(), 30);
        let sv_all = state_vector(&all).unwrap();
        // Nothing is missing from a peer that has everything.
        let nothing = diff(&all, &sv_all).unwrap();
        assert_eq!(text_of(&merge(&[all.clone(), nothing]).unwrap()).len(), 30);
        assert_eq!(StateVector::decode_v1(&sv_all).unwrap().encode_v1(), sv_all);
    }

    #[test]
    fn validation_refuses_bad_updates() {
        assert_eq!(validate_update(&edits(6, 1)[0]), Ok(Validated::Content));
        assert_eq!(validate_update(&empty_update()), Ok(Validated::Empty));
        assert!(validate_update(&[0xff, 0xff, 0xff]).is_err());
        assert!(validate_update(b"hello world").is_err());
        let good = &edits(7, 1)[0];
        for cut in 1..good.len() {
            assert!(
                validate_update(&good[..cut]).is_err(),
                "prefix {cut} accepted"
            );
        }
        assert!(diff(&edits(8, 1)[0], &[0xff]).is_err());
        assert!(state_vector(b"\x05").is_err());
    }
}
