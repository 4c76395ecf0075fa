//! The splitter's tests: pieces of real documents rebuild them in any order (`documents`),
//! hand-made updates reach every kind of struct (`hand_made`), and malformed or hostile input is
//! refused without a panic (`malformed`). The helpers below build and compare documents.
mod documents;
mod hand_made;
mod integration;
mod malformed;
mod map_entries;
mod non_type_parents;
mod references;
mod state_vector;

use std::collections::HashMap;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use yrs::types::text::YChange;
use yrs::types::{Attrs, ToJson};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Any, Array, ArrayPrelim, Doc, GetString, Map, MapPrelim, OffsetKind, Options, ReadTxn,
    StateVector, Text, TextPrelim, Transact, Update, Xml, XmlElementPrelim, XmlFragment,
    XmlTextPrelim,
};

use super::split_update_v1;
use crate::codec::write_var_uint;

/// A document that counts text like Yjs does: in UTF-16 code units.
fn new_doc(client_id: u64) -> Doc {
    Doc::with_options(Options {
        client_id: yrs::ClientID::new(client_id),
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    })
}

/// Without garbage collection deleted items keep their content, and only the delete set
/// says they are deleted (with it, they become Deleted content and GC structs).
fn new_doc_without_gc(client_id: u64) -> Doc {
    Doc::with_options(Options {
        client_id: yrs::ClientID::new(client_id),
        offset_kind: OffsetKind::Utf16,
        skip_gc: true,
        ..Options::default()
    })
}

fn full_state(doc: &Doc) -> Vec<u8> {
    doc.transact()
        .encode_state_as_update_v1(&StateVector::default())
}

fn apply(doc: &Doc, update: &[u8]) {
    let decoded = Update::decode_v1(update).expect("piece decodes");
    doc.transact_mut()
        .apply_update(decoded)
        .expect("piece applies");
}

/// Sends each side what the other lacks.
fn sync(a: &Doc, b: &Doc) {
    let a_to_b = a
        .transact()
        .encode_state_as_update_v1(&b.transact().state_vector());
    let b_to_a = b
        .transact()
        .encode_state_as_update_v1(&a.transact().state_vector());
    apply(b, &a_to_b);
    apply(a, &b_to_a);
}

fn doc_from<'u>(updates: impl IntoIterator<Item = &'u [u8]>) -> Doc {
    let doc = new_doc(999);
    for update in updates {
        apply(&doc, update);
    }
    doc
}

/// Everything the test documents hold, read through the root types they use.
#[derive(Debug, PartialEq)]
struct Content {
    text: String,
    text_delta: Vec<yrs::types::text::Diff<YChange>>,
    map: Any,
    array: Any,
    xml: String,
    state_vector: StateVector,
    snapshot: yrs::Snapshot,
    missing: bool,
}

fn content(doc: &Doc) -> Content {
    let text = doc.get_or_insert_text("text");
    let map = doc.get_or_insert_map("map");
    let array = doc.get_or_insert_array("array");
    let xml = doc.get_or_insert_xml_fragment("xml");
    let txn = doc.transact();
    Content {
        text: text.get_string(&txn),
        // Formatting attributes and embeds.
        text_delta: text.diff(&txn, YChange::identity),
        map: map.to_json(&txn),
        array: array.to_json(&txn),
        xml: xml.get_string(&txn),
        state_vector: txn.state_vector(),
        snapshot: txn.snapshot(),
        missing: txn.has_missing_updates(),
    }
}

/// Checks the pieces' sizes and that they rebuild the original's state in several orders.
fn assert_pieces_rebuild(update: &[u8], pieces: &[Vec<u8>], max: usize) {
    assert!(!pieces.is_empty());
    for piece in pieces {
        assert!(
            piece.len() <= max,
            "piece of {} bytes over {max}",
            piece.len()
        );
        Update::decode_v1(piece).expect("every piece is a valid update");
    }
    let expected = content(&doc_from([update]));

    let forward: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
    let mut orders = vec![forward.clone(), forward.iter().rev().copied().collect()];
    let mut rng = StdRng::seed_from_u64(pieces.len() as u64);
    for _ in 0..3 {
        let mut shuffled = forward.clone();
        shuffled.shuffle(&mut rng);
        orders.push(shuffled);
    }
    for order in orders {
        let rebuilt = doc_from(order);
        let actual = content(&rebuilt);
        assert_eq!(actual, expected);
        // The original holds nothing the rebuilt document lacks.
        let sv = rebuilt.transact().state_vector();
        let rest = yrs::diff_updates_v1(update, &sv.encode_v1()).expect("diff");
        assert!(!Update::decode_v1(&rest).expect("diff decodes").extends(&sv));
    }
}

fn split_and_check(update: &[u8], max: usize) -> Vec<Vec<u8>> {
    let pieces = split_update_v1(update, max).expect("split");
    assert_pieces_rebuild(update, &pieces, max);
    pieces
}

/// Three clients editing text (with formatting, embeds, non-ASCII and emoji), a map of many
/// kinds of values, an array, XML and a subdocument, with deletions and GC'd content.
fn rich_document(gc: bool) -> Vec<u8> {
    let new_doc = if gc { new_doc } else { new_doc_without_gc };
    let alice = new_doc(1);
    let bob = new_doc(0x1234_5678);
    // A 53-bit client id: the largest Yjs uses, a long var-int.
    let carol = new_doc((1 << 53) - 1);

    {
        let text = alice.get_or_insert_text("text");
        let mut txn = alice.transact_mut();
        text.insert(&mut txn, 0, "Hello, wörld! Ünïcödé 你好世界 😀🎉👩‍👩‍👧 done.");
        let bold: Attrs = HashMap::from([(Arc::from("bold"), Any::Bool(true))]);
        text.format(&mut txn, 0, 5, bold);
        let link: Attrs = HashMap::from([(Arc::from("link"), Any::from("https://ü.example"))]);
        text.insert_with_attributes(&mut txn, 7, "linked 🔗 ", link);
        text.insert_embed(&mut txn, 3, Any::from(vec![1u8, 2, 3]));
    }
    sync(&alice, &bob);
    {
        let text = bob.get_or_insert_text("text");
        let mut txn = bob.transact_mut();
        text.insert(&mut txn, 10, "[bob 🐝 was here]");
        text.remove_range(&mut txn, 2, 4);
        let italic: Attrs = HashMap::from([(Arc::from("italic"), Any::Bool(true))]);
        text.format(&mut txn, 5, 12, italic);
    }
    {
        // Concurrent with bob.
        let text = carol.get_or_insert_text("text");
        let mut txn = carol.transact_mut();
        text.insert(&mut txn, 0, "Carol: 𝄞𝄞𝄞 ");
    }
    {
        let map = alice.get_or_insert_map("map");
        let mut txn = alice.transact_mut();
        map.insert(&mut txn, "int", 42);
        map.insert(&mut txn, "negative", -7);
        map.insert(&mut txn, "big", 1i64 << 40);
        map.insert(&mut txn, "float", 1.5);
        map.insert(&mut txn, "precise", 0.1);
        map.insert(&mut txn, "yes", true);
        map.insert(&mut txn, "no", false);
        map.insert(&mut txn, "nothing", Any::Null);
        map.insert(&mut txn, "undefined", Any::Undefined);
        map.insert(&mut txn, "string", "ünïcode ✓ 😀");
        map.insert(&mut txn, "buffer", Any::from(vec![0u8, 255, 7]));
        map.insert(
            &mut txn,
            "json",
            Any::from(HashMap::from([
                ("a".to_string(), Any::from(vec![Any::from(1), Any::Null])),
                ("b".to_string(), Any::from("x")),
            ])),
        );
        map.insert(
            &mut txn,
            "nested map",
            MapPrelim::from([("inner", "value")]),
        );
        map.insert(&mut txn, "nested array", ArrayPrelim::from([1, 2, 3]));
        map.insert(&mut txn, "nested text", TextPrelim::new("inner text ✍️"));
        map.insert(&mut txn, "overwritten", "first");
        map.insert(&mut txn, "overwritten", "second");
        map.insert(&mut txn, "temp", MapPrelim::from([("gone", "soon")]));
        map.remove(&mut txn, "temp");
        map.insert(
            &mut txn,
            "subdoc",
            Doc::with_options(Options {
                guid: "sub".into(),
                ..Options::default()
            }),
        );
    }
    {
        let array = bob.get_or_insert_array("array");
        let mut txn = bob.transact_mut();
        array.insert_range(
            &mut txn,
            0,
            (0..40).map(|i| Any::from(format!("item {i} é"))),
        );
        array.insert_range(&mut txn, 10, [Any::from(1.25), Any::Bool(true), Any::Null]);
        array.remove_range(&mut txn, 20, 5);
        array.push_back(&mut txn, MapPrelim::from([("k", 1)]));
    }
    {
        let xml = carol.get_or_insert_xml_fragment("xml");
        let mut txn = carol.transact_mut();
        let paragraph = xml.insert(&mut txn, 0, XmlElementPrelim::empty("p"));
        paragraph.insert_attribute(&mut txn, "class", "intro");
        let text = paragraph.insert(&mut txn, 0, XmlTextPrelim::new("xml text ✓ 😀"));
        let bold: Attrs = HashMap::from([(Arc::from("b"), Any::Bool(true))]);
        text.format(&mut txn, 0, 3, bold);
        let list = xml.insert(&mut txn, 1, XmlElementPrelim::empty("ul"));
        for i in 0..3 {
            let item = list.insert(&mut txn, i, XmlElementPrelim::empty("li"));
            item.insert(&mut txn, 0, XmlTextPrelim::new(format!("entry {i}")));
        }
        list.remove_range(&mut txn, 1, 1);
    }
    sync(&alice, &bob);
    sync(&bob, &carol);
    sync(&alice, &carol);
    {
        let text = alice.get_or_insert_text("text");
        let mut txn = alice.transact_mut();
        let len = text.len(&txn);
        text.remove_range(&mut txn, len - 6, 3);
    }
    sync(&alice, &bob);
    sync(&bob, &carol);
    full_state(&alice)
}

/// A hand-made update: one client, one struct, empty delete set.
fn one_struct_update(client: u8, struct_bytes: &[u8]) -> Vec<u8> {
    let mut update = vec![1, 1, client, 0];
    update.extend_from_slice(struct_bytes);
    update.push(0);
    update
}

/// Item bytes for a root type named `root` with no origins: info, parent name, content.
fn root_item(content_kind: u8, root: &str, content: &[u8]) -> Vec<u8> {
    let mut item = vec![content_kind, 1];
    write_var_uint(&mut item, root.len() as u64);
    item.extend_from_slice(root.as_bytes());
    item.extend_from_slice(content);
    item
}
