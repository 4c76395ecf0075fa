//! Items that name the inside of a live map entry.
//!
//! Yjs writes one value per item under a map key, and a new value names the last unit of the
//! value before it. Only deleted values merge into entries of several units: a client that
//! overwrote a key twice holds its two old values as one deleted struct, and a value another
//! client set meanwhile still names the first of them, inside that struct. Yjs and yrs both
//! split the deleted struct there, and nothing is read from it.
//!
//! A *live* entry of several units is another matter. No Yjs document writes one, and yrs reads
//! its halves, once an item names its inside, as two values of the key: its own encoding of the
//! document then rebuilds another (found by afl, `fuzz/regressions/update/`). So:
//! - `check_references` refuses an update with an item naming the inside of a live entry of the
//!   same update;
//! - [`gc_items_naming_live_entries`] makes such an item a GC struct in a room's merged state,
//!   where the entry and the item came in different updates, each valid alone (found by afl,
//!   `fuzz/regressions/on_message/`): the room's state must pass the checks its updates pass
//!   (ARCHITECTURE.md invariant 27).
//!
//! An entry is live unless its content is Deleted (a document that collects garbage) or the
//! update's delete set covers it whole (one that does not).
use std::cell::OnceCell;
use std::collections::HashMap;

use yrs::block::BLOCK_ITEM_DELETED_REF_NUMBER;

use super::non_type_parents::with_gc_structs;
use super::parse::{parse_update, Content, DeleteSetEntry, Id, ParsedUpdate, StructSpan};
use super::SplitError;

/// An update's structs by client, in clock order, to find what an ID names.
pub(super) struct StructIndex<'a> {
    by_client: HashMap<u64, Vec<&'a StructSpan>>,
    delete_set: &'a [DeleteSetEntry],
    /// The delete set as sorted, disjoint (start, end) clock ranges by client, made the first
    /// time an entry's liveness is asked (rarely: most updates name no inside of an entry).
    deleted: OnceCell<HashMap<u64, Vec<(u64, u64)>>>,
}

impl<'a> StructIndex<'a> {
    /// Refuses an update that writes a client in more than one section: a document writes its
    /// structs grouped by client, once each, and yrs decodes a client written twice into
    /// overlapping structs (encoding the document they make read freed memory, found by afl).
    pub(super) fn of(parsed: &'a ParsedUpdate) -> Result<Self, SplitError> {
        let mut by_client: HashMap<u64, Vec<&StructSpan>> = HashMap::new();
        for section in &parsed.sections {
            if by_client.contains_key(&section.client) {
                return Err(SplitError::Malformed(format!(
                    "client {} has more than one section",
                    section.client
                )));
            }
            let mut spans: Vec<&StructSpan> = section.structs.iter().collect();
            spans.sort_by_key(|span| span.clock);
            by_client.insert(section.client, spans);
        }
        Ok(StructIndex {
            by_client,
            delete_set: &parsed.delete_set,
            deleted: OnceCell::new(),
        })
    }

    /// The struct of this update holding `id`, if any.
    pub(super) fn struct_at(&self, (client, clock): Id) -> Option<&'a StructSpan> {
        let spans = self.by_client.get(&client)?;
        let at = spans.partition_point(|span| span.clock <= clock);
        let span = spans[at.checked_sub(1)?];
        (u64::from(clock) < u64::from(span.clock) + u64::from(span.len)).then_some(span)
    }

    /// Why `span` may not stand: it names a unit inside a live map entry of this update (an
    /// item names only the last unit of a value it comes after, and the first of one it comes
    /// before).
    pub(super) fn names_inside_of_live_entry(&self, span: &StructSpan) -> Option<String> {
        let ends = [
            (span.refs.origin, End::Last),
            (span.refs.right_origin, End::First),
        ];
        ends.into_iter().find_map(|(id, end)| {
            let (client, at) = id?;
            let named = self.struct_at((client, at))?;
            let (start, last) = (named.clock, named.clock + named.len.saturating_sub(1));
            let at_its_end = match end {
                End::Last => at == last,
                End::First => at == start,
            };
            (named.map_entry && !at_its_end && self.is_live(client, named)).then(|| {
                format!(
                    "names the inside of a live map entry of {} units, <{client}#{}>",
                    named.len, named.clock
                )
            })
        })
    }

    fn is_live(&self, client: u64, span: &StructSpan) -> bool {
        if has_deleted_content(span) {
            return false;
        }
        let deleted = self.deleted.get_or_init(|| deleted_ranges(self.delete_set));
        let ranges = deleted.get(&client).map_or(&[][..], Vec::as_slice);
        let (start, end) = (
            u64::from(span.clock),
            u64::from(span.clock) + u64::from(span.len),
        );
        // The one disjoint range that could hold `start`: the last starting at or before it.
        let at = ranges.partition_point(|&(from, _)| from <= start);
        !at.checked_sub(1)
            .is_some_and(|i| ranges[i].0 <= start && ranges[i].1 >= end)
    }
}

fn has_deleted_content(span: &StructSpan) -> bool {
    matches!(span.content, Content::Item(BLOCK_ITEM_DELETED_REF_NUMBER))
}

/// Which unit of a struct another may name.
enum End {
    Last,
    First,
}

/// The deletions a piece of a split carries with its structs: a deleted map entry of several
/// units whose content was kept is live but for the delete set, which travels in pieces of its
/// own, so the piece holding the entry (and maybe an item naming its inside) carries the part of
/// the delete set over the entry too. Without it the piece alone is refused (found by a unit
/// test of concurrent sets of one key in a document that collects no garbage).
pub(super) struct DeletionsKept<'a> {
    delete_set: &'a [DeleteSetEntry],
    /// Made the first time an entry needs it.
    deleted: Option<HashMap<u64, Vec<(u64, u64)>>>,
}

impl<'a> DeletionsKept<'a> {
    pub(super) fn of(parsed: &'a ParsedUpdate) -> Self {
        DeletionsKept {
            delete_set: &parsed.delete_set,
            deleted: None,
        }
    }

    /// The (clock, length) ranges of the delete set over `span`, if it is such an entry.
    pub(super) fn carried_with(&mut self, client: u64, span: &StructSpan) -> Vec<(u32, u32)> {
        if !span.map_entry || span.len < 2 || has_deleted_content(span) {
            return Vec::new();
        }
        let deleted = self
            .deleted
            .get_or_insert_with(|| deleted_ranges(self.delete_set));
        let ranges = deleted.get(&client).map_or(&[][..], Vec::as_slice);
        let (start, end) = (
            u64::from(span.clock),
            u64::from(span.clock) + u64::from(span.len),
        );
        let first = ranges.partition_point(|&(_, to)| to <= start);
        ranges[first..]
            .iter()
            .take_while(|&&(from, _)| from < end)
            .filter_map(|&(from, to)| {
                let (from, to) = (from.max(start), to.min(end));
                // Within the span's clocks, which fit a u32.
                Some((u32::try_from(from).ok()?, u32::try_from(to - from).ok()?))
            })
            .collect()
    }
}

/// yrs keeps only the last delete set entry of a client; its ranges may come in any order and
/// overlap (a hostile update's), so they are sorted and joined here.
fn deleted_ranges(delete_set: &[DeleteSetEntry]) -> HashMap<u64, Vec<(u64, u64)>> {
    let mut by_client = HashMap::new();
    for entry in delete_set {
        let mut ranges: Vec<(u64, u64)> = entry
            .ranges
            .iter()
            .map(|&(clock, len)| (u64::from(clock), u64::from(clock) + u64::from(len)))
            .collect();
        ranges.sort_unstable();
        let mut joined: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (from, to) in ranges {
            match joined.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(to),
                _ => joined.push((from, to)),
            }
        }
        by_client.insert(entry.client, joined);
    }
    by_client
}

/// A room's merged state with every item that names the inside of a live map entry written as
/// a GC struct of its length, and how many; `None` when it has none (the state is unchanged).
///
/// A Yjs client that got both updates relayed holds the item (after splitting the entry), and
/// one that syncs from the state holds a GC struct there: they differ only in a room where a
/// client wrote a live entry of several units, which no Yjs client does. The state itself must
/// be one that yrs encodes back as it reads it, and that the server's own checks take.
pub fn gc_items_naming_live_entries(state: &[u8]) -> Result<Option<(Vec<u8>, usize)>, SplitError> {
    let parsed = parse_update(state)?;
    // Most states hold no entry of several units that is live by its content: nothing to look
    // up then (an entry of Deleted content is never live).
    let candidates = parsed
        .sections
        .iter()
        .flat_map(|section| &section.structs)
        .any(|span| span.map_entry && span.len > 1 && !has_deleted_content(span));
    if !candidates {
        return Ok(None);
    }
    let index = StructIndex::of(&parsed)?;
    let mut naming: Vec<&StructSpan> = parsed
        .sections
        .iter()
        .flat_map(|section| &section.structs)
        .filter(|span| index.names_inside_of_live_entry(span).is_some())
        .collect();
    if naming.is_empty() {
        return Ok(None);
    }
    naming.sort_by_key(|span| span.bytes.start);
    Ok(Some((with_gc_structs(state, &naming), naming.len())))
}
