//! `integrates_whole`: a document's own state does; a state missing what some of its structs
//! name, or with a gap in a client's clocks, or whose clients name each other's later structs, or
//! deleting what it does not hold, does not.
use yrs::block::{BLOCK_ITEM_STRING_REF_NUMBER, HAS_ORIGIN};

use super::*;
use crate::doc::merge;
use crate::doc::split::integrates_whole;

fn typed(doc: &Doc, text: &str) -> Vec<u8> {
    let t = doc.get_or_insert_text("text");
    let mut txn = doc.transact_mut();
    let end = t.len(&txn);
    t.insert(&mut txn, end, text);
    txn.encode_update_v1()
}

#[test]
fn documents_integrate_whole() {
    assert!(integrates_whole(&rich_document(true)).unwrap());
    assert!(integrates_whole(&rich_document(false)).unwrap());
    assert!(integrates_whole(&[0, 0]).unwrap());
}

#[test]
fn clients_that_take_turns_integrate_whole() {
    // Each edit names the one before it, of the other client: yrs writes the higher client
    // first, so the walk finds most structs waiting for the other client.
    let (a, b) = (new_doc(1), new_doc(2));
    for i in 0..50 {
        let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let update = typed(writer, &format!("{i},"));
        apply(reader, &update);
    }
    assert!(integrates_whole(&full_state(&a)).unwrap());
}

#[test]
fn what_names_a_struct_nobody_sent_stays_pending() {
    let a = new_doc(1);
    let first = typed(&a, "hello");
    let second = typed(&a, " world");
    // A gap: client 1 from clock 5, without clocks 0..5.
    assert!(!integrates_whole(&second).unwrap());
    // Another client's edit after text it got from client 1, without client 1's update.
    let b = new_doc(2);
    apply(&b, &first);
    let reply = typed(&b, "!");
    assert!(!integrates_whole(&reply).unwrap());
    // With what it names, it does.
    assert!(integrates_whole(&merge(&[first.as_slice(), &reply]).unwrap()).unwrap());
}

#[test]
fn clients_naming_each_others_structs_in_a_cycle_stay_pending() {
    // Client 1's item comes after client 2's, which comes after client 1's: neither can go first.
    let after = |client: u8| {
        vec![
            BLOCK_ITEM_STRING_REF_NUMBER | HAS_ORIGIN,
            client,
            0,
            1,
            b'x',
        ]
    };
    let mut update = vec![2, 1, 1, 0];
    update.extend(after(2));
    update.extend([1, 2, 0]);
    update.extend(after(1));
    update.push(0);
    assert!(Update::decode_v1(&update).is_ok());
    assert!(!integrates_whole(&update).unwrap());
}

#[test]
fn deleting_what_the_state_does_not_hold_stays_pending() {
    // No structs; client 7 clock 0 length 1 deleted.
    assert!(!integrates_whole(&[0, 1, 7, 1, 0, 1]).unwrap());
    let a = new_doc(7);
    let update = typed(&a, "x");
    let mut deleted_past_the_end = update[..update.len() - 1].to_vec();
    deleted_past_the_end.extend([1, 7, 1, 0, 2]);
    assert!(!integrates_whole(&deleted_past_the_end).unwrap());
}

#[test]
fn malformed_input_is_an_error() {
    assert!(integrates_whole(&[5, 1]).is_err());
}
