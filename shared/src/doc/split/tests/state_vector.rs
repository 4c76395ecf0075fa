//! `state_vector_v1` reads the same state vector off an update as yrs' decoder does.
use yrs::block::{BLOCK_GC_REF_NUMBER, BLOCK_SKIP_REF_NUMBER};

use super::documents::large_document;
use super::rich_document;
use super::*;
use crate::doc::split::state_vector_v1;

fn assert_same_as_yrs(update: &[u8]) {
    let ours = StateVector::decode_v1(&state_vector_v1(update).expect("reads")).expect("decodes");
    let yrs = StateVector::decode_v1(
        &yrs::encode_state_vector_from_update_v1(update).expect("yrs reads"),
    )
    .expect("decodes");
    assert_eq!(ours, yrs);
}

#[test]
fn documents_and_their_pieces() {
    let mut updates = vec![rich_document(true), rich_document(false), large_document()];
    // Pieces start past clock 0 and hold parts of items: their state vectors leave clients out.
    let pieces = split_update_v1(&updates[2], 4096).expect("split");
    assert!(pieces.len() > 10);
    updates.extend(pieces);
    for update in &updates {
        assert_same_as_yrs(update);
    }
}

#[test]
fn a_gap_stops_the_count() {
    let doc = new_doc(3);
    let text = doc.get_or_insert_text("text");
    let mut updates = Vec::new();
    for chunk in ["first 😀 ", "second ", "third ünï "] {
        let before = doc.transact().state_vector();
        text.push(&mut doc.transact_mut(), chunk);
        updates.push(doc.transact().encode_state_as_update_v1(&before));
    }
    // Updates 1 and 3 merged: a Skip where update 2 belongs.
    let merged = yrs::merge_updates_v1([&updates[0][..], &updates[2][..]]).expect("merge");
    assert_same_as_yrs(&merged);
    assert_eq!(
        StateVector::decode_v1(&state_vector_v1(&merged).unwrap())
            .unwrap()
            .get(&yrs::ClientID::new(3)),
        "first 😀 ".encode_utf16().count() as u32
    );
    // Update 3 alone starts past 0: its client counts nothing.
    assert_same_as_yrs(&updates[2]);
    assert_eq!(state_vector_v1(&updates[2]).unwrap(), vec![0]);
}

#[test]
fn hand_made_layouts() {
    let gc = BLOCK_GC_REF_NUMBER;
    let skip = BLOCK_SKIP_REF_NUMBER;
    let cases: [&[u8]; 5] = [
        // One client in two sections, the second continuing after a gap yrs does not see.
        &[2, 1, 1, 0, gc, 2, 1, 1, 5, gc, 1, 0],
        // The same client, the first section starting past 0.
        &[3, 1, 1, 5, gc, 2, 1, 1, 0, gc, 1, 1, 1, 2, gc, 1, 0],
        // Skips only, and a Skip between two GCs.
        &[1, 2, 1, 0, skip, 5, skip, 3, 0],
        &[1, 3, 7, 0, gc, 2, skip, 3, gc, 1, 0],
        // Nothing at all.
        &[0, 0],
    ];
    for update in cases {
        assert_same_as_yrs(update);
    }
}

#[test]
fn cut_updates_read_as_yrs_reads_them_or_are_refused() {
    let good = rich_document(true);
    for cut in 0..good.len() {
        let prefix = &good[..cut];
        let ours = state_vector_v1(prefix);
        // yrs also reads the delete set, which this module skips: where yrs reads a prefix,
        // this module reads the same numbers.
        if let Ok(theirs) = yrs::encode_state_vector_from_update_v1(prefix) {
            let ours = ours.unwrap_or_else(|e| panic!("prefix {cut} refused: {e}"));
            assert_eq!(
                StateVector::decode_v1(&ours).unwrap(),
                StateVector::decode_v1(&theirs).unwrap()
            );
        }
    }
    assert!(state_vector_v1(&[]).is_err());
    assert!(state_vector_v1(&[1, 1, 1, 0, BLOCK_GC_REF_NUMBER]).is_err());
}
