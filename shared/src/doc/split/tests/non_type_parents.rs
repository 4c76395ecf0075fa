//! `gc_items_under_non_types`: across a room's updates, an item whose parent is another update's
//! String item merges as the GC struct Yjs makes of it; children of types, and of parents nobody
//! has yet, are left as they are.
use std::borrow::Cow;

use yrs::block::{BLOCK_ITEM_STRING_REF_NUMBER, BLOCK_ITEM_TYPE_REF_NUMBER};
use yrs::types::TYPE_REFS_TEXT;

use super::*;
use crate::doc::split::{check_references, gc_items_under_non_types};
use crate::doc::{merge, merge_room, state_vector, validate_update};

/// A String item "a" of client 4 whose parent is written as the ID (9, 0).
fn child_of_client_9s_first_struct() -> Vec<u8> {
    one_struct_update(4, &[BLOCK_ITEM_STRING_REF_NUMBER, 0, 9, 0, 1, b'a'])
}

#[test]
fn an_item_under_a_string_item_of_another_update_becomes_gc() {
    let string = one_struct_update(9, &root_item(BLOCK_ITEM_STRING_REF_NUMBER, "t", &[1, b's']));
    let child = child_of_client_9s_first_struct();
    // Each passes alone: the child's parent is not in its update...
    validate_update(&string).expect("the String item alone");
    validate_update(&child).expect("the child alone");
    // ...but their merge holds an item under a String.
    let unfixed = merge(&[&string, &child]).expect("yrs merges them");
    assert!(check_references(&unfixed).is_err());

    let check = |base: Option<&[u8]>, log: &[&Vec<u8>]| {
        let done = gc_items_under_non_types(base, log).expect("readable");
        assert_eq!(done.replaced, 1);
        let updates = base.iter().copied().zip(&done.base);
        let updates = updates.chain(log.iter().map(|u| u.as_slice()).zip(&done.log));
        for (before, after) in updates {
            if before == string.as_slice() {
                assert!(
                    matches!(after, Cow::Borrowed(_)),
                    "the parent's update is untouched"
                );
            } else {
                // Client 4's one struct, now a GC of length 1; the rest byte for byte.
                assert_eq!(after.as_ref(), &[1, 1, 4, 0, 0, 1, 0]);
            }
        }
        let merged = merge_room(
            base.map(<[u8]>::to_vec),
            log.iter().map(|u| u.to_vec()).collect(),
        )
        .expect("merges");
        assert_eq!(merged.gc_items, 1);
        validate_update(&merged.state).expect("the merged state is sound");
        // The clock range stays: peers that hold the child agree on the state vector.
        assert_eq!(
            state_vector(&merged.state).unwrap(),
            state_vector(&unfixed).unwrap()
        );
    };
    // Both in the log, in either order; the parent in the snapshot; or the child in the
    // snapshot, merged there while its parent had not arrived (the String comes later).
    check(None, &[&string, &child]);
    check(None, &[&child, &string]);
    check(Some(&string), &[&child]);
    check(Some(&child), &[&string]);
}

#[test]
fn children_of_types_and_of_parents_not_yet_here_are_kept() {
    let text_type = one_struct_update(
        9,
        &root_item(BLOCK_ITEM_TYPE_REF_NUMBER, "map", &[TYPE_REFS_TEXT]),
    );
    let child = child_of_client_9s_first_struct();
    let kept = |base: Option<&[u8]>, log: &[&Vec<u8>]| {
        let done = gc_items_under_non_types(base, log).expect("readable");
        assert_eq!(done.replaced, 0);
        assert!(done.log.iter().all(|u| matches!(u, Cow::Borrowed(_))));
        assert!(done.base.iter().all(|u| matches!(u, Cow::Borrowed(_))));
        assert_eq!(done.base.is_some(), base.is_some());
    };
    kept(None, &[&text_type, &child]);
    kept(Some(&text_type), &[&child]);
    kept(Some(&child), &[&text_type]); // the type arrives after its child was merged
                                       // A parent nobody has sent: pending in Yjs and yrs until it arrives, so kept.
    kept(None, &[&child]);
    let elsewhere = one_struct_update(5, &root_item(BLOCK_ITEM_STRING_REF_NUMBER, "t", &[1, b's']));
    kept(Some(&elsewhere), &[&child, &elsewhere]);

    // A real document's edits, update by update: the first insert into a nested type made in an
    // earlier update names that type by ID.
    let doc = new_doc(77); // a client of its own: rich_document's are 1, 0x12345678, 2^53-1
    let map = doc.get_or_insert_map("m");
    let inner = {
        let mut txn = doc.transact_mut();
        map.insert(&mut txn, "inner", TextPrelim::new(""))
    };
    let made = full_state(&doc);
    let edit = {
        let mut txn = doc.transact_mut();
        inner.insert(&mut txn, 0, "nested");
        txn.encode_update_v1()
    };
    let rich = rich_document(false);
    kept(Some(&rich), &[&made, &edit]);
    kept(Some(&made), &[&edit]);
    kept(None, &[&rich_document(true), &made, &edit]);
}

/// Found by afl (seventh run): the log holds a parent's ID as GC, the snapshot holds the same ID
/// inside a longer String, and yrs' merge keeps the String. The log alone says the parent is
/// here, so the snapshot must be read whenever a log item names a parent by ID.
#[test]
fn a_parent_the_log_holds_as_gc_is_looked_up_in_the_snapshot_too() {
    let string = one_struct_update(
        9,
        &root_item(BLOCK_ITEM_STRING_REF_NUMBER, "t", &[3, b's', b's', b's']),
    );
    // A GC of length 1 at <9#1>: one section, one struct, client 9, clock 1; no deletions.
    let gc = vec![1, 1, 9, 1, 0, 1, 0];
    let child_type = one_struct_update(4, &[BLOCK_ITEM_TYPE_REF_NUMBER, 0, 9, 1, TYPE_REFS_TEXT]);
    validate_update(&child_type).expect("the child alone");
    let unfixed = merge(&[&string, &gc, &child_type]).expect("yrs merges them");
    assert!(
        check_references(&unfixed).is_err(),
        "the merge keeps the String"
    );
    let merged = merge_room(Some(string), vec![gc, child_type]).expect("merges");
    assert_eq!(merged.gc_items, 1);
    validate_update(&merged.state).expect("the merged state is sound");
}
