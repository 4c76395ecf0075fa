//! `gc_items_under_non_types`: across a room's updates, an item whose parent is another update's
//! String item merges as the GC struct Yjs makes of it; children of types, and of parents nobody
//! has yet, are left as they are.
use std::borrow::Cow;

use yrs::block::{BLOCK_ITEM_STRING_REF_NUMBER, BLOCK_ITEM_TYPE_REF_NUMBER};
use yrs::types::TYPE_REFS_TEXT;

use super::*;
use crate::doc::split::{check_references, gc_items_under_non_types, Base};
use crate::doc::{merge, merge_room, state_vector, validate_update, RoomSnapshot};

/// A snapshot whose items may wait for absent parents (or one stored before that was known).
fn unknown(update: &[u8]) -> Base<'_> {
    Base {
        update,
        absent_parents: true,
    }
}

fn merge_all(base: Option<Base>, log: &[&Vec<u8>]) -> crate::doc::MergedRoom {
    let base = base.map(|base| RoomSnapshot {
        update: base.update.to_vec(),
        absent_parents: base.absent_parents,
    });
    merge_room(base, log.iter().map(|u| u.to_vec()).collect()).expect("merges")
}

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
        let done = gc_items_under_non_types(base.map(unknown), log).expect("readable");
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
        let merged = merge_all(base.map(unknown), log);
        assert_eq!(merged.gc_items, 1);
        assert!(
            !merged.absent_parents,
            "the child's parent is here (a String)"
        );
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
        let done = gc_items_under_non_types(base.map(unknown), log).expect("readable");
        assert_eq!(done.replaced, 0);
        assert!(done.log.iter().all(|u| matches!(u, Cow::Borrowed(_))));
        assert!(done.base.iter().all(|u| matches!(u, Cow::Borrowed(_))));
        assert_eq!(done.base.is_some(), base.is_some());
    };
    kept(None, &[&text_type, &child]);
    kept(Some(&text_type), &[&child]);
    // The type arrives after its child was merged.
    kept(Some(&child), &[&text_type]);
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

/// Compaction stores whether an item of the snapshot waits for a parent it lacks; only then is
/// the snapshot read again for a log of Strings (invariant 22).
#[test]
fn a_snapshot_is_read_again_only_while_an_item_waits_for_its_parent() {
    let string = one_struct_update(9, &root_item(BLOCK_ITEM_STRING_REF_NUMBER, "t", &[1, b's']));
    let text_type = one_struct_update(
        9,
        &root_item(BLOCK_ITEM_TYPE_REF_NUMBER, "map", &[TYPE_REFS_TEXT]),
    );
    let child = child_of_client_9s_first_struct();
    let other = one_struct_update(5, &root_item(BLOCK_ITEM_STRING_REF_NUMBER, "u", &[1, b'x']));

    // The child waits for <9#0>: the merge says so, and so would the snapshot it becomes.
    let waiting = merge_all(None, &[&other, &child]);
    assert!(waiting.absent_parents);
    // Then the String arrives: the snapshot is read and its child made GC.
    let flagged = Base {
        update: &waiting.state,
        absent_parents: waiting.absent_parents,
    };
    let merged = merge_all(Some(flagged), &[&string]);
    assert_eq!(merged.gc_items, 1);
    validate_update(&merged.state).expect("sound");
    assert!(!merged.absent_parents);
    // Or a type arrives: the child is kept. A log of types does not have the snapshot read, so
    // the flag stays set until a log that does (one with a String) finds nothing waiting.
    let merged = merge_all(Some(flagged), &[&text_type]);
    assert_eq!(merged.gc_items, 0);
    assert!(merged.absent_parents);
    let typed = one_struct_update(6, &root_item(BLOCK_ITEM_STRING_REF_NUMBER, "u", &[1, b'y']));
    let base = Base {
        update: &merged.state,
        absent_parents: merged.absent_parents,
    };
    let merged = merge_all(Some(base), &[&typed]);
    assert_eq!(merged.gc_items, 0);
    assert!(!merged.absent_parents);

    // A snapshot whose items wait for nothing is not read for a log of Strings, and stays so.
    let settled = merge_all(None, &[&text_type, &other]);
    assert!(!settled.absent_parents);
    let base = Base {
        update: &settled.state,
        absent_parents: false,
    };
    let done =
        gc_items_under_non_types(Some(base), std::slice::from_ref(&string)).expect("readable");
    assert!(!done.absent_parents);
    assert!(matches!(done.base, Some(Cow::Borrowed(_))));
    // The flag is what decides: recorded wrongly, the waiting child would not be found.
    let trusted = Base {
        update: &waiting.state,
        absent_parents: false,
    };
    let done =
        gc_items_under_non_types(Some(trusted), std::slice::from_ref(&string)).expect("readable");
    assert_eq!(done.replaced, 0);

    // A log naming a parent it lacks still has the snapshot read, whatever its flag.
    let done =
        gc_items_under_non_types(Some(base), std::slice::from_ref(&child)).expect("readable");
    assert_eq!(done.replaced, 0);
    assert!(
        !done.absent_parents,
        "the type in the snapshot is the child's parent"
    );
    // Unknown stays unknown when nothing asks for the snapshot to be read (a log of types).
    let types = [text_type];
    let done = gc_items_under_non_types(Some(unknown(&settled.state)), &types).expect("readable");
    assert!(done.absent_parents);
}
