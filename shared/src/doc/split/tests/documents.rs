//! Splitting real documents built with yrs.
use std::collections::HashMap;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use yrs::{Any, Array, Doc, Map, ReadTxn, Text, Transact};

use super::*;
use crate::doc::split::{split_update_v1, SplitError};

#[test]
fn an_update_that_fits_is_returned_unchanged() {
    let update = rich_document(true);
    let pieces = split_update_v1(&update, update.len()).expect("split");
    assert_eq!(pieces, vec![update.clone()]);
    // Not even parsed: the caller gets exactly what it gave.
    assert_eq!(
        split_update_v1(&[1, 2, 3], 3).expect("split"),
        vec![vec![1, 2, 3]]
    );
}

#[test]
fn a_rich_document_is_rebuilt_from_its_pieces_in_any_order() {
    for gc in [true, false] {
        let update = rich_document(gc);
        assert!(update.len() > 1000, "{} bytes", update.len());
        for max in [64, 100, 200, 1000] {
            let pieces = split_and_check(&update, max);
            assert!(pieces.len() > 1, "{max}: {} piece(s)", pieces.len());
        }
    }
}

#[test]
fn every_small_limit_gives_valid_pieces() {
    // Walks the cut points across every kind of struct of the document.
    let update = rich_document(true);
    // Its largest struct that cannot be cut (a formatting mark with two origins of 53-bit
    // clients) needs a 61-byte piece.
    assert!(matches!(
        split_update_v1(&update, 60),
        Err(SplitError::Indivisible { size: 61, max: 60 })
    ));
    for max in 61..=160 {
        split_and_check(&update, max);
    }
    let without_gc = rich_document(false);
    for max in 61..=160 {
        split_and_check(&without_gc, max);
    }
}

#[test]
fn a_long_string_is_cut_on_char_boundaries() {
    let doc = new_doc(5);
    let text = doc.get_or_insert_text("text");
    let long: String = (0..400)
        .map(|i| ["a", "é", "你", "😀", "𝄞", "z"][i % 6])
        .collect();
    {
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, "start ");
        // One item in the middle: its parts have both origins.
        text.insert(&mut txn, 3, &long);
    }
    let update = full_state(&doc);
    for max in [30, 31, 32, 33, 47, 64, 200, 1000] {
        let pieces = split_and_check(&update, max);
        let expected = update.len() / max;
        assert!(pieces.len() >= expected, "{max}: {} pieces", pieces.len());
    }
}

#[test]
fn a_string_item_without_origins_is_cut() {
    // The first item of a root type has no origins: its first part carries the parent name,
    // the others do not.
    let doc = new_doc(6);
    let text = doc.get_or_insert_text("text");
    let long = "😀 ünïcode ✓ ".repeat(200);
    text.insert(&mut doc.transact_mut(), 0, &long);
    let update = full_state(&doc);
    let pieces = split_and_check(&update, 100);
    assert!(pieces.len() >= update.len() / 100);
}

#[test]
fn a_long_any_item_is_cut_between_elements() {
    let doc = new_doc(8);
    let array = doc.get_or_insert_array("array");
    {
        let mut txn = doc.transact_mut();
        let values = (0..2000).map(|i| match i % 5 {
            0 => Any::from(i),
            1 => Any::from(format!("value {i} 😀")),
            2 => Any::from(vec![
                Any::from(i),
                Any::from(HashMap::from([("k".to_string(), Any::Null)])),
            ]),
            3 => Any::from(i as f64 + 0.5),
            _ => Any::Bool(i % 2 == 0),
        });
        array.insert_range(&mut txn, 0, values);
    }
    let update = full_state(&doc);
    for max in [64, 500, 4096] {
        let pieces = split_and_check(&update, max);
        assert!(pieces.len() >= update.len() / max);
    }
}

#[test]
fn a_large_delete_set_is_cut_into_pieces_of_its_own() {
    // Without GC, the deletions are in the delete set only.
    let alice = new_doc_without_gc(1);
    let bob = new_doc_without_gc(2);
    let text = alice.get_or_insert_text("text");
    text.insert(&mut alice.transact_mut(), 0, &"abcdefghij".repeat(300));
    sync(&alice, &bob);
    {
        // Every other char, by both clients, in separate transactions: many ranges.
        let bob_text = bob.get_or_insert_text("text");
        for i in 0..300 {
            text.remove_range(&mut alice.transact_mut(), i, 1);
            bob_text.remove_range(&mut bob.transact_mut(), 2999 - 2 * i - 1, 1);
        }
    }
    sync(&alice, &bob);
    let update = full_state(&alice);
    let pieces = split_and_check(&update, 64);
    let delete_set_pieces = pieces.iter().filter(|piece| piece[0] == 0).count();
    assert!(
        delete_set_pieces > 1,
        "{delete_set_pieces} delete set piece(s)"
    );
}

#[test]
fn skips_of_a_merged_update_are_kept() {
    // Updates 1 and 3 of one client, merged: the gap where update 2 belongs is a Skip.
    let doc = new_doc(3);
    let text = doc.get_or_insert_text("text");
    let mut updates = Vec::new();
    for chunk in ["first 😀 ", "second ", "third ünï "] {
        let before = doc.transact().state_vector();
        text.push(&mut doc.transact_mut(), &chunk.repeat(10));
        updates.push(doc.transact().encode_state_as_update_v1(&before));
    }
    let merged = yrs::merge_updates_v1([&updates[0][..], &updates[2][..]]).expect("merge");

    let expected = doc_from([&merged[..], &updates[1][..]]);
    for max in [40, 64, 100] {
        let pieces = split_update_v1(&merged, max).expect("split");
        assert!(pieces.iter().all(|piece| piece.len() <= max));
        let mut shuffled = pieces.clone();
        shuffled.shuffle(&mut StdRng::seed_from_u64(max as u64));
        let without_gap = doc_from(shuffled.iter().map(Vec::as_slice));
        assert_eq!(
            content(&without_gap).state_vector,
            content(&doc_from([&merged[..]])).state_vector
        );
        apply(&without_gap, &updates[1]);
        assert_eq!(content(&without_gap), content(&expected));
    }
}

/// About 800 KB from three clients: long paragraphs (cut across pieces), thousands of small
/// text edits and deletions, and map entries.
pub(super) fn large_document() -> Vec<u8> {
    let clients: Vec<Doc> = (1..=3).map(new_doc).collect();
    let mut rng = StdRng::seed_from_u64(42);
    let words = [
        "a ", "lorem ", "ipsum ", "dolor ", "ü ", "你好 ", "😀 ", "\n",
    ];
    let random_text = |rng: &mut StdRng, words_count: usize| -> String {
        (0..words_count)
            .map(|_| words[rng.random_range(0..words.len())])
            .collect()
    };
    for round in 0..12 {
        for (index, doc) in clients.iter().enumerate() {
            let text = doc.get_or_insert_text("text");
            let map = doc.get_or_insert_map("map");
            let mut txn = doc.transact_mut();
            for _ in 0..2 {
                let words_count = rng.random_range(500..2500);
                let paragraph = random_text(&mut rng, words_count);
                let at = rng.random_range(0..=text.len(&txn));
                text.insert(&mut txn, at, &paragraph);
            }
            for edit in 0..150 {
                let len = text.len(&txn);
                if len > 20 && rng.random_bool(0.2) {
                    let at = rng.random_range(0..len - 10);
                    text.remove_range(&mut txn, at, rng.random_range(1..5));
                } else {
                    let at = rng.random_range(0..=len);
                    text.insert(&mut txn, at, &random_text(&mut rng, 1));
                }
                map.insert(&mut txn, format!("k{index}-{round}-{edit}"), edit);
                map.insert(&mut txn, format!("s{index}-{round}-{edit}"), "value");
            }
        }
        for pair in clients.windows(2) {
            sync(&pair[0], &pair[1]);
        }
    }
    sync(&clients[2], &clients[0]);
    full_state(&clients[0])
}

#[test]
fn a_large_document_fits_api_gateway_messages() {
    let update = large_document();
    let max = 90_000;
    let started = Instant::now();
    let pieces = split_update_v1(&update, max).expect("split");
    let elapsed = started.elapsed();
    eprintln!(
        "large document: {} bytes -> {} pieces under {max} bytes in {elapsed:?}",
        update.len(),
        pieces.len()
    );
    assert!(update.len() > 700_000, "only {} bytes", update.len());
    // Struct pieces are filled to the brim: one more than the minimum, for the delete set.
    assert!(
        pieces.len() <= update.len().div_ceil(max) + 1,
        "{} pieces",
        pieces.len()
    );
    assert_pieces_rebuild(&update, &pieces, max);
}
