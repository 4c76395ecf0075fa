//! Cutting a Yjs update (v1 encoding) into several valid v1 updates that each fit a byte limit.
//!
//! API Gateway WebSocket messages are limited to 128 KB, so a server's sync-step-2 answer for a
//! large document has to travel as several updates. yrs 0.28.1 has no public way to cut an update
//! under a byte limit, and cuts made with `encode_state_from_snapshot` are invalid when they fall
//! inside an item, so this module walks the v1 encoding itself.
//!
//! The v1 encoding (every number is a lib0 var-uint unless said otherwise):
//!
//! ```text
//! update     = client count, { section }, delete set
//! section    = struct count, client, clock of the first struct, { struct }
//! struct     = GC:   info 0,  length
//!            | Skip: info 10, length
//!            | item: info, [origin ID], [right origin ID],
//!                    [parent (root name or ID), [parent sub]]  -- only without both origins
//!                    content                                   -- its kind is in the info byte
//! delete set = client count, { client, range count, { clock, length } }
//! ```
//!
//! A struct's clock follows from its place in its section; everything else it needs is in its own
//! bytes. So a piece is made of runs of consecutive structs of one client, copied byte for byte
//! under a new section header (client, clock of the run's first struct, count). The delete set
//! travels in pieces of its own. Applying the pieces in any order gives the original's state:
//! yrs and Yjs keep structs whose predecessors have not arrived yet (and deletions of structs they
//! do not have yet) pending until they do.
//!
//! A String, Any or JSON item too big for a piece is cut the way Yjs's `splitItem` and
//! `Item.write(encoder, offset)` do it: the first part is the item's own encoding with shorter
//! content; every later part gets as origin the last unit of the part before it (same client,
//! clock just before its own), keeps the right origin, and leaves the parent out (the receiver
//! takes it from the origin). String lengths and clocks count UTF-16 code units, and cuts fall
//! only on `char` boundaries, so a surrogate pair is never split. Every other struct either keeps
//! its size whatever its length (GC, Skip, Deleted content: cutting would not make it smaller) or
//! holds one value that cannot be cut (Binary, Embed, Format, Type, Doc); one that does not fit a
//! piece on its own is [`SplitError::Indivisible`], as is a single char or element that does not.
//!
//! The input comes from the network: every read goes through the crate's one lib0 reader
//! ([`crate::codec::Reader`]: bounds-checked, lengths checked against the bytes left before
//! anything is allocated for them, var-ints over 64 bits refused), and nested `Any` values are
//! walked with an explicit stack rather than recursion. The whole update is checked before any
//! piece is made, so an update is either cut entirely or refused.
//!
//! Where yrs 0.28.1 and Yjs disagree on the encoding, this module follows yrs, which produced the
//! updates the server sends: an XmlHook type carries no hook name (Yjs writes one), and weak link
//! types (yrs' optional "weak" feature, not enabled here) are refused as malformed. JSON content
//! (old Yjs) is read as Yjs and yrs' encoder write it, a count then that many strings; yrs 0.28.1's
//! decoder reads one string more.
//!
//! The module's files, in the order a split runs:
//! - `parse`: reads and checks the whole update, recording where each struct's bytes lie;
//! - `structs`: fills pieces with runs of structs, byte for byte;
//! - `cut`: cuts one String, Any or JSON item too big for a piece into parts;
//! - `delete_set`: packs the delete set into pieces of its own.
//!
//! `state_vector` reads an update's state vector the same way, without yrs' decoder (answering a
//! sync step 1 from a large room needs it; yrs builds every block first).
//!
//! `integration` tells whether a state would integrate whole into an empty document; a state
//! that would not is cut around its pending structs ([`crate::doc::answer_sync_step1`]).
//!
//! `references` uses the same reading to check the IDs an update's items name, which
//! `validate_update` needs: an update whose items name impossible structs splits into pieces that
//! do not add up to it. `non_type_parents` does what that check cannot do for one update alone:
//! across a room's updates, it makes an item whose parent is not a type the GC struct Yjs makes
//! of it.
mod cut;
mod delete_set;
mod integration;
mod map_entries;
mod non_type_parents;
mod parse;
mod references;
mod state_vector;
mod structs;
#[cfg(test)]
mod tests;

use crate::codec::CodecError;
use delete_set::pack_delete_set;
pub use integration::integrates_whole;
pub use map_entries::gc_items_naming_live_entries;
pub use non_type_parents::{gc_items_under_non_types, WithoutOrphans};
use parse::parse_update;
pub use references::{check_references, CLOCK_LIMIT};
pub use state_vector::state_vector_v1;
use structs::StructPacker;

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// The input is not a v1 update this module can read (what and at which byte is said).
    #[error("malformed update: {0}")]
    Malformed(String),
    /// A struct that cannot be cut (or one char or element of one that can) needs a piece of
    /// `size` bytes on its own, more than the `max` allowed.
    #[error("an uncuttable part needs a {size}-byte piece, over the {max}-byte limit")]
    Indivisible { size: usize, max: usize },
}

/// Cuts a Yjs update (v1 encoding) into several valid v1 updates, each at most `max_piece_bytes`
/// long, whose union is the original update: applying all pieces, in any order, to a Doc gives the
/// same state as applying the original.
///
/// An update that already fits is returned unchanged (and unchecked) as the only piece.
/// Otherwise the pieces follow the original's order: structs first, then the delete set. A
/// receiver applying them in that order has nothing waiting for long; any other order works too.
pub fn split_update_v1(update: &[u8], max_piece_bytes: usize) -> Result<Vec<Vec<u8>>, SplitError> {
    if update.len() <= max_piece_bytes {
        return Ok(vec![update.to_vec()]);
    }
    split_parsed(update, &parse_update(update)?, max_piece_bytes)
}

/// [`split_update_v1`] for a state that [`integrates_whole`], `None` for one that does not,
/// reading it once (the sync answer to a new client of a large room needs both).
pub fn split_if_it_integrates_whole(
    update: &[u8],
    max_piece_bytes: usize,
) -> Result<Option<Vec<Vec<u8>>>, SplitError> {
    if update.len() <= max_piece_bytes {
        return Ok(Some(vec![update.to_vec()]));
    }
    let parsed = parse_update(update)?;
    if !integration::parsed_integrates_whole(&parsed) {
        return Ok(None);
    }
    split_parsed(update, &parsed, max_piece_bytes).map(Some)
}

fn split_parsed(
    update: &[u8],
    parsed: &parse::ParsedUpdate,
    max_piece_bytes: usize,
) -> Result<Vec<Vec<u8>>, SplitError> {
    let mut packer = StructPacker::new(max_piece_bytes);
    let mut deletions = map_entries::DeletionsKept::of(parsed);
    for section in &parsed.sections {
        for span in section.structs.iter().filter(|span| !span.is_skip) {
            let deleted = deletions.carried_with(section.client, span);
            packer.place(update, section.client, span, &deleted)?;
        }
    }
    let mut pieces = packer.finish();
    pack_delete_set(&parsed.delete_set, max_piece_bytes, &mut pieces)?;

    if pieces.is_empty() {
        // Nothing but Skips and empty delete set entries: the union is the empty update.
        if EMPTY_UPDATE.len() > max_piece_bytes {
            return Err(SplitError::Indivisible {
                size: EMPTY_UPDATE.len(),
                max: max_piece_bytes,
            });
        }
        pieces.push(EMPTY_UPDATE.to_vec());
    }
    Ok(pieces)
}

/// No sections and an empty delete set.
const EMPTY_UPDATE: [u8; 2] = [0, 0];

impl From<CodecError> for SplitError {
    fn from(error: CodecError) -> Self {
        SplitError::Malformed(error.to_string())
    }
}
