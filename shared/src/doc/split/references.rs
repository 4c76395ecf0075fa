//! Checks the IDs an update's items name, which yrs only looks at when it integrates an item.
//!
//! yrs integrates an update's structs in clock order and keeps the ones whose references are
//! missing pending, unchecked. So an update whose items name what no real Yjs document could
//! holds pending forever: yrs accepts it, the server stores it, and the trouble starts later,
//! when the same structs arrive split over several updates (the sync step 2 pieces of this
//! module) and yrs integrates some of them after all: the pieces then build another document
//! than the whole, or one of them is refused. Fuzzing found both (fuzz/regressions/update/).
//!
//! These rules hold for every update a Yjs 13 or yrs document writes, and this module refuses an
//! update that breaks one:
//! - an item names only structs that existed when it was made, so a struct of its own client
//!   that it names comes before it (a lower clock);
//! - a parent written as an ID names a type (or content deleted since); when that struct is in
//!   the same update, its kind is known here;
//! - clocks stay below 2^30: a client's clock counts its own insertions in one session, and no
//!   editing session makes a billion; near 2^31 a piece of a valid update fails to apply alone;
//! - each client has one section: a document writes its structs grouped by client, once each;
//!   yrs decodes a client written twice into overlapping structs, and encoding the document
//!   they make read freed memory (an allocation of 6 * 10^18 bytes: an abort, found by afl);
//! - an item names no unit inside a live map entry (a struct under a key, its own or inherited
//!   from its origin, that is not deleted): no Yjs document writes a live value of several
//!   units, and yrs reads the halves of one whose inside is named as two values of the key, so
//!   its own encoding of the document rebuilds another (found by afl). Deleted values merge, and
//!   a value set concurrently names the inside of them, which Yjs writes every day
//!   (`map_entries`);
//! - no JSON content: Yjs 13 writes Any content instead (JSON is read only for documents of older
//!   Yjs), and yrs 0.28.1 reads JSON content with one string more than its count, so the same
//!   bytes mean different things to Yjs and to yrs, and a cut JSON item cannot be read.
use yrs::block::{
    BLOCK_ITEM_DELETED_REF_NUMBER, BLOCK_ITEM_JSON_REF_NUMBER, BLOCK_ITEM_TYPE_REF_NUMBER,
};

use super::map_entries::StructIndex;
use super::parse::{parse_update, Content, Id};
use super::SplitError;

/// The first clock no struct may reach (see the module's rules).
pub const CLOCK_LIMIT: u64 = 1 << 30;

/// Refuses an update (v1) whose items name a later struct of their own client, or a parent in the
/// same update that is not a type, or the inside of a live map entry, or that reaches
/// [`CLOCK_LIMIT`] or holds JSON content.
/// Everything [`super::split_update_v1`] refuses as malformed is refused here too.
pub fn check_references(update: &[u8]) -> Result<(), SplitError> {
    let parsed = parse_update(update)?;
    let index = StructIndex::of(&parsed)?;
    for section in &parsed.sections {
        for span in &section.structs {
            if u64::from(span.clock) + u64::from(span.len) > CLOCK_LIMIT {
                return Err(refused(
                    section.client,
                    span.clock,
                    format!("ends past clock {CLOCK_LIMIT}"),
                ));
            }
            if matches!(span.content, Content::Item(BLOCK_ITEM_JSON_REF_NUMBER)) {
                return Err(refused(
                    section.client,
                    span.clock,
                    "has JSON content (old Yjs; yrs misreads it)".to_string(),
                ));
            }
            if let Some(why) = index.names_inside_of_live_entry(span) {
                return Err(refused(section.client, span.clock, why));
            }
            let named = [span.refs.origin, span.refs.right_origin, span.refs.parent];
            for (client, clock) in named.into_iter().flatten() {
                if client == section.client && clock >= span.clock {
                    return Err(refused(
                        section.client,
                        span.clock,
                        format!("names <{client}#{clock}>, which is not before it"),
                    ));
                }
            }
            if let Some(parent) = span.refs.parent {
                check_parent(&index, parent).map_err(|kind| {
                    refused(
                        section.client,
                        span.clock,
                        format!(
                            "has as parent <{}#{}>, {kind}, not a type",
                            parent.0, parent.1
                        ),
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// `Err(what it is)` when the parent is in this update and is an item that yrs refuses as a
/// parent (anything but a type or deleted content).
fn check_parent(index: &StructIndex<'_>, parent: Id) -> Result<(), String> {
    let Some(span) = index.struct_at(parent) else {
        return Ok(());
    };
    match span.content {
        Content::Gc | Content::Skip => Ok(()),
        Content::Item(BLOCK_ITEM_TYPE_REF_NUMBER | BLOCK_ITEM_DELETED_REF_NUMBER) => Ok(()),
        Content::Item(kind) => Err(format!("an item of content kind {kind}")),
    }
}

fn refused(client: u64, clock: u32, what: String) -> SplitError {
    SplitError::Malformed(format!("item <{client}#{clock}> {what}"))
}
