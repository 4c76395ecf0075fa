use ylambda_shared::doc::split::{split_update_v1, SplitError};
use ylambda_shared::doc::{
    answer_sync_step1, diff, merge, state_vector, validate_update, OverLimit,
};
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, Snapshot, StateVector, Transact, Update};

/// `[max piece size knob] [update v1 bytes]`: a Yjs update as a client sends it, through
/// `validate_update` and the splitter (`split_update_v1`, with a piece limit of 16 + knob
/// bytes), then, once accepted, `state_vector`, `diff` and `merge`.
///
/// The raw update only has to be refused or accepted without a panic. When yrs accepts it, the
/// document it makes, encoded by yrs (what the server merges and cuts for a sync step 2), must
/// be cut as the server answers a new client (`answer_sync_step1`; or be `Indivisible`), into
/// pieces within the limit (but for structs that cannot integrate, which travel whole) that each
/// validate and, applied to a fresh document in order, give the same state.
pub fn update(data: &[u8]) {
    let Some((&knob, update)) = data.split_first() else {
        return;
    };
    let max = 16 + usize::from(knob);
    let validated = validate_update(update);
    let _ = split_update_v1(update, max);
    if validated.is_err() {
        return;
    }
    // The server reads state vectors, diffs and merges only of stored updates, which passed
    // `validate_update`; on raw bytes yrs' decoder reserves room for whatever count it reads
    // first (14 bytes: ~500 MB and a quarter of a second), which `validate_update` now refuses
    // before yrs sees them.
    let _ = state_vector(update);
    let _ = diff(update, &[0]);
    let _ = diff(update, &[1, 1, 0]);
    let _ = merge(&[update, update]);
    let Some(canonical) = encoded_state(&[update]) else {
        return;
    };
    if canonical.len() > 16 * max {
        // Many pieces, each checked on a document of its own: slow, and no new kind of cut.
        return;
    }
    // Cut as the server cuts a sync step 2 answer for a new client.
    let answer = answer_sync_step1(canonical.clone(), &[0], max)
        .expect("the server answers from yrs' own encoding of an accepted update");
    match &answer.over_limit {
        None | Some(OverLimit::PendingWhole { .. }) => {}
        Some(OverLimit::Uncut(SplitError::Indivisible { .. })) => return,
        Some(OverLimit::Uncut(e)) => {
            panic!("yrs' own encoding of an accepted update does not split: {e}")
        }
    }
    let pieces = answer.pieces;
    for piece in &pieces {
        // Only the pending structs (and deletions) may travel whole, over the limit.
        assert!(
            piece.len() <= max || answer.over_limit.is_some(),
            "a {}-byte piece over the {max}-byte limit",
            piece.len()
        );
        validate_update(piece).expect("every piece validates");
    }
    let rebuilt = encoded_state(&pieces).expect("the pieces apply");
    // Compared by content (what was inserted and what deleted), not by bytes: yrs keeps items
    // that arrive in separate updates apart, so the encodings differ in item layout.
    assert_eq!(
        snapshot(&rebuilt),
        snapshot(&canonical),
        "the pieces rebuild the document"
    );
}

/// What a document made of `update` holds: its state vector and delete set.
fn snapshot(update: &[u8]) -> Option<Snapshot> {
    ylambda_shared::doc::guard("fuzz: snapshot a document", || {
        let doc = Doc::new();
        let decoded = Update::decode_v1(update).ok()?;
        doc.transact_mut().apply_update(decoded).ok()?;
        let snapshot = doc.transact().snapshot();
        Some(snapshot)
    })
    .ok()
    .flatten()
}

/// The state of a document after applying `updates`, as yrs encodes it; `None` if yrs refuses one
/// (or panics: the guarded API already said whether that is acceptable).
fn encoded_state<B: AsRef<[u8]>>(updates: &[B]) -> Option<Vec<u8>> {
    ylambda_shared::doc::guard("fuzz: rebuild a document", || {
        let doc = Doc::new();
        for update in updates {
            let decoded = Update::decode_v1(update.as_ref()).ok()?;
            doc.transact_mut().apply_update(decoded).ok()?;
        }
        let state = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        Some(state)
    })
    .ok()
    .flatten()
}
