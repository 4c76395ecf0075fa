//! Items whose parent is an item that is not a type, across the updates of one room.
//!
//! `check_references` refuses an update whose item names, as its parent, a struct of the same
//! update that is not a type. It cannot judge a parent outside the update: an update may name,
//! by ID, an item of an earlier update of the room, and that item may be a String (found by afl,
//! `fuzz/regressions/on_message/`). Each update alone then passes validation, but their merge
//! holds an item under a String parent, which yrs refuses or panics on, and which a room's state
//! must never hold (ARCHITECTURE.md invariant 22).
//!
//! Yjs integrates such an item as a GC struct of the same length: it finds no type behind the
//! parent and keeps only the clock range. [`gc_items_under_non_types`] does the same to the
//! room's updates before they are merged, byte for byte except for those items, so the merged
//! state is what a Yjs client holds, has the same state vector, and is sound.
use std::borrow::Cow;
use std::collections::HashMap;

use yrs::block::{BLOCK_ITEM_DELETED_REF_NUMBER, BLOCK_ITEM_TYPE_REF_NUMBER};

use super::parse::{parse_update, Content, Id, ParsedUpdate, StructSpan};
use super::SplitError;
use crate::codec::write_var_uint;

/// The info byte of a GC struct (then its length).
const GC_INFO: u8 = 0;

/// A room's updates, ready to merge.
pub struct WithoutOrphans<'a> {
    /// In the order given; borrowed where nothing changed.
    pub updates: Vec<Cow<'a, [u8]>>,
    /// Items written as GC.
    pub replaced: usize,
}

/// The updates with every item whose parent ID names, in any of them, an item that is neither a
/// type nor deleted content, written as a GC struct of its length instead. An update without such
/// an item is returned as it is (borrowed).
pub fn gc_items_under_non_types<B: AsRef<[u8]>>(
    updates: &[B],
) -> Result<WithoutOrphans<'_>, SplitError> {
    if updates.len() < 2 {
        // One update was checked alone when it was validated (or written by this merge).
        return Ok(WithoutOrphans {
            updates: updates.iter().map(|u| Cow::Borrowed(u.as_ref())).collect(),
            replaced: 0,
        });
    }
    let parsed: Vec<ParsedUpdate> = updates
        .iter()
        .map(|update| parse_update(update.as_ref()))
        .collect::<Result<_, _>>()?;
    let index: Vec<HashMap<u64, Vec<&StructSpan>>> = parsed.iter().map(by_client).collect();
    let mut replaced = 0;
    let mut out = Vec::with_capacity(updates.len());
    for (update, parsed) in updates.iter().zip(&parsed) {
        let update = update.as_ref();
        let mut orphans: Vec<&StructSpan> = parsed
            .sections
            .iter()
            .flat_map(|section| &section.structs)
            .filter(|span| {
                span.refs
                    .parent
                    .is_some_and(|parent| names_a_non_type(&index, parent))
            })
            .collect();
        if orphans.is_empty() {
            out.push(Cow::Borrowed(update));
            continue;
        }
        replaced += orphans.len();
        orphans.sort_by_key(|span| span.bytes.start);
        out.push(Cow::Owned(with_gc_structs(update, &orphans)));
    }
    Ok(WithoutOrphans {
        updates: out,
        replaced,
    })
}

/// An update's structs by client, in clock order.
fn by_client(parsed: &ParsedUpdate) -> HashMap<u64, Vec<&StructSpan>> {
    let mut map: HashMap<u64, Vec<&StructSpan>> = HashMap::new();
    for section in &parsed.sections {
        map.entry(section.client)
            .or_default()
            .extend(section.structs.iter());
    }
    for spans in map.values_mut() {
        spans.sort_by_key(|span| span.clock);
    }
    map
}

/// Whether some update holds, at `id`, an item that cannot be a parent.
fn names_a_non_type(index: &[HashMap<u64, Vec<&StructSpan>>], (client, clock): Id) -> bool {
    index.iter().any(|update| {
        let Some(spans) = update.get(&client) else {
            return false;
        };
        // Within one update a client's structs do not overlap (`check_references` refuses a
        // client written twice; yrs writes each once), so one struct at most covers `clock`.
        let at = spans.partition_point(|span| span.clock <= clock);
        at.checked_sub(1).map(|i| spans[i]).is_some_and(|span| {
            u64::from(clock) < u64::from(span.clock) + u64::from(span.len)
                && matches!(span.content, Content::Item(kind)
                    if kind != BLOCK_ITEM_TYPE_REF_NUMBER && kind != BLOCK_ITEM_DELETED_REF_NUMBER)
        })
    })
}

/// `update` with each of `spans` (sorted by position) written as a GC struct of its length: the
/// section headers keep their counts and clocks, so nothing else moves.
fn with_gc_structs(update: &[u8], spans: &[&StructSpan]) -> Vec<u8> {
    let mut out = Vec::with_capacity(update.len());
    let mut copied_to = 0;
    for span in spans {
        out.extend_from_slice(&update[copied_to..span.bytes.start]);
        out.push(GC_INFO);
        write_var_uint(&mut out, u64::from(span.len));
        copied_to = span.bytes.end;
    }
    out.extend_from_slice(&update[copied_to..]);
    out
}
