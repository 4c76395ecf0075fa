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
//! - an item names no unit inside a map entry (a struct under a key, its own or inherited from its
//!   origin): Yjs writes one value per item under a key and merges only deleted ones, and a new
//!   value names the last unit of the one before; yrs reads values of many units, splits one
//!   when an item names its inside, and then reads the halves as two values of the key, so its
//!   own encoding of the document rebuilds another (found by afl). A long entry alone is fine:
//!   deleted values merge, and their delete set may travel in another piece;
//! - no JSON content: Yjs 13 writes Any content instead (JSON is read only for documents of older
//!   Yjs), and yrs 0.28.1 reads JSON content with one string more than its count, so the same
//!   bytes mean different things to Yjs and to yrs, and a cut JSON item cannot be read.
use std::collections::HashMap;

use yrs::block::{
    BLOCK_ITEM_DELETED_REF_NUMBER, BLOCK_ITEM_JSON_REF_NUMBER, BLOCK_ITEM_TYPE_REF_NUMBER,
};

use super::parse::{parse_update, Content, Id, StructSpan};
use super::SplitError;

/// The first clock no struct may reach (see the module's rules).
pub const CLOCK_LIMIT: u64 = 1 << 30;

/// Refuses an update (v1) whose items name a later struct of their own client, or a parent in the
/// same update that is not a type, or the inside of a map entry, or that reaches [`CLOCK_LIMIT`]
/// or holds JSON content.
/// Everything [`super::split_update_v1`] refuses as malformed is refused here too.
pub fn check_references(update: &[u8]) -> Result<(), SplitError> {
    let parsed = parse_update(update)?;
    // The update's structs by client, in clock order, to find what a parent ID names.
    let mut by_client: HashMap<u64, Vec<&StructSpan>> = HashMap::new();
    for section in &parsed.sections {
        if by_client.contains_key(&section.client) {
            return Err(SplitError::Malformed(format!(
                "client {} has more than one section",
                section.client
            )));
        }
        by_client
            .entry(section.client)
            .or_default()
            .extend(section.structs.iter());
    }
    for spans in by_client.values_mut() {
        spans.sort_by_key(|span| span.clock);
    }
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
            // Naming a unit inside a map entry makes yrs split it, and the halves then read as
            // two values of the key: an item names only the last unit of a value it comes after,
            // and the first of one it comes before.
            let ends = [
                (span.refs.origin, End::Last),
                (span.refs.right_origin, End::First),
            ];
            for (id, end) in ends {
                let Some((client, at)) = id else { continue };
                let Some(named) = struct_at(&by_client, (client, at)) else {
                    continue;
                };
                let (start, last) = (named.clock, named.clock + named.len.saturating_sub(1));
                let fine = match end {
                    End::Last => at == last,
                    End::First => at == start,
                };
                if named.map_entry && !fine {
                    return Err(refused(
                        section.client,
                        span.clock,
                        format!(
                            "names the inside of a map entry of {} units, <{client}#{}>",
                            named.len, named.clock
                        ),
                    ));
                }
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
                check_parent(&by_client, parent).map_err(|kind| {
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
fn check_parent(
    by_client: &HashMap<u64, Vec<&StructSpan>>,
    (client, clock): Id,
) -> Result<(), String> {
    let Some(span) = struct_at(by_client, (client, clock)) else {
        return Ok(());
    };
    match span.content {
        Content::Gc | Content::Skip => Ok(()),
        Content::Item(BLOCK_ITEM_TYPE_REF_NUMBER | BLOCK_ITEM_DELETED_REF_NUMBER) => Ok(()),
        Content::Item(kind) => Err(format!("an item of content kind {kind}")),
    }
}

/// Which unit of a struct another may name.
enum End {
    Last,
    First,
}

/// The struct of this update holding `id`, if any.
fn struct_at<'a>(
    by_client: &HashMap<u64, Vec<&'a StructSpan>>,
    (client, clock): Id,
) -> Option<&'a StructSpan> {
    let spans = by_client.get(&client)?;
    let at = spans.partition_point(|span| span.clock <= clock);
    let span = spans[at.checked_sub(1)?];
    (u64::from(clock) < u64::from(span.clock) + u64::from(span.len)).then_some(span)
}

fn refused(client: u64, clock: u32, what: String) -> SplitError {
    SplitError::Malformed(format!("item <{client}#{clock}> {what}"))
}
