//! Malformed and hostile input: refused as a whole, never a panic.
use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yrs::block::{
    BLOCK_GC_REF_NUMBER, BLOCK_ITEM_ANY_REF_NUMBER, BLOCK_ITEM_STRING_REF_NUMBER,
    BLOCK_ITEM_TYPE_REF_NUMBER, BLOCK_SKIP_REF_NUMBER, HAS_ORIGIN,
};
use yrs::updates::decoder::Decode;
use yrs::Update;

use super::*;
use crate::doc::split::parse::{ANY_ARRAY, ANY_NULL};
use crate::doc::split::{split_update_v1, SplitError};

fn assert_malformed(input: &[u8]) {
    match split_update_v1(input, 4) {
        Err(SplitError::Malformed(_)) => {}
        other => panic!("expected Malformed for {input:?}, got {other:?}"),
    }
}

#[test]
fn every_truncation_of_an_update_is_refused() {
    let update = rich_document(true);
    for len in 0..update.len() {
        let result = split_update_v1(&update[..len], 8);
        if len <= 8 {
            assert_eq!(result.expect("fast path"), vec![update[..len].to_vec()]);
        } else {
            assert!(
                matches!(result, Err(SplitError::Malformed(_))),
                "prefix of {len} bytes: {result:?}"
            );
        }
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut update = rich_document(true);
    update.push(0);
    assert_malformed(&update);
}

#[test]
fn absurd_numbers_are_refused() {
    // A var-int of more than 64 bits.
    assert_malformed(&[0xff; 11]);
    assert_malformed(&[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0,
    ]);
    // A count over 32 bits.
    assert_malformed(&[0xff, 0xff, 0xff, 0xff, 0x1f, 0, 0]);
    // Four billion structs announced, none there.
    assert_malformed(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0, 0, 0]);
    // A string of 2^40 bytes.
    let mut huge_string = vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x20];
    huge_string.extend_from_slice(b"abc");
    assert_malformed(&one_struct_update(
        1,
        &root_item(BLOCK_ITEM_STRING_REF_NUMBER, "t", &huge_string),
    ));
    // An Any array of 2^63 values.
    let mut huge_array = vec![1, ANY_ARRAY];
    huge_array.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert_malformed(&one_struct_update(
        1,
        &root_item(BLOCK_ITEM_ANY_REF_NUMBER, "t", &huge_array),
    ));
    // A clock that overflows: GC of length 10 at clock 2^32 - 5.
    assert_malformed(&[1, 1, 1, 0xfb, 0xff, 0xff, 0xff, 0x0f, 0, 10, 0]);
    // A deleted range that overflows.
    assert_malformed(&[0, 1, 1, 1, 0xfb, 0xff, 0xff, 0xff, 0x0f, 10]);
    // A delete set of four billion clients, none there.
    assert_malformed(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f, 1]);
    // Zero-length GC and Skip, an unknown content kind, an unknown Any tag, a weak link.
    assert_malformed(&one_struct_update(1, &[BLOCK_GC_REF_NUMBER, 0]));
    assert_malformed(&one_struct_update(1, &[BLOCK_SKIP_REF_NUMBER, 0]));
    assert_malformed(&one_struct_update(1, &root_item(11, "t", &[])));
    assert_malformed(&one_struct_update(
        1,
        &root_item(BLOCK_ITEM_ANY_REF_NUMBER, "t", &[1, 100]),
    ));
    assert_malformed(&one_struct_update(
        1,
        &root_item(BLOCK_ITEM_TYPE_REF_NUMBER, "t", &[7, 0]),
    ));
    // Invalid UTF-8 in a string.
    assert_malformed(&one_struct_update(
        1,
        &root_item(BLOCK_ITEM_STRING_REF_NUMBER, "t", &[2, 0xc3, 0x28]),
    ));
}

#[test]
fn deeply_nested_any_does_not_overflow_the_stack() {
    let depth = 1_000_000;
    let mut nested = vec![1];
    for _ in 0..depth {
        nested.extend_from_slice(&[ANY_ARRAY, 1]);
    }
    nested.push(ANY_NULL);
    let nested_item = root_item(BLOCK_ITEM_ANY_REF_NUMBER, "t", &nested);
    // Followed by a second item (its origin the first), so that the update can be cut.
    let mut update = vec![1, 2, 1, 0];
    update.extend_from_slice(&nested_item);
    update.extend_from_slice(&[
        BLOCK_ITEM_STRING_REF_NUMBER | HAS_ORIGIN,
        1,
        0,
        2,
        b'o',
        b'k',
        0,
    ]);
    // Valid as far as the encoding goes (yrs itself would recurse on it).
    let pieces = split_update_v1(&update, update.len() - 1).expect("split");
    assert_eq!(pieces.len(), 2);
    assert!(matches!(
        split_update_v1(&update, 100),
        Err(SplitError::Indivisible { .. })
    ));
    // Cut short: refused.
    assert_malformed(&update[..nested_item.len()]);
}

/// yrs' verdict on an input: `None` if it panics (it debug-asserts on client ids over
/// 53 bits, for one).
fn yrs_decodes(input: &[u8]) -> Option<bool> {
    catch_unwind(AssertUnwindSafe(|| Update::decode_v1(input).is_ok())).ok()
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let len = rng.random_range(0..300);
        let mut input: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        // Small leading counts get further into the parser.
        if let Some(first) = input.first_mut() {
            *first %= 4;
        }
        if let Ok(pieces) = split_update_v1(&input, 16) {
            accepted += 1;
            if input.len() > 16 {
                assert_ne!(yrs_decodes(&input), Some(false), "yrs refuses {input:?}");
                assert!(pieces.iter().all(|piece| piece.len() <= 16));
            }
        }
    }
    eprintln!("random inputs accepted: {accepted}");
}

#[test]
fn mutated_updates_never_panic() {
    let update = rich_document(true);
    let mut rng = StdRng::seed_from_u64(11);
    let mut accepted = 0;
    for _ in 0..3_000 {
        let mut input = update.clone();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..input.len());
            match rng.random_range(0..3) {
                0 => input[at] = rng.random(),
                1 => input.insert(at, rng.random()),
                _ => {
                    input.remove(at);
                }
            }
        }
        if let Ok(pieces) = split_update_v1(&input, 50) {
            accepted += 1;
            assert!(pieces.iter().all(|piece| piece.len() <= 50));
            if yrs_decodes(&input) == Some(true) {
                for piece in &pieces {
                    assert_ne!(yrs_decodes(piece), Some(false));
                }
            }
        }
    }
    eprintln!("mutated inputs accepted: {accepted}");
}
