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
use std::collections::{HashMap, HashSet};

use yrs::block::{BLOCK_ITEM_DELETED_REF_NUMBER, BLOCK_ITEM_TYPE_REF_NUMBER};

use super::parse::{parse_update, Content, Id, ParsedUpdate, StructSpan};
use super::SplitError;
use crate::codec::write_var_uint;

/// The info byte of a GC struct (then its length).
const GC_INFO: u8 = 0;

/// A room's snapshot and log, ready to merge.
pub struct WithoutOrphans<'a> {
    /// The snapshot; borrowed where nothing changed.
    pub base: Option<Cow<'a, [u8]>>,
    /// The log's updates in the order given; borrowed where nothing changed.
    pub log: Vec<Cow<'a, [u8]>>,
    /// Items written as GC.
    pub replaced: usize,
    /// Whether an update holds an item written under a map key; `None` when not every update
    /// was read. Without one the merged state holds no map entry (`map_entries` needs not read
    /// it).
    pub map_keys: Option<bool>,
}

/// The snapshot and log with every item whose parent ID names, in either, an item that is
/// neither a type nor deleted content, written as a GC struct of its length instead. An update
/// without such an item is returned as it is (borrowed).
///
/// The snapshot is read only when it could hold either side of such a pair with the log:
/// - a log item names a parent by ID: the snapshot may hold it, even where the log holds the
///   same ID as another kind (found by afl: the log's GC inside the snapshot's longer String,
///   which yrs' merge keeps);
/// - the log holds content that cannot be a parent (a String, say): a snapshot item may name it.
///   Such an item waited in the snapshot for a parent that had not arrived when it was merged
///   (found by afl, `fuzz/regressions/on_message/snapshot-item-under-a-string-parent-sent-later`).
///
/// A log of nothing but deletions and root-level types costs one read of each log entry. A log
/// of typing holds Strings, so the snapshot is read too: one more pass over it beside yrs' own
/// merge, priced in benches/MICROBENCHMARKS.md (`compaction`).
pub fn gc_items_under_non_types<'a, B: AsRef<[u8]>>(
    base: Option<&'a [u8]>,
    log: &'a [B],
) -> Result<WithoutOrphans<'a>, SplitError> {
    let unchanged = |map_keys| WithoutOrphans {
        base: base.map(Cow::Borrowed),
        log: log.iter().map(|u| Cow::Borrowed(u.as_ref())).collect(),
        replaced: 0,
        map_keys,
    };
    if log.is_empty() || (base.is_none() && log.len() == 1) {
        // One update alone was checked when it was validated.
        return Ok(unchanged(None));
    }
    let log_parsed: Vec<ParsedUpdate> = log
        .iter()
        .map(|update| parse_update(update.as_ref()))
        .collect::<Result<_, _>>()?;
    // A parent the log holds may be held by the snapshot too, at the same ID, as another kind
    // (afl, seventh run: the log's GC inside the snapshot's longer String, which the merge keeps).
    let read_base = base.is_some()
        && log_parsed
            .iter()
            .flat_map(|update| update.sections.iter().flat_map(|s| &s.structs))
            .any(|span| is_non_type(span.content) || span.refs.parent.is_some());
    let base_parsed = match base {
        Some(base) if read_base => Some(parse_update(base)?),
        _ => None,
    };
    // Every update read, the snapshot first: kinds are looked up across all of them.
    let updates: Vec<(&'a [u8], &ParsedUpdate)> = base
        .filter(|_| read_base)
        .into_iter()
        .zip(&base_parsed)
        .chain(log.iter().map(AsRef::as_ref).zip(&log_parsed))
        .collect();
    let map_keys = (base.is_none() || read_base).then(|| {
        updates
            .iter()
            .flat_map(|(_, parsed)| parsed.sections.iter().flat_map(|s| &s.structs))
            .any(|span| span.refs.parent_sub)
    });
    let named = named_parents(updates.iter().map(|&(_, parsed)| parsed));
    if named.is_empty() {
        return Ok(unchanged(map_keys));
    }
    let kinds = Kinds::of(updates.iter().map(|&(_, parsed)| parsed), &clients(&named));
    let mut replaced = 0;
    let mut out: Vec<Cow<'a, [u8]>> = Vec::with_capacity(updates.len());
    for (update, parsed) in updates {
        let mut orphans: Vec<&StructSpan> = parsed
            .sections
            .iter()
            .flat_map(|section| &section.structs)
            .filter(|span| span.refs.parent.is_some_and(|id| kinds.is_non_type(id)))
            .collect();
        if orphans.is_empty() {
            out.push(Cow::Borrowed(update));
            continue;
        }
        replaced += orphans.len();
        orphans.sort_by_key(|span| span.bytes.start);
        out.push(Cow::Owned(with_gc_structs(update, &orphans)));
    }
    let mut out = out.into_iter();
    let base = match base {
        Some(_) if read_base => out.next(),
        base => base.map(Cow::Borrowed),
    };
    Ok(WithoutOrphans {
        base,
        log: out.collect(),
        replaced,
        map_keys,
    })
}

fn is_non_type(content: Content) -> bool {
    matches!(content, Content::Item(kind)
        if kind != BLOCK_ITEM_TYPE_REF_NUMBER && kind != BLOCK_ITEM_DELETED_REF_NUMBER)
}

/// The parent IDs items of `updates` name.
fn named_parents<'p>(updates: impl IntoIterator<Item = &'p ParsedUpdate>) -> Vec<Id> {
    updates
        .into_iter()
        .flat_map(|p| p.sections.iter().flat_map(|s| &s.structs))
        .filter_map(|span| span.refs.parent)
        .collect()
}

fn clients(ids: &[Id]) -> HashSet<u64> {
    ids.iter().map(|&(client, _)| client).collect()
}

/// What the structs of some clients are, by clock, from every update read so far. Updates may
/// overlap (a client resends what the room has).
#[derive(Default)]
struct Kinds {
    by_client: HashMap<u64, ClientSpans>,
}

#[derive(Default)]
struct ClientSpans {
    /// (first clock, length, kind), sorted by first clock.
    spans: Vec<(u32, u32, Content)>,
    /// The longest length: no struct starting further back than this covers a clock.
    longest: u32,
}

impl Kinds {
    /// The structs of `updates` whose client is in `clients`.
    fn of<'p>(updates: impl IntoIterator<Item = &'p ParsedUpdate>, clients: &HashSet<u64>) -> Self {
        let mut kinds = Kinds::default();
        for update in updates {
            kinds.add(update, clients);
        }
        kinds.sort();
        kinds
    }

    /// Records the structs of `update` whose client is in `clients`.
    fn add(&mut self, update: &ParsedUpdate, clients: &HashSet<u64>) {
        for section in &update.sections {
            if !clients.contains(&section.client) {
                continue;
            }
            let client = self.by_client.entry(section.client).or_default();
            for span in &section.structs {
                client.spans.push((span.clock, span.len, span.content));
                client.longest = client.longest.max(span.len);
            }
        }
    }

    fn sort(&mut self) {
        for client in self.by_client.values_mut() {
            client.spans.sort_unstable_by_key(|&(clock, _, _)| clock);
        }
    }

    /// The kinds of every struct that covers `id`.
    fn at(&self, (client, clock): Id) -> impl Iterator<Item = Content> + '_ {
        let (spans, longest) = self
            .by_client
            .get(&client)
            .map_or((&[][..], 0), |c| (c.spans.as_slice(), c.longest));
        let end = spans.partition_point(|&(start, _, _)| start <= clock);
        let clock = u64::from(clock);
        spans[..end]
            .iter()
            .rev()
            .take_while(move |&&(start, _, _)| u64::from(start) + u64::from(longest) > clock)
            .filter(move |&&(start, len, _)| clock < u64::from(start) + u64::from(len))
            .map(|&(_, _, content)| content)
    }

    /// Whether some update holds, at `id`, an item that cannot be a parent.
    fn is_non_type(&self, id: Id) -> bool {
        self.at(id).any(is_non_type)
    }
}

/// `update` with each of `spans` (sorted by position) written as a GC struct of its length: the
/// section headers keep their counts and clocks, so nothing else moves.
pub(super) fn with_gc_structs(update: &[u8], spans: &[&StructSpan]) -> Vec<u8> {
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
