//! Reading a v1 update from end to end: its sections, structs and delete set, as positions in
//! the input, and the parts of an item that cutting needs.
use std::collections::HashMap;
use std::ops::Range;

use yrs::block::{
    BLOCK_GC_REF_NUMBER, BLOCK_ITEM_ANY_REF_NUMBER, BLOCK_ITEM_BINARY_REF_NUMBER,
    BLOCK_ITEM_DELETED_REF_NUMBER, BLOCK_ITEM_DOC_REF_NUMBER, BLOCK_ITEM_EMBED_REF_NUMBER,
    BLOCK_ITEM_FORMAT_REF_NUMBER, BLOCK_ITEM_JSON_REF_NUMBER, BLOCK_ITEM_STRING_REF_NUMBER,
    BLOCK_ITEM_TYPE_REF_NUMBER, BLOCK_SKIP_REF_NUMBER, HAS_ORIGIN, HAS_PARENT_SUB,
    HAS_RIGHT_ORIGIN,
};
use yrs::types::{
    TYPE_REFS_ARRAY, TYPE_REFS_DOC, TYPE_REFS_MAP, TYPE_REFS_TEXT, TYPE_REFS_UNDEFINED,
    TYPE_REFS_XML_ELEMENT, TYPE_REFS_XML_FRAGMENT, TYPE_REFS_XML_HOOK, TYPE_REFS_XML_TEXT,
};

use super::SplitError;
use crate::codec::{CodecError, Reader};

/// The content kind in an item's info byte (the other bits are the origin and parent-sub
/// flags). yrs masks it the same way but exports no constant for the mask.
pub(super) const CONTENT_REF_MASK: u8 = 0b0001_1111;

// Tags of lib0's `Any` encoding (yrs exports none of them).
const ANY_UNDEFINED: u8 = 127;
pub(super) const ANY_NULL: u8 = 126;
const ANY_INTEGER: u8 = 125;
const ANY_FLOAT32: u8 = 124;
const ANY_FLOAT64: u8 = 123;
const ANY_BIGINT: u8 = 122;
const ANY_FALSE: u8 = 121;
const ANY_TRUE: u8 = 120;
const ANY_STRING: u8 = 119;
const ANY_MAP: u8 = 118;
pub(super) const ANY_ARRAY: u8 = 117;
const ANY_BUFFER: u8 = 116;

/// The update, checked from end to end, as positions in the input.
pub(super) struct ParsedUpdate {
    pub(super) sections: Vec<ClientSection>,
    pub(super) delete_set: Vec<DeleteSetEntry>,
}

pub(super) struct ClientSection {
    pub(super) client: u64,
    pub(super) structs: Vec<StructSpan>,
}

pub(super) struct StructSpan {
    pub(super) clock: u32,
    /// Clock units it takes.
    pub(super) len: u32,
    /// Where the struct's encoding lies in the input.
    pub(super) bytes: Range<usize>,
    pub(super) is_skip: bool,
    /// A String, Any or JSON item of more than one unit that is not a map entry: it may be cut.
    pub(super) cuttable: bool,
    /// An item under a map key (its own, or its origin's): a value of that key.
    pub(super) map_entry: bool,
    /// What it is: GC, Skip, or an item and its content kind.
    pub(super) content: Content,
    /// The structs it names (an item's origins and parent ID).
    pub(super) refs: References,
}

/// A struct's kind, as far as checking references needs it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Content {
    Gc,
    Skip,
    /// An item, with its content kind (`BLOCK_ITEM_*_REF_NUMBER`).
    Item(u8),
}

/// An ID as encoded: client, clock.
pub(super) type Id = (u64, u32);

/// The IDs an item names: what it was inserted after and before, and its parent when written out
/// as an ID (rather than a root type name, or left to the origins).
#[derive(Clone, Copy, Default)]
pub(super) struct References {
    pub(super) origin: Option<Id>,
    pub(super) right_origin: Option<Id>,
    pub(super) parent: Option<Id>,
    /// Written with a parent sub (a map key): the item is a map entry. Items without a written
    /// parent take it, and the key, from their origin (else their right origin).
    pub(super) parent_sub: bool,
}

pub(super) struct DeleteSetEntry {
    pub(super) client: u64,
    /// (clock, length) pairs as encoded.
    pub(super) ranges: Vec<(u32, u32)>,
}

pub(super) fn parse_update(input: &[u8]) -> Result<ParsedUpdate, SplitError> {
    let mut reader = Reader::new(input);
    let section_count = reader.read_var_u32("number of clients")?;
    // Counts come from the input: never reserve more than the bytes left could hold.
    let mut sections = Vec::with_capacity((section_count as usize).min(reader.remaining() / 3));
    for _ in 0..section_count {
        let struct_count = reader.read_var_u32("number of structs")?;
        let client = reader.read_var_u64("client id")?;
        let mut clock = reader.read_var_u32("first clock")?;
        let mut structs = Vec::with_capacity((struct_count as usize).min(reader.remaining() / 2));
        for _ in 0..struct_count {
            let start = reader.pos();
            let parsed = read_struct(&mut reader)?;
            let next_clock = clock
                .checked_add(parsed.len)
                .ok_or_else(|| reader.invalid("struct", "clock overflows 32 bits"))?;
            structs.push(StructSpan {
                clock,
                len: parsed.len,
                bytes: start..reader.pos(),
                is_skip: matches!(parsed.kind, StructKind::Skip),
                map_entry: false,
                cuttable: parsed.len > 1
                    && matches!(&parsed.kind, StructKind::Item(item) if item.payload.is_some()),
                content: match &parsed.kind {
                    StructKind::Gc => Content::Gc,
                    StructKind::Skip => Content::Skip,
                    StructKind::Item(item) => Content::Item(item.info & CONTENT_REF_MASK),
                },
                refs: match &parsed.kind {
                    StructKind::Item(item) => item.refs,
                    _ => References::default(),
                },
            });
            clock = next_clock;
        }
        sections.push(ClientSection { client, structs });
    }
    keep_map_entries_whole(&mut sections);
    let delete_set = read_delete_set(&mut reader)?;
    if reader.remaining() != 0 {
        return Err(SplitError::Malformed(format!(
            "{} unexpected bytes after the delete set at byte {}",
            reader.remaining(),
            reader.pos()
        )));
    }
    Ok(ParsedUpdate {
        sections,
        delete_set,
    })
}

/// Marks map entries (items under a key, written so or inherited through their origins within
/// the update) uncuttable. A map key keeps only its rightmost item: Yjs writes one value per item
/// there, but an item of several units under a key, cut into parts that arrive as separate
/// updates, makes each later part overwrite (delete) the one before it, so the pieces would build
/// another document than the whole (afl found it). Such an item travels whole or not at all.
fn keep_map_entries_whole(sections: &mut [ClientSection]) {
    // Where each struct is: by client, its section and the spans' clocks (in clock order).
    let mut index: HashMap<u64, (usize, Vec<u32>)> = HashMap::new();
    for (s, section) in sections.iter().enumerate() {
        index
            .entry(section.client)
            .or_insert_with(|| (s, section.structs.iter().map(|span| span.clock).collect()));
    }
    let find = |(client, clock): Id| -> Option<(usize, usize)> {
        let (s, clocks) = index.get(&client)?;
        let i = clocks.partition_point(|c| *c <= clock).checked_sub(1)?;
        let span = &sections[*s].structs[i];
        (u64::from(clock) < u64::from(span.clock) + u64::from(span.len)).then_some((*s, i))
    };
    // Each span's answer, found by following origins with an explicit stack (chains can be as
    // long as the update), each span resolved once. Spans are numbered section by section: this
    // runs on every update the server validates and every state it merges, so the answers sit in
    // a flat list rather than a map.
    let mut first_of_section = Vec::with_capacity(sections.len());
    let mut total = 0;
    for section in sections.iter() {
        first_of_section.push(total);
        total += section.structs.len();
    }
    let number = |(s, i): (usize, usize)| first_of_section[s] + i;
    let mut answers = vec![Answer::Unknown; total];
    let mut path = Vec::new();
    for s in 0..sections.len() {
        for i in 0..sections[s].structs.len() {
            path.clear();
            let mut at = (s, i);
            let answer = loop {
                match answers[number(at)] {
                    Answer::Entry => break true,
                    Answer::NotEntry | Answer::OnPath => break false,
                    Answer::Unknown => {}
                }
                let span = &sections[at.0].structs[at.1];
                if !matches!(span.content, Content::Item(_)) {
                    break false;
                }
                if span.refs.parent_sub {
                    break true;
                }
                if span.refs.parent.is_some() {
                    break false;
                }
                answers[number(at)] = Answer::OnPath;
                path.push(at);
                match span.refs.origin.or(span.refs.right_origin).and_then(find) {
                    Some(next) => at = next,
                    None => break false,
                }
            };
            let answer = if answer {
                Answer::Entry
            } else {
                Answer::NotEntry
            };
            for &step in &path {
                answers[number(step)] = answer;
            }
            if answers[number((s, i))] == Answer::Unknown {
                answers[number((s, i))] = answer;
            }
        }
    }
    for (s, section) in sections.iter_mut().enumerate() {
        for (i, span) in section.structs.iter_mut().enumerate() {
            if answers[first_of_section[s] + i] == Answer::Entry {
                span.cuttable = false;
                span.map_entry = true;
            }
        }
    }
}

/// Whether a span is a map entry, as far as the walk knows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Unknown,
    /// On the chain being followed: met again, it is a cycle (no entry).
    OnPath,
    Entry,
    NotEntry,
}

fn read_delete_set(reader: &mut Reader<'_>) -> Result<Vec<DeleteSetEntry>, SplitError> {
    let client_count = reader.read_var_u32("delete set client count")?;
    let mut entries = Vec::with_capacity((client_count as usize).min(reader.remaining() / 2));
    for _ in 0..client_count {
        let client = reader.read_var_u64("delete set client")?;
        let range_count = reader.read_var_u32("delete set range count")?;
        let mut ranges = Vec::with_capacity((range_count as usize).min(reader.remaining() / 2));
        for _ in 0..range_count {
            let clock = reader.read_var_u32("deleted clock")?;
            let len = reader.read_var_u32("deleted length")?;
            // yrs computes `clock + len` unchecked.
            if clock.checked_add(len).is_none() {
                return Err(reader
                    .invalid("delete set range", "clock overflows 32 bits")
                    .into());
            }
            ranges.push((clock, len));
        }
        entries.push(DeleteSetEntry { client, ranges });
    }
    Ok(entries)
}

/// One struct, read.
pub(super) struct ParsedStruct<'a> {
    /// How many clock ticks it takes.
    pub(super) len: u32,
    pub(super) kind: StructKind<'a>,
}

pub(super) enum StructKind<'a> {
    Gc,
    Skip,
    Item(ItemParts<'a>),
}

/// What it takes to cut an item.
pub(super) struct ItemParts<'a> {
    pub(super) info: u8,
    /// Everything before the content: the start of the item's first part, unchanged.
    pub(super) head: &'a [u8],
    /// The encoded right origin ID, which every part keeps.
    pub(super) right_origin: Option<&'a [u8]>,
    /// The content, if it is of a kind that can be cut.
    pub(super) payload: Option<Payload<'a>>,
    pub(super) refs: References,
}

pub(super) enum Payload<'a> {
    /// String content; units are UTF-16 code units.
    Text(&'a str),
    /// Any or JSON content: `bytes` holds the elements, after their count; one element per unit.
    Elements { bytes: &'a [u8], kind: ElementKind },
}

#[derive(Clone, Copy)]
pub(super) enum ElementKind {
    /// lib0 `Any` values (Any content).
    Any,
    /// JSON text strings (JSON content, written by old Yjs versions).
    JsonString,
}

impl ElementKind {
    pub(super) fn skip(self, reader: &mut Reader<'_>) -> Result<(), CodecError> {
        match self {
            ElementKind::Any => skip_any(reader),
            ElementKind::JsonString => reader.read_var_str("JSON content").map(|_| ()),
        }
    }
}

pub(super) fn read_struct<'a>(reader: &mut Reader<'a>) -> Result<ParsedStruct<'a>, SplitError> {
    let start = reader.pos();
    let info = reader.read_u8("struct info")?;
    let kind = match info {
        BLOCK_GC_REF_NUMBER => StructKind::Gc,
        BLOCK_SKIP_REF_NUMBER => StructKind::Skip,
        _ => return read_item(reader, start, info),
    };
    let len = reader.read_var_u32("GC or Skip length")?;
    if len == 0 {
        // yrs refuses these too.
        return Err(reader.invalid("GC or Skip", "zero length").into());
    }
    Ok(ParsedStruct { len, kind })
}

fn read_item<'a>(
    reader: &mut Reader<'a>,
    start: usize,
    info: u8,
) -> Result<ParsedStruct<'a>, SplitError> {
    let mut refs = References::default();
    if info & HAS_ORIGIN != 0 {
        refs.origin = Some(read_id(reader, "origin")?);
    }
    let right_origin = if info & HAS_RIGHT_ORIGIN != 0 {
        let id_start = reader.pos();
        refs.right_origin = Some(read_id(reader, "right origin")?);
        Some(reader.since(id_start))
    } else {
        None
    };
    // Without origins the receiver cannot find the parent from a neighbour: it is written out.
    if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
        if reader.read_var_u32("parent info")? == 1 {
            reader.read_var_str("parent type name")?;
        } else {
            refs.parent = Some(read_id(reader, "parent id")?);
        }
        if info & HAS_PARENT_SUB != 0 {
            reader.read_var_str("parent sub")?;
            refs.parent_sub = true;
        }
    }
    let head = reader.since(start);

    let (len, payload) = match info & CONTENT_REF_MASK {
        BLOCK_ITEM_DELETED_REF_NUMBER => (reader.read_var_u32("deleted length")?, None),
        kind @ (BLOCK_ITEM_JSON_REF_NUMBER | BLOCK_ITEM_ANY_REF_NUMBER) => {
            let count = reader.read_var_u32("element count")?;
            let elements_start = reader.pos();
            let kind = if kind == BLOCK_ITEM_ANY_REF_NUMBER {
                ElementKind::Any
            } else {
                ElementKind::JsonString
            };
            for _ in 0..count {
                kind.skip(reader)?;
            }
            let bytes = reader.since(elements_start);
            (count, Some(Payload::Elements { bytes, kind }))
        }
        BLOCK_ITEM_BINARY_REF_NUMBER => {
            reader.read_var_buf("binary content")?;
            (1, None)
        }
        BLOCK_ITEM_STRING_REF_NUMBER => {
            let text = reader.read_var_str("string content")?;
            let units = u32::try_from(utf16_len(text))
                .map_err(|_| reader.invalid("string content", "too long"))?;
            (units, Some(Payload::Text(text)))
        }
        BLOCK_ITEM_EMBED_REF_NUMBER => {
            reader.read_var_str("embed content")?;
            (1, None)
        }
        BLOCK_ITEM_FORMAT_REF_NUMBER => {
            reader.read_var_str("format key")?;
            reader.read_var_str("format value")?;
            (1, None)
        }
        BLOCK_ITEM_TYPE_REF_NUMBER => {
            read_type_ref(reader)?;
            (1, None)
        }
        BLOCK_ITEM_DOC_REF_NUMBER => {
            reader.read_var_str("subdocument guid")?;
            skip_any(reader)?;
            (1, None)
        }
        other => {
            return Err(reader
                .invalid("item", format!("unknown content kind {other}"))
                .into());
        }
    };
    if len == 0 {
        // No Yjs or yrs document writes one; yrs 0.28.1 integrates it as a struct of no length
        // at a clock the next one takes too, and later reads freed memory while encoding the
        // document (a segfault afl found, past the panic guard).
        return Err(reader.invalid("item", "zero length").into());
    }
    Ok(ParsedStruct {
        len,
        kind: StructKind::Item(ItemParts {
            info,
            head,
            right_origin,
            payload,
            refs,
        }),
    })
}

fn read_type_ref(reader: &mut Reader<'_>) -> Result<(), SplitError> {
    // yrs reads the type ref as one byte (Yjs as a var-uint: the same for every known ref).
    match reader.read_u8("type ref")? {
        TYPE_REFS_XML_ELEMENT => {
            reader.read_var_str("XML element name")?;
        }
        // yrs 0.28.1 writes and reads no hook name for XmlHook (Yjs does): follow yrs.
        TYPE_REFS_ARRAY
        | TYPE_REFS_MAP
        | TYPE_REFS_TEXT
        | TYPE_REFS_XML_FRAGMENT
        | TYPE_REFS_XML_HOOK
        | TYPE_REFS_XML_TEXT
        | TYPE_REFS_DOC
        | TYPE_REFS_UNDEFINED => {}
        other => {
            return Err(reader
                .invalid("type content", format!("unsupported type ref {other}"))
                .into());
        }
    }
    Ok(())
}

/// Length in UTF-16 code units, as Yjs counts string clocks: one per `char`, two above U+FFFF.
pub(super) fn utf16_len(text: &str) -> usize {
    if text.is_ascii() {
        return text.len();
    }
    // In valid UTF-8 every byte that is not a continuation byte starts a char, and exactly the
    // chars above U+FFFF (surrogate pairs in UTF-16) start with 0xF0 or above. Counted in `u8`
    // per chunk of 127 bytes (at most 2 each, so no overflow), which the compiler vectorizes:
    // a `usize` per byte was a third of answering a fresh client from a 10 MB state (perf).
    text.as_bytes()
        .chunks(127)
        .map(|chunk| {
            let units = chunk.iter().fold(0u8, |units, &byte| {
                units + u8::from(byte & 0xC0 != 0x80) + u8::from(byte >= 0xF0)
            });
            usize::from(units)
        })
        .sum()
}

/// An ID: client (up to 64 bits), then clock.
fn read_id(reader: &mut Reader<'_>, what: &'static str) -> Result<Id, CodecError> {
    Ok((reader.read_var_u64(what)?, reader.read_var_u32(what)?))
}

/// Steps over one lib0 `Any` value. Nesting is followed with an explicit stack, so deep input
/// cannot overflow the call stack; each level costs at least two input bytes, which bounds it.
pub(super) fn skip_any(reader: &mut Reader<'_>) -> Result<(), CodecError> {
    struct Level {
        values_left: u64,
        /// Map entries: a key string before each value.
        keyed: bool,
    }
    let mut levels = vec![Level {
        values_left: 1,
        keyed: false,
    }];
    while let Some(level) = levels.last_mut() {
        if level.values_left == 0 {
            levels.pop();
            continue;
        }
        level.values_left -= 1;
        if level.keyed {
            reader.read_var_str("Any map key")?;
        }
        match reader.read_u8("Any tag")? {
            ANY_UNDEFINED | ANY_NULL | ANY_FALSE | ANY_TRUE => {}
            ANY_INTEGER => reader.skip_var_i64("Any integer")?,
            ANY_FLOAT32 => {
                reader.read_bytes(4, "Any float32")?;
            }
            ANY_FLOAT64 | ANY_BIGINT => {
                reader.read_bytes(8, "Any float64 or bigint")?;
            }
            ANY_STRING => {
                reader.read_var_str("Any string")?;
            }
            ANY_BUFFER => {
                reader.read_var_buf("Any buffer")?;
            }
            tag @ (ANY_MAP | ANY_ARRAY) => {
                let values_left = reader.read_var_u64("Any length")?;
                if values_left > 0 {
                    levels.push(Level {
                        values_left,
                        keyed: tag == ANY_MAP,
                    });
                }
            }
            tag => return Err(reader.invalid("Any value", format!("unknown tag {tag}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::utf16_len;

    #[test]
    fn utf16_len_counts_as_yjs_does() {
        let pieces = ["a", "é", "你", "😀", "👩‍👩‍👧", "\u{ffff}", "\u{10000}"];
        // Lengths across the 127-byte chunks, with every kind of char at every offset.
        for n in 0..300 {
            let text: String = (0..n).map(|i| pieces[(i * 7 + n) % pieces.len()]).collect();
            assert_eq!(utf16_len(&text), text.encode_utf16().count(), "{text:?}");
        }
        assert_eq!(utf16_len(&"😀".repeat(1000)), 2000);
    }
}
