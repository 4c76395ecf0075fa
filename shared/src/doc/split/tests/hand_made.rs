//! Hand-made updates: struct kinds and layouts yrs rarely or never writes.
use std::collections::HashSet;

use yrs::block::{
    BLOCK_GC_REF_NUMBER, BLOCK_ITEM_BINARY_REF_NUMBER, BLOCK_ITEM_JSON_REF_NUMBER,
    BLOCK_ITEM_TYPE_REF_NUMBER, BLOCK_SKIP_REF_NUMBER, HAS_ORIGIN, HAS_PARENT_SUB,
};
use yrs::types::TYPE_REFS_XML_HOOK;
use yrs::{Map, Transact};

use super::*;
use crate::codec::write_var_uint;
use crate::doc::split::parse::parse_update;
use crate::doc::split::{split_update_v1, SplitError, EMPTY_UPDATE};

#[test]
fn binary_content_fits_or_is_indivisible() {
    let mut content = vec![200, 1];
    content.extend_from_slice(&[7; 200]);
    let binary = root_item(BLOCK_ITEM_BINARY_REF_NUMBER, "array", &content);
    let update = one_struct_update(9, &binary);
    doc_from([&update[..]]); // yrs takes it
    match split_update_v1(&update, 100) {
        Err(SplitError::Indivisible { size, max: 100 }) => assert_eq!(size, update.len()),
        other => panic!("expected Indivisible, got {other:?}"),
    }
    // Ten of them under a limit that fits one.
    let mut update = vec![1, 10, 9, 0];
    update.extend_from_slice(&binary);
    for clock in 0..9u8 {
        // Each following item has the one before as origin.
        update.extend_from_slice(&[BLOCK_ITEM_BINARY_REF_NUMBER | HAS_ORIGIN, 9, clock]);
        update.extend_from_slice(&content);
    }
    update.push(0);
    split_and_check(&update, binary.len() + 10);
}

#[test]
fn one_oversized_value_is_indivisible() {
    let doc = new_doc(4);
    let map = doc.get_or_insert_map("map");
    map.insert(&mut doc.transact_mut(), "big", "x".repeat(5000));
    let update = full_state(&doc);
    match split_update_v1(&update, 1000) {
        Err(SplitError::Indivisible { size, max: 1000 }) => assert!(size > 5000),
        other => panic!("expected Indivisible, got {other:?}"),
    }
    // A limit below the smallest piece.
    let update = rich_document(true);
    assert!(matches!(
        split_update_v1(&update, 10),
        Err(SplitError::Indivisible { max: 10, .. })
    ));
}

#[test]
fn json_content_is_cut_between_strings() {
    // Old Yjs writes JSON content: a count, then JSON texts. yrs 0.28.1 misreads it (one
    // string too many), so only the cut is checked here, by reading the pieces back.
    let mut content = vec![3];
    for text in ["\"a\"", "{\"k\":[1,2]}", "null"] {
        write_var_uint(&mut content, text.len() as u64);
        content.extend_from_slice(text.as_bytes());
    }
    let update = one_struct_update(9, &root_item(BLOCK_ITEM_JSON_REF_NUMBER, "array", &content));
    let pieces = split_update_v1(&update, 24).expect("split");
    assert!(pieces.len() > 1);
    let mut clocks = Vec::new();
    for piece in &pieces {
        assert!(piece.len() <= 24);
        let parsed = parse_update(piece).expect("piece parses");
        for section in &parsed.sections {
            clocks.extend(section.structs.iter().map(|span| (span.clock, span.len)));
        }
    }
    clocks.sort();
    let mut next = 0;
    for (clock, len) in clocks {
        assert_eq!(clock, next);
        next += len;
    }
    assert_eq!(next, 3);
}

#[test]
fn xml_hook_type_is_read_as_yrs_writes_it() {
    // Type content, type ref 5 (XmlHook), no hook name (yrs), in a map entry.
    let mut hook = vec![BLOCK_ITEM_TYPE_REF_NUMBER | HAS_PARENT_SUB, 1, 3];
    hook.extend_from_slice(b"map");
    hook.extend_from_slice(&[4]);
    hook.extend_from_slice(b"hook");
    hook.push(TYPE_REFS_XML_HOOK);
    let update = one_struct_update(9, &hook);
    doc_from([&update[..]]);
    let parsed = parse_update(&update).expect("parses");
    assert_eq!(parsed.sections[0].structs.len(), 1);
}

#[test]
fn a_client_in_two_sections_is_kept_apart_or_joined_by_a_skip() {
    // Not what yrs writes, but valid. yrs reads all of a client's structs in one update as
    // one list, so a section may only continue the one before it in the same piece.
    let backwards = [
        3,
        1,
        1,
        5,
        BLOCK_GC_REF_NUMBER,
        2,
        1,
        1,
        0,
        BLOCK_GC_REF_NUMBER,
        3,
        1,
        2,
        0,
        BLOCK_GC_REF_NUMBER,
        1,
        0,
    ];
    let pieces = split_update_v1(&backwards, backwards.len() - 1).expect("split");
    assert_eq!(pieces.len(), 2);
    for piece in &pieces {
        let sections = parse_update(piece).expect("piece parses").sections;
        let clients: HashSet<u64> = sections.iter().map(|section| section.client).collect();
        assert_eq!(clients.len(), sections.len());
    }
    // Clocks 0-1, then 5: one section, the gap bridged by a Skip of 3.
    let forwards = [
        2,
        1,
        1,
        0,
        BLOCK_GC_REF_NUMBER,
        2,
        1,
        1,
        5,
        BLOCK_GC_REF_NUMBER,
        1,
        0,
    ];
    let pieces = split_update_v1(&forwards, forwards.len() - 1).expect("split");
    assert_eq!(
        pieces,
        vec![vec![
            1,
            3,
            1,
            0,
            BLOCK_GC_REF_NUMBER,
            2,
            BLOCK_SKIP_REF_NUMBER,
            3,
            BLOCK_GC_REF_NUMBER,
            1,
            0
        ]]
    );
}

#[test]
fn an_update_of_skips_only_gives_the_empty_update() {
    let update = [
        1,
        2,
        1,
        0,
        BLOCK_SKIP_REF_NUMBER,
        5,
        BLOCK_SKIP_REF_NUMBER,
        3,
        0,
    ];
    assert_eq!(
        split_update_v1(&update, 4).expect("split"),
        vec![EMPTY_UPDATE.to_vec()]
    );
    assert!(matches!(
        split_update_v1(&update, 1),
        Err(SplitError::Indivisible { size: 2, max: 1 })
    ));
}
