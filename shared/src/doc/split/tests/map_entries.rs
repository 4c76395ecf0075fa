//! Map entries named inside: a deleted entry of several units (what two clients setting one key
//! make every day) passes; a live one is refused in one update, and named across updates it makes
//! the naming item GC in the room's merged state (`gc_items_naming_live_entries`).
use yrs::block::{
    BLOCK_ITEM_DELETED_REF_NUMBER, BLOCK_ITEM_STRING_REF_NUMBER, HAS_ORIGIN, HAS_PARENT_SUB,
};
use yrs::{Map, Out};

use super::*;
use crate::doc::split::{
    check_references, gc_items_naming_live_entries, gc_items_under_non_types, SplitError,
};
use crate::doc::{merge, merge_room, state_vector, validate_update};

/// Yjs 13.6: client 1 set key "k" of map "m" three times; client 2 set it once, having seen
/// only the first value. Client 1's state, with garbage collection (its old values are one
/// Deleted struct of 3 units) and without (one Any struct of 3 units the delete set covers).
/// Client 2's value names the first unit of either.
const YJS_CONCURRENT_SETS_GC: [u8; 26] = [
    2, 1, 2, 0, 168, 1, 0, 1, 119, 1, 98, 1, 1, 0, 33, 1, 1, 109, 1, 107, 3, 1, 1, 1, 0, 3,
];
const YJS_CONCURRENT_SETS_NO_GC: [u8; 32] = [
    2, 1, 2, 0, 168, 1, 0, 1, 119, 1, 98, 1, 1, 0, 40, 1, 1, 109, 1, 107, 3, 125, 1, 125, 2, 125,
    3, 1, 1, 1, 0, 3,
];
/// Yjs 13.6, the same story as the updates a room logs: client 1 sets "k" to 1, then to 2;
/// client 2, having seen only the first, sets it to "b".
const YJS_CONCURRENT_SETS_LOG: [&[u8]; 3] = [
    &[1, 1, 1, 0, 40, 1, 1, 109, 1, 107, 1, 125, 1, 0],
    &[1, 1, 1, 1, 168, 1, 0, 1, 125, 2, 1, 1, 1, 0, 1],
    &[1, 1, 2, 0, 168, 1, 0, 1, 119, 1, 98, 1, 1, 1, 0, 1],
];

#[test]
fn concurrent_sets_of_one_key_pass_as_yjs_and_yrs_write_them() {
    for state in [&YJS_CONCURRENT_SETS_GC[..], &YJS_CONCURRENT_SETS_NO_GC[..]] {
        validate_update(state).expect("Yjs' state");
    }
    let merged =
        merge_room(None, YJS_CONCURRENT_SETS_LOG.map(<[u8]>::to_vec).to_vec()).expect("merges");
    assert_eq!(merged.gc_items, 0, "nothing of an honest room is GC'd");
    validate_update(&merged.state).expect("the room's state");
    assert_eq!(map_value(&doc_from([merged.state.as_slice()])), "b");

    for gc in [true, false] {
        let new = |client| {
            if gc {
                new_doc(client)
            } else {
                new_doc_without_gc(client)
            }
        };
        let (first, second) = (new(1), new(2));
        set(&first, 1.into());
        sync(&first, &second);
        set(&first, 2.into());
        set(&first, 3.into());
        set(&second, "b".into());
        sync(&first, &second);
        for doc in [&first, &second] {
            let state = full_state(doc);
            validate_update(&state).expect("yrs' state");
            assert_eq!(map_value(&doc_from([state.as_slice()])), "b");
        }
    }
}

fn set(doc: &Doc, value: yrs::Any) {
    let map = doc.get_or_insert_map("m");
    map.insert(&mut doc.transact_mut(), "k", value);
}

fn map_value(doc: &Doc) -> String {
    let map = doc.get_or_insert_map("m");
    match map.get(&doc.transact(), "k") {
        Some(Out::Any(any)) => any.to_string(),
        other => format!("{other:?}"),
    }
}

/// Client 9: `content` under key "k" of root map "map", then maybe more structs.
fn entry(content_kind: u8, content: &[u8]) -> Vec<u8> {
    let mut entry = vec![
        content_kind | HAS_PARENT_SUB,
        1,
        3,
        b'm',
        b'a',
        b'p',
        1,
        b'k',
    ];
    entry.extend_from_slice(content);
    entry
}

/// Client 9's `structs` from clock 0, and a delete set of `deleted` (clock, length) of client 9.
fn update_of(structs: &[&[u8]], deleted: &[(u8, u8)]) -> Vec<u8> {
    let mut update = vec![1, structs.len() as u8, 9, 0];
    for s in structs {
        update.extend_from_slice(s);
    }
    if deleted.is_empty() {
        update.push(0);
    } else {
        update.extend_from_slice(&[1, 9, deleted.len() as u8]);
        for &(clock, len) in deleted {
            update.extend_from_slice(&[clock, len]);
        }
    }
    update
}

/// A String item "x" after (origin) `<9#clock>`.
fn after(clock: u8) -> Vec<u8> {
    vec![BLOCK_ITEM_STRING_REF_NUMBER | HAS_ORIGIN, 9, clock, 1, b'x']
}

#[test]
fn the_inside_of_a_deleted_entry_may_be_named_and_of_a_live_one_not() {
    let live = entry(BLOCK_ITEM_STRING_REF_NUMBER, &[2, b'a', b'b']);
    let deleted = entry(BLOCK_ITEM_DELETED_REF_NUMBER, &[2]);
    check_references(&update_of(&[&deleted, &after(0)], &[])).expect("Deleted content");
    for covering in [&[(0, 2)][..], &[(1, 1), (0, 1)], &[(0, 1), (0, 3)]] {
        check_references(&update_of(&[&live, &after(0)], covering))
            .expect("the delete set covers the entry");
    }
    for short in [&[][..], &[(0, 1)], &[(1, 1)], &[(1, 3)]] {
        let update = update_of(&[&live, &after(0)], short);
        match check_references(&update) {
            Err(SplitError::Malformed(why)) => {
                assert!(
                    why.contains("names the inside of a live map entry of 2 units"),
                    "{why}"
                )
            }
            other => panic!("{short:?}: {other:?}"),
        }
    }
}

#[test]
fn an_item_naming_the_inside_of_another_updates_live_entry_merges_as_gc() {
    let live = update_of(
        &[&entry(BLOCK_ITEM_STRING_REF_NUMBER, &[2, b'a', b'b'])],
        &[],
    );
    // Client 4's "x" after <9#0>: pending alone, so it passes.
    let naming = one_struct_update(
        4,
        &[BLOCK_ITEM_STRING_REF_NUMBER | HAS_ORIGIN, 9, 0, 1, b'x'],
    );
    validate_update(&live).expect("the entry alone");
    validate_update(&naming).expect("the naming item alone");
    let unfixed = merge(&[&live, &naming]).expect("yrs merges them");
    assert!(
        check_references(&unfixed).is_err(),
        "the plain merge is refused"
    );

    let (fixed, count) = gc_items_naming_live_entries(&unfixed)
        .expect("readable")
        .expect("one item to GC");
    assert_eq!(count, 1);
    validate_update(&fixed).expect("sound");
    assert_eq!(
        state_vector(&fixed).unwrap(),
        state_vector(&unfixed).unwrap()
    );
    assert!(gc_items_naming_live_entries(&fixed).unwrap().is_none());

    for (snapshot, log) in [
        (None, vec![live.clone(), naming.clone()]),
        (None, vec![naming.clone(), live.clone()]),
        (Some(naming.clone()), vec![live.clone()]),
        (Some(live.clone()), vec![naming.clone()]),
    ] {
        let merged = merge_room(snapshot, log).expect("merges");
        assert_eq!(merged.gc_items, 1);
        validate_update(&merged.state).expect("the room's state is sound");
    }
}

#[test]
fn pieces_of_concurrent_sets_each_pass() {
    for state in [&YJS_CONCURRENT_SETS_GC[..], &YJS_CONCURRENT_SETS_NO_GC[..]] {
        for max in 12..=state.len() {
            let Ok(pieces) = split_update_v1(state, max) else {
                continue;
            };
            assert_pieces_rebuild(state, &pieces, max);
            for piece in &pieces {
                validate_update(piece).unwrap_or_else(|e| panic!("max {max}: {e} {piece:?}"));
            }
        }
    }
}

#[test]
fn the_merged_state_is_read_for_entries_unless_no_update_holds_a_map_key() {
    let text = |client| {
        one_struct_update(
            client,
            &root_item(BLOCK_ITEM_STRING_REF_NUMBER, "t", &[1, b's']),
        )
    };
    let keyed = update_of(&[&entry(BLOCK_ITEM_STRING_REF_NUMBER, &[1, b'a'])], &[]);
    let map_keys = |base: Option<&[u8]>, log: &[&Vec<u8>]| {
        gc_items_under_non_types(base, log)
            .expect("readable")
            .map_keys
    };
    assert_eq!(map_keys(None, &[&text(4), &text(5)]), Some(false));
    assert_eq!(map_keys(None, &[&text(4), &keyed]), Some(true));
    assert_eq!(
        map_keys(Some(&keyed), &[&text(4)]),
        Some(true),
        "a log of Strings reads the snapshot"
    );
    // A log of deletions leaves the snapshot unread: whether it holds a key is not known, and
    // merge_room reads the merged state.
    let deletion = vec![0, 1, 9, 1, 0, 1];
    assert_eq!(map_keys(Some(&keyed), &[&deletion]), None);
}
