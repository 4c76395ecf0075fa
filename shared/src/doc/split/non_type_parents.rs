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

/// A room's log, ready to merge onto its snapshot.
pub struct WithoutOrphans<'a> {
    /// The log's updates in the order given; borrowed where nothing changed.
    pub log: Vec<Cow<'a, [u8]>>,
    /// Items written as GC.
    pub replaced: usize,
}

/// The log's updates with every item whose parent ID names, in the log or in `base` (the room's
/// snapshot), an item that is neither a type nor deleted content, written as a GC struct of its
/// length instead. An update without such an item is returned as it is (borrowed).
///
/// `base` was written by this merge, so its own items are not checked again, and it is read
/// only when a log item names a parent the log does not hold: a log of typing (items placed by
/// their origins, no parent IDs) costs one read of each log entry.
pub fn gc_items_under_non_types<'a, B: AsRef<[u8]>>(
    base: Option<&[u8]>,
    log: &'a [B],
) -> Result<WithoutOrphans<'a>, SplitError> {
    let unchanged = || WithoutOrphans {
        log: log.iter().map(|u| Cow::Borrowed(u.as_ref())).collect(),
        replaced: 0,
    };
    if log.is_empty() || (base.is_none() && log.len() == 1) {
        // One update alone was checked when it was validated.
        return Ok(unchanged());
    }
    let parsed: Vec<ParsedUpdate> = log
        .iter()
        .map(|update| parse_update(update.as_ref()))
        .collect::<Result<_, _>>()?;
    let named: Vec<Id> = parsed
        .iter()
        .flat_map(|p| p.sections.iter().flat_map(|s| &s.structs))
        .filter_map(|span| span.refs.parent)
        .collect();
    if named.is_empty() {
        return Ok(unchanged());
    }
    let parents: HashSet<u64> = named.iter().map(|&(client, _)| client).collect();
    let mut kinds = Kinds::default();
    for update in &parsed {
        kinds.add(update, &parents);
    }
    kinds.sort();
    let base_parsed;
    if let Some(base) = base {
        if named.iter().any(|&id| !kinds.holds(id)) {
            base_parsed = parse_update(base)?;
            kinds.add(&base_parsed, &parents);
            kinds.sort();
        }
    }
    let mut replaced = 0;
    let mut out = Vec::with_capacity(log.len());
    for (update, parsed) in log.iter().zip(&parsed) {
        let update = update.as_ref();
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
    Ok(WithoutOrphans { log: out, replaced })
}

/// What the structs of some clients are, by clock, from every update read so far. Updates may
/// overlap (a client resends what the room has). [`Kinds::sort`] after adding, before asking.
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

    fn holds(&self, id: Id) -> bool {
        self.at(id).any(|content| !matches!(content, Content::Skip))
    }

    /// Whether some update holds, at `id`, an item that cannot be a parent.
    fn is_non_type(&self, id: Id) -> bool {
        self.at(id).any(|content| {
            matches!(content, Content::Item(kind)
                if kind != BLOCK_ITEM_TYPE_REF_NUMBER && kind != BLOCK_ITEM_DELETED_REF_NUMBER)
        })
    }
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
