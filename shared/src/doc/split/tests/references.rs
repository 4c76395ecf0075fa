//! `check_references`: what real documents write passes; items naming a later struct of their
//! own client, or a parent in the same update that is not a type, are refused (and yrs alone
//! would take them, pending forever); so are clocks past the limit and JSON content.
use yrs::block::{
    BLOCK_ITEM_JSON_REF_NUMBER, BLOCK_ITEM_STRING_REF_NUMBER, BLOCK_ITEM_TYPE_REF_NUMBER,
    HAS_ORIGIN, HAS_PARENT_SUB, HAS_RIGHT_ORIGIN,
};
use yrs::types::TYPE_REFS_TEXT;

use super::*;
use crate::doc::split::{check_references, SplitError};
use crate::doc::{validate_update, DocError};

const STRING_A: [u8; 2] = [1, b'a'];

/// Client 9's structs from clock 0, then an empty delete set.
fn update_of(structs: &[Vec<u8>]) -> Vec<u8> {
    let mut update = vec![1, structs.len() as u8, 9, 0];
    for s in structs {
        update.extend_from_slice(s);
    }
    update.push(0);
    update
}

/// A String item "a" whose parent is written as the ID (9, `clock`).
fn child_of(clock: u8) -> Vec<u8> {
    vec![BLOCK_ITEM_STRING_REF_NUMBER, 0, 9, clock, 1, b'a']
}

fn text_type() -> Vec<u8> {
    root_item(BLOCK_ITEM_TYPE_REF_NUMBER, "map", &[TYPE_REFS_TEXT])
}

fn assert_refused(update: &[u8], why: &str) {
    match check_references(update) {
        Err(SplitError::Malformed(reason)) => assert!(reason.contains(why), "{reason}"),
        other => panic!("expected a refusal ({why}), got {other:?}"),
    }
    // (yrs may refuse it first, when it integrates the item.)
    assert!(
        matches!(validate_update(update), Err(DocError::InvalidUpdate(_))),
        "validate_update takes it"
    );
}

/// yrs alone takes it (integrating what it can, keeping the rest pending): the check is needed.
fn yrs_takes(update: &[u8]) {
    let doc = new_doc(1);
    let decoded = Update::decode_v1(update).expect("decodes");
    doc.transact_mut()
        .apply_update(decoded)
        .expect("yrs applies it");
}

#[test]
fn what_documents_write_passes() {
    for gc in [true, false] {
        let update = rich_document(gc);
        check_references(&update).expect("a rich document");
        validate_update(&update).expect("validates");
    }
    // Concurrent edits of two clients, merged: origins across clients.
    let (a, b) = (new_doc(1), new_doc(2));
    a.get_or_insert_text("t")
        .insert(&mut a.transact_mut(), 0, "hello");
    sync(&a, &b);
    b.get_or_insert_text("t")
        .insert(&mut b.transact_mut(), 2, "XY");
    a.get_or_insert_text("t")
        .insert(&mut a.transact_mut(), 3, "z");
    sync(&a, &b);
    check_references(&full_state(&a)).expect("two clients");
    // A child whose parent type comes before it, named by ID.
    check_references(&update_of(&[text_type(), child_of(0)])).expect("parent by ID");
}

#[test]
fn an_origin_naming_itself_or_later_is_refused() {
    let first = root_item(BLOCK_ITEM_STRING_REF_NUMBER, "t", &STRING_A);
    let after = |clock: u8| vec![BLOCK_ITEM_STRING_REF_NUMBER | HAS_ORIGIN, 9, clock, 1, b'b'];
    check_references(&update_of(&[first.clone(), after(0)])).expect("origin before it");
    for clock in [1, 5] {
        let update = update_of(&[first.clone(), after(clock)]);
        yrs_takes(&update);
        assert_refused(&update, "which is not before it");
    }
    // The right origin too.
    let before = vec![
        BLOCK_ITEM_STRING_REF_NUMBER | HAS_RIGHT_ORIGIN,
        9,
        3,
        1,
        b'b',
    ];
    let update = update_of(&[first, before]);
    yrs_takes(&update);
    assert_refused(&update, "which is not before it");
}

#[test]
fn a_parent_later_in_its_own_clock_is_refused() {
    // Clock 0 is a child of clock 1, a type: a cycle yrs keeps pending forever.
    let update = update_of(&[child_of(1), text_type()]);
    yrs_takes(&update);
    assert_refused(&update, "which is not before it");
}

#[test]
fn a_parent_that_is_not_a_type_is_refused() {
    let string = root_item(BLOCK_ITEM_STRING_REF_NUMBER, "t", &STRING_A);
    assert_refused(&update_of(&[string.clone(), child_of(0)]), "not a type");
    // Behind a struct yrs waits for (another client's), yrs never looks at that parent.
    let waiting = vec![BLOCK_ITEM_STRING_REF_NUMBER | HAS_ORIGIN, 4, 7, 1, b'w'];
    let update = update_of(&[string, waiting, child_of(0)]);
    yrs_takes(&update);
    assert_refused(&update, "not a type");
    // A parent outside the update cannot be checked here: yrs checks it if it ever arrives.
    let update = vec![
        1,
        1,
        9,
        0,
        BLOCK_ITEM_STRING_REF_NUMBER,
        0,
        4,
        7,
        1,
        b'a',
        0,
    ];
    check_references(&update).expect("parent in another client's structs");
}

#[test]
fn clocks_reaching_the_limit_are_refused() {
    // Client 9's text type, then a string "a" at the last clock below the limit (passes) and at
    // the limit itself (refused): first clock as a var-int, so the section is written by hand.
    let at = |clock: u64| {
        let mut update = vec![1, 1, 9];
        write_var_uint(&mut update, clock);
        update.extend_from_slice(&root_item(BLOCK_ITEM_STRING_REF_NUMBER, "text", &STRING_A));
        update.push(0);
        update
    };
    let limit = crate::doc::split::CLOCK_LIMIT;
    check_references(&at(limit - 1)).expect("ends at the limit");
    assert_refused(&at(limit), "ends past clock");
    assert_refused(&at((1 << 31) - 1), "ends past clock");
}

#[test]
fn json_content_is_refused() {
    let mut content = vec![1];
    write_var_uint(&mut content, 3);
    content.extend_from_slice(b"\"a\"");
    // yrs reads one string more than the count: give it one, so that yrs takes it.
    let mut yrs_view = content.clone();
    write_var_uint(&mut yrs_view, 3);
    yrs_view.extend_from_slice(b"\"b\"");
    assert_refused(
        &one_struct_update(9, &root_item(BLOCK_ITEM_JSON_REF_NUMBER, "array", &content)),
        "JSON content",
    );
    let as_yrs_reads_it = one_struct_update(
        9,
        &root_item(BLOCK_ITEM_JSON_REF_NUMBER, "array", &yrs_view),
    );
    yrs_takes(&as_yrs_reads_it);
    // (Refused before the rule, too: yrs cannot read back its own writing of it.)
    assert!(matches!(
        validate_update(&as_yrs_reads_it),
        Err(DocError::InvalidUpdate(_))
    ));
}

#[test]
fn an_item_naming_the_inside_of_a_map_entry_is_refused() {
    // Client 9: "ab" under key "k" of root map "map" (clocks 0 and 1), then maybe an item "x"
    // after (origin) or before (right origin) one of its units.
    let entry = vec![
        BLOCK_ITEM_STRING_REF_NUMBER | HAS_PARENT_SUB,
        1,
        3,
        b'm',
        b'a',
        b'p',
        1,
        b'k',
        2,
        b'a',
        b'b',
    ];
    let with = |flag: u8, clock: u8| {
        let item = vec![BLOCK_ITEM_STRING_REF_NUMBER | flag, 9, clock, 1, b'x'];
        update_of(&[entry.clone(), item])
    };
    // Alone, a long entry is fine (Yjs merges deleted values; their delete set may be in
    // another piece).
    check_references(&update_of(std::slice::from_ref(&entry))).expect("an entry of two units");
    // A new value after the entry names its last unit.
    check_references(&with(HAS_ORIGIN, 1)).expect("after the last unit");
    check_references(&with(HAS_RIGHT_ORIGIN, 0)).expect("before the first unit");
    for inside in [with(HAS_ORIGIN, 0), with(HAS_RIGHT_ORIGIN, 1)] {
        yrs_takes(&inside);
        assert_refused(&inside, "names the inside of a live map entry of 2 units");
    }
}
