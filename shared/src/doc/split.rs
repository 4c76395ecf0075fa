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
//! The input comes from the network: every read is bounds-checked, lengths are checked against
//! the bytes left before anything is allocated for them, and nested `Any` values are walked with
//! an explicit stack rather than recursion. The whole update is checked before any piece is made,
//! so an update is either cut entirely or refused.
//!
//! Where yrs 0.28.1 and Yjs disagree on the encoding, this module follows yrs, which produced the
//! updates the server sends: an XmlHook type carries no hook name (Yjs writes one), and weak link
//! types (yrs' optional "weak" feature, not enabled here) are refused as malformed. JSON content
//! (old Yjs) is read as Yjs and yrs' encoder write it, a count then that many strings; yrs 0.28.1's
//! decoder reads one string more.
use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Range;

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
    let parsed = parse_update(update)?;

    let mut packer = StructPacker::new(max_piece_bytes);
    for section in &parsed.sections {
        for span in section.structs.iter().filter(|span| !span.is_skip) {
            packer.place(update, section.client, span)?;
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

// Bits of an item's info byte (yrs `block.rs`, Yjs `Item.js`).
const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;
const CONTENT_REF_MASK: u8 = 0b0001_1111;

// Struct kinds: the whole info byte for GC and Skip (as yrs matches them), else the content kind.
const INFO_GC: u8 = 0;
const CONTENT_DELETED: u8 = 1;
const CONTENT_JSON: u8 = 2;
const CONTENT_BINARY: u8 = 3;
const CONTENT_STRING: u8 = 4;
const CONTENT_EMBED: u8 = 5;
const CONTENT_FORMAT: u8 = 6;
const CONTENT_TYPE: u8 = 7;
const CONTENT_ANY: u8 = 8;
const CONTENT_DOC: u8 = 9;
const INFO_SKIP: u8 = 10;

// Shared type refs of Type content (yrs `types/mod.rs`).
const TYPE_ARRAY: u8 = 0;
const TYPE_MAP: u8 = 1;
const TYPE_TEXT: u8 = 2;
const TYPE_XML_ELEMENT: u8 = 3;
const TYPE_XML_FRAGMENT: u8 = 4;
const TYPE_XML_HOOK: u8 = 5;
const TYPE_XML_TEXT: u8 = 6;
const TYPE_SUBDOC: u8 = 9;
const TYPE_UNDEFINED: u8 = 15;

// Tags of lib0's `Any` encoding.
const ANY_UNDEFINED: u8 = 127;
const ANY_NULL: u8 = 126;
const ANY_INTEGER: u8 = 125;
const ANY_FLOAT32: u8 = 124;
const ANY_FLOAT64: u8 = 123;
const ANY_BIGINT: u8 = 122;
const ANY_FALSE: u8 = 121;
const ANY_TRUE: u8 = 120;
const ANY_STRING: u8 = 119;
const ANY_MAP: u8 = 118;
const ANY_ARRAY: u8 = 117;
const ANY_BUFFER: u8 = 116;

/// Longest var-int accepted: 10 bytes hold 64 bits. yrs' signed reader shifts past 63 bits (a
/// panic in debug builds) from the 11th byte on, so nothing longer is let through.
const MAX_VAR_INT_BYTES: usize = 10;

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// A bounds-checked cursor over untrusted bytes. Every failure names what was being read and where.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn malformed(&self, what: &str, problem: &str) -> SplitError {
        SplitError::Malformed(format!("{problem} in {what} at byte {}", self.pos))
    }

    fn read_u8(&mut self, what: &str) -> Result<u8, SplitError> {
        let byte = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.malformed(what, "unexpected end of input"))?;
        self.pos += 1;
        Ok(byte)
    }

    /// Takes `len` bytes, refusing a length larger than what is left before touching anything.
    fn read_bytes(&mut self, len: u64, what: &str) -> Result<&'a [u8], SplitError> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.remaining())
            .ok_or_else(|| {
                self.malformed(what, &format!("length {len} runs past the end of input"))
            })?;
        let bytes = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    fn read_var_u64(&mut self, what: &str) -> Result<u64, SplitError> {
        let mut value = 0u64;
        for index in 0..MAX_VAR_INT_BYTES {
            let byte = self.read_u8(what)?;
            let bits = u64::from(byte & 0x7f);
            // The 10th byte holds bit 63 only.
            if index == MAX_VAR_INT_BYTES - 1 && bits > 1 {
                return Err(self.malformed(what, "var-int over 64 bits"));
            }
            value |= bits << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed(what, "var-int over 64 bits"))
    }

    /// Clocks, lengths and counts are 32-bit in yrs; a larger value is refused rather than wrapped.
    fn read_var_u32(&mut self, what: &str) -> Result<u32, SplitError> {
        let value = self.read_var_u64(what)?;
        u32::try_from(value).map_err(|_| self.malformed(what, &format!("{value} is over 32 bits")))
    }

    /// Steps over lib0's signed var-int: sign and 6 bits in the first byte, 7 bits in the others.
    fn skip_var_i64(&mut self, what: &str) -> Result<(), SplitError> {
        for _ in 0..MAX_VAR_INT_BYTES {
            if self.read_u8(what)? & 0x80 == 0 {
                return Ok(());
            }
        }
        Err(self.malformed(what, "signed var-int over 64 bits"))
    }

    /// A var-uint length followed by that many bytes.
    fn read_var_buf(&mut self, what: &str) -> Result<&'a [u8], SplitError> {
        let len = self.read_var_u64(what)?;
        self.read_bytes(len, what)
    }

    /// A var-uint byte length followed by UTF-8, which yrs requires to be valid.
    fn read_var_str(&mut self, what: &str) -> Result<&'a str, SplitError> {
        let start = self.pos;
        let bytes = self.read_var_buf(what)?;
        std::str::from_utf8(bytes)
            .map_err(|_| SplitError::Malformed(format!("invalid UTF-8 in {what} at byte {start}")))
    }

    /// An ID: client (up to 64 bits), then clock.
    fn read_id(&mut self, what: &str) -> Result<(), SplitError> {
        self.read_var_u64(what)?;
        self.read_var_u32(what)?;
        Ok(())
    }

    /// Steps over one lib0 `Any` value. Nesting is followed with an explicit stack, so deep input
    /// cannot overflow the call stack; each level costs at least two input bytes, which bounds it.
    fn skip_any(&mut self) -> Result<(), SplitError> {
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
                self.read_var_str("Any map key")?;
            }
            match self.read_u8("Any tag")? {
                ANY_UNDEFINED | ANY_NULL | ANY_FALSE | ANY_TRUE => {}
                ANY_INTEGER => self.skip_var_i64("Any integer")?,
                ANY_FLOAT32 => {
                    self.read_bytes(4, "Any float32")?;
                }
                ANY_FLOAT64 | ANY_BIGINT => {
                    self.read_bytes(8, "Any float64 or bigint")?;
                }
                ANY_STRING => {
                    self.read_var_str("Any string")?;
                }
                ANY_BUFFER => {
                    self.read_var_buf("Any buffer")?;
                }
                tag @ (ANY_MAP | ANY_ARRAY) => {
                    let values_left = self.read_var_u64("Any length")?;
                    if values_left > 0 {
                        levels.push(Level {
                            values_left,
                            keyed: tag == ANY_MAP,
                        });
                    }
                }
                tag => return Err(self.malformed("Any value", &format!("unknown tag {tag}"))),
            }
        }
        Ok(())
    }
}

/// The update, checked from end to end, as positions in the input.
struct ParsedUpdate {
    sections: Vec<ClientSection>,
    delete_set: Vec<DeleteSetEntry>,
}

struct ClientSection {
    client: u64,
    structs: Vec<StructSpan>,
}

struct StructSpan {
    clock: u32,
    /// Clock units it takes.
    len: u32,
    /// Where the struct's encoding lies in the input.
    bytes: Range<usize>,
    is_skip: bool,
    /// A String, Any or JSON item of more than one unit: it may be cut.
    cuttable: bool,
}

struct DeleteSetEntry {
    client: u64,
    /// (clock, length) pairs as encoded.
    ranges: Vec<(u32, u32)>,
}

fn parse_update(input: &[u8]) -> Result<ParsedUpdate, SplitError> {
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
            let start = reader.pos;
            let parsed = read_struct(&mut reader)?;
            let next_clock = clock
                .checked_add(parsed.len)
                .ok_or_else(|| reader.malformed("struct", "clock overflows 32 bits"))?;
            structs.push(StructSpan {
                clock,
                len: parsed.len,
                bytes: start..reader.pos,
                is_skip: matches!(parsed.kind, StructKind::Skip),
                cuttable: parsed.len > 1
                    && matches!(&parsed.kind, StructKind::Item(item) if item.payload.is_some()),
            });
            clock = next_clock;
        }
        sections.push(ClientSection { client, structs });
    }
    let delete_set = read_delete_set(&mut reader)?;
    if reader.remaining() != 0 {
        return Err(SplitError::Malformed(format!(
            "{} unexpected bytes after the delete set at byte {}",
            reader.remaining(),
            reader.pos
        )));
    }
    Ok(ParsedUpdate {
        sections,
        delete_set,
    })
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
                return Err(reader.malformed("delete set range", "clock overflows 32 bits"));
            }
            ranges.push((clock, len));
        }
        entries.push(DeleteSetEntry { client, ranges });
    }
    Ok(entries)
}

/// One struct, read.
struct ParsedStruct<'a> {
    /// How many clock ticks it takes.
    len: u32,
    kind: StructKind<'a>,
}

enum StructKind<'a> {
    Gc,
    Skip,
    Item(ItemParts<'a>),
}

/// What it takes to cut an item.
struct ItemParts<'a> {
    info: u8,
    /// Everything before the content: the start of the item's first part, unchanged.
    head: &'a [u8],
    /// The encoded right origin ID, which every part keeps.
    right_origin: Option<&'a [u8]>,
    /// The content, if it is of a kind that can be cut.
    payload: Option<Payload<'a>>,
}

enum Payload<'a> {
    /// String content; units are UTF-16 code units.
    Text(&'a str),
    /// Any or JSON content: `bytes` holds the elements, after their count; one element per unit.
    Elements { bytes: &'a [u8], kind: ElementKind },
}

#[derive(Clone, Copy)]
enum ElementKind {
    /// lib0 `Any` values (Any content).
    Any,
    /// JSON text strings (JSON content, written by old Yjs versions).
    JsonString,
}

impl ElementKind {
    fn skip(self, reader: &mut Reader<'_>) -> Result<(), SplitError> {
        match self {
            ElementKind::Any => reader.skip_any(),
            ElementKind::JsonString => reader.read_var_str("JSON content").map(|_| ()),
        }
    }
}

fn read_struct<'a>(reader: &mut Reader<'a>) -> Result<ParsedStruct<'a>, SplitError> {
    let start = reader.pos;
    let info = reader.read_u8("struct info")?;
    let kind = match info {
        INFO_GC => StructKind::Gc,
        INFO_SKIP => StructKind::Skip,
        _ => return read_item(reader, start, info),
    };
    let len = reader.read_var_u32("GC or Skip length")?;
    if len == 0 {
        // yrs refuses these too.
        return Err(reader.malformed("GC or Skip", "zero length"));
    }
    Ok(ParsedStruct { len, kind })
}

fn read_item<'a>(
    reader: &mut Reader<'a>,
    start: usize,
    info: u8,
) -> Result<ParsedStruct<'a>, SplitError> {
    if info & HAS_ORIGIN != 0 {
        reader.read_id("origin")?;
    }
    let right_origin = if info & HAS_RIGHT_ORIGIN != 0 {
        let id_start = reader.pos;
        reader.read_id("right origin")?;
        Some(&reader.buf[id_start..reader.pos])
    } else {
        None
    };
    // Without origins the receiver cannot find the parent from a neighbour: it is written out.
    if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
        if reader.read_var_u32("parent info")? == 1 {
            reader.read_var_str("parent type name")?;
        } else {
            reader.read_id("parent id")?;
        }
        if info & HAS_PARENT_SUB != 0 {
            reader.read_var_str("parent sub")?;
        }
    }
    let head = &reader.buf[start..reader.pos];

    let (len, payload) = match info & CONTENT_REF_MASK {
        CONTENT_DELETED => (reader.read_var_u32("deleted length")?, None),
        kind @ (CONTENT_JSON | CONTENT_ANY) => {
            let count = reader.read_var_u32("element count")?;
            let elements_start = reader.pos;
            let kind = if kind == CONTENT_ANY {
                ElementKind::Any
            } else {
                ElementKind::JsonString
            };
            for _ in 0..count {
                kind.skip(reader)?;
            }
            let bytes = &reader.buf[elements_start..reader.pos];
            (count, Some(Payload::Elements { bytes, kind }))
        }
        CONTENT_BINARY => {
            reader.read_var_buf("binary content")?;
            (1, None)
        }
        CONTENT_STRING => {
            let text = reader.read_var_str("string content")?;
            let units = u32::try_from(utf16_len(text))
                .map_err(|_| reader.malformed("string content", "too long"))?;
            (units, Some(Payload::Text(text)))
        }
        CONTENT_EMBED => {
            reader.read_var_str("embed content")?;
            (1, None)
        }
        CONTENT_FORMAT => {
            reader.read_var_str("format key")?;
            reader.read_var_str("format value")?;
            (1, None)
        }
        CONTENT_TYPE => {
            read_type_ref(reader)?;
            (1, None)
        }
        CONTENT_DOC => {
            reader.read_var_str("subdocument guid")?;
            reader.skip_any()?;
            (1, None)
        }
        other => {
            return Err(reader.malformed("item", &format!("unknown content kind {other}")));
        }
    };
    Ok(ParsedStruct {
        len,
        kind: StructKind::Item(ItemParts {
            info,
            head,
            right_origin,
            payload,
        }),
    })
}

fn read_type_ref(reader: &mut Reader<'_>) -> Result<(), SplitError> {
    // yrs reads the type ref as one byte (Yjs as a var-uint: the same for every known ref).
    match reader.read_u8("type ref")? {
        TYPE_XML_ELEMENT => {
            reader.read_var_str("XML element name")?;
        }
        // yrs 0.28.1 writes and reads no hook name for XmlHook (Yjs does): follow yrs.
        TYPE_ARRAY | TYPE_MAP | TYPE_TEXT | TYPE_XML_FRAGMENT | TYPE_XML_HOOK | TYPE_XML_TEXT
        | TYPE_SUBDOC | TYPE_UNDEFINED => {}
        other => {
            return Err(reader.malformed("type content", &format!("unsupported type ref {other}")));
        }
    }
    Ok(())
}

/// Length in UTF-16 code units, as Yjs counts string clocks: one per `char`, two above U+FFFF.
fn utf16_len(text: &str) -> usize {
    if text.is_ascii() {
        return text.len();
    }
    // In valid UTF-8 every byte that is not a continuation byte starts a char, and exactly the
    // chars above U+FFFF (surrogate pairs in UTF-16) start with 0xF0 or above.
    text.bytes()
        .map(|byte| usize::from(byte & 0xC0 != 0x80) + usize::from(byte >= 0xF0))
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// Bytes of `value` as a lib0 var-uint: 7 bits per byte.
fn var_len(value: u64) -> usize {
    let significant_bits = 64 - value.leading_zeros() as usize;
    significant_bits.div_ceil(7).max(1)
}

/// Writes `value` as a lib0 var-uint: 7 bits per byte, low bits first, high bit = more follows.
fn write_var(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

// ---------------------------------------------------------------------------------------------
// Struct pieces
// ---------------------------------------------------------------------------------------------

/// Consecutive structs of one client inside a piece.
struct Run<'a> {
    client: u64,
    first_clock: u32,
    /// Clock right after the last struct.
    end_clock: u32,
    structs: Vec<Cow<'a, [u8]>>,
}

/// A piece of structs being filled. `size` is always its exact encoded size.
struct StructPiece<'a> {
    runs: Vec<Run<'a>>,
    clients: HashSet<u64>,
    size: usize,
}

/// How a struct joins a piece, and the piece's size with it.
#[derive(Clone, Copy)]
struct Plan {
    /// `Some(gap)`: after the last run's structs, a gap (left by a Skip in the input) bridged by
    /// a Skip; `None`: as the first struct of a new run.
    continue_after: Option<u32>,
    size: usize,
}

impl<'a> StructPiece<'a> {
    fn new() -> Self {
        StructPiece {
            runs: Vec::new(),
            clients: HashSet::new(),
            // No sections, empty delete set.
            size: EMPTY_UPDATE.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// How a struct of `struct_len` bytes at `clock` would join this piece; `None` if its client
    /// already has a run here that it cannot continue. yrs gathers one client's structs from all
    /// of an update's sections into one list, so a second section of that client would not be
    /// read at its own clock: such a struct goes to another piece.
    fn plan(&self, client: u64, clock: u32, struct_len: usize) -> Option<Plan> {
        match self.runs.last() {
            Some(last) if last.client == client && clock >= last.end_clock => {
                let gap = clock - last.end_clock;
                let count = last.structs.len();
                let (added, skip_len) = if gap > 0 {
                    (2, 1 + var_len(u64::from(gap)))
                } else {
                    (1, 0)
                };
                Some(Plan {
                    continue_after: Some(gap),
                    size: self.size - var_len(count as u64)
                        + var_len((count + added) as u64)
                        + skip_len
                        + struct_len,
                })
            }
            _ if self.clients.contains(&client) => None,
            _ => {
                let runs = self.runs.len();
                Some(Plan {
                    continue_after: None,
                    size: self.size - var_len(runs as u64)
                        + var_len((runs + 1) as u64)
                        + var_len(1)
                        + var_len(client)
                        + var_len(u64::from(clock))
                        + struct_len,
                })
            }
        }
    }

    /// Adds a struct as `plan`, made by `plan()` for this struct on this piece as it is, says.
    fn push(&mut self, plan: Plan, client: u64, clock: u32, len: u32, bytes: Cow<'a, [u8]>) {
        self.size = plan.size;
        match (plan.continue_after, self.runs.last_mut()) {
            (Some(gap), Some(run)) => {
                if gap > 0 {
                    let mut skip = vec![INFO_SKIP];
                    write_var(&mut skip, u64::from(gap));
                    run.structs.push(Cow::Owned(skip));
                }
                run.structs.push(bytes);
                run.end_clock = clock + len;
            }
            _ => {
                self.clients.insert(client);
                self.runs.push(Run {
                    client,
                    first_clock: clock,
                    end_clock: clock + len,
                    structs: vec![bytes],
                });
            }
        }
    }

    fn encode(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size);
        write_var(&mut out, self.runs.len() as u64);
        for run in &self.runs {
            write_var(&mut out, run.structs.len() as u64);
            write_var(&mut out, run.client);
            write_var(&mut out, u64::from(run.first_clock));
            for bytes in &run.structs {
                out.extend_from_slice(bytes);
            }
        }
        // Empty delete set: deletions travel in pieces of their own.
        write_var(&mut out, 0);
        debug_assert_eq!(out.len(), self.size);
        out
    }
}

/// Fills pieces with structs in input order, starting a new piece when the next struct does
/// not fit, and cutting items that are worth cutting.
struct StructPacker<'a> {
    max: usize,
    piece: StructPiece<'a>,
    pieces: Vec<Vec<u8>>,
}

impl<'a> StructPacker<'a> {
    fn new(max: usize) -> Self {
        StructPacker {
            max,
            piece: StructPiece::new(),
            pieces: Vec::new(),
        }
    }

    fn flush(&mut self) {
        let piece = std::mem::replace(&mut self.piece, StructPiece::new());
        if !piece.is_empty() {
            self.pieces.push(piece.encode());
        }
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        self.flush();
        self.pieces
    }

    /// How a struct would join the current piece, if it fits there.
    fn plan_within_limit(&self, client: u64, clock: u32, struct_len: usize) -> Option<Plan> {
        self.piece
            .plan(client, clock, struct_len)
            .filter(|plan| plan.size <= self.max)
    }

    fn place(&mut self, input: &'a [u8], client: u64, span: &StructSpan) -> Result<(), SplitError> {
        let bytes = &input[span.bytes.clone()];
        loop {
            if let Some(plan) = self.plan_within_limit(client, span.clock, bytes.len()) {
                let bytes = Cow::Borrowed(bytes);
                self.piece.push(plan, client, span.clock, span.len, bytes);
                return Ok(());
            }
            if span.cuttable {
                // Fill what is left of this piece with the item's first part rather than start
                // a new piece: fewer pieces, at the price of one more struct.
                return self.place_cut(client, span.clock, bytes);
            }
            if self.piece.is_empty() {
                return Err(SplitError::Indivisible {
                    size: lone_piece_size(client, span.clock, bytes.len()),
                    max: self.max,
                });
            }
            self.flush();
        }
    }

    /// Places a String, Any or JSON item in as many parts as needed.
    fn place_cut(&mut self, client: u64, clock: u32, bytes: &'a [u8]) -> Result<(), SplitError> {
        let item = CuttableItem::parse(client, clock, bytes)?;
        let mut from = Position::default();
        while from.units < item.len {
            let part_clock = clock + from.units;
            // A piece's size grows byte for byte with the struct added: plan for an empty one,
            // and what is left under the limit is the part's budget.
            let base = self.piece.plan(client, part_clock, 0);
            let budget = base.and_then(|base| self.max.checked_sub(base.size));
            let end = match budget {
                Some(budget) => item.largest_part(from, budget)?,
                None => None,
            };
            if let (Some(base), Some(to)) = (base, end) {
                let part = item.encode_part(from, to);
                let plan = Plan {
                    size: base.size + part.len(),
                    ..base
                };
                let units = to.units - from.units;
                self.piece
                    .push(plan, client, part_clock, units, Cow::Owned(part));
                from = to;
            } else if self.piece.is_empty() {
                let part_len = item.smallest_part_len(from)?;
                return Err(SplitError::Indivisible {
                    size: lone_piece_size(client, part_clock, part_len),
                    max: self.max,
                });
            } else {
                self.flush();
            }
        }
        Ok(())
    }
}

/// Size of a piece holding nothing but one struct of `struct_len` bytes.
fn lone_piece_size(client: u64, clock: u32, struct_len: usize) -> usize {
    StructPiece::new()
        .plan(client, clock, struct_len)
        .map_or(usize::MAX, |plan| plan.size)
}

/// A place inside an item's content.
#[derive(Clone, Copy, Default)]
struct Position {
    /// Clock units from the item's first one.
    units: u32,
    /// Byte offset in the payload.
    byte: usize,
}

/// A String, Any or JSON item being cut into parts.
struct CuttableItem<'a> {
    client: u64,
    clock: u32,
    len: u32,
    info: u8,
    head: &'a [u8],
    right_origin: Option<&'a [u8]>,
    payload: Payload<'a>,
}

impl<'a> CuttableItem<'a> {
    fn parse(client: u64, clock: u32, bytes: &'a [u8]) -> Result<Self, SplitError> {
        let parsed = read_struct(&mut Reader::new(bytes))?;
        match parsed.kind {
            StructKind::Item(ItemParts {
                info,
                head,
                right_origin,
                payload: Some(payload),
            }) => Ok(CuttableItem {
                client,
                clock,
                len: parsed.len,
                info,
                head,
                right_origin,
                payload,
            }),
            _ => Err(SplitError::Malformed(
                "struct changed kind between two reads".to_string(),
            )),
        }
    }

    /// Bytes before the content of the part starting at `from_units`.
    fn header_len(&self, from_units: u32) -> usize {
        if from_units == 0 {
            return self.head.len();
        }
        1 + var_len(self.client)
            + var_len(u64::from(self.clock + from_units - 1))
            + self.right_origin.map_or(0, <[u8]>::len)
    }

    /// The end of the longest part starting at `from` whose encoding fits in `budget` bytes, or
    /// `None` if not even one unit fits.
    fn largest_part(&self, from: Position, budget: usize) -> Result<Option<Position>, SplitError> {
        let Some(room) = budget.checked_sub(self.header_len(from.units)) else {
            return Ok(None);
        };
        match &self.payload {
            Payload::Text(text) => {
                let rest = &text[from.byte..];
                // Largest byte count that fits with its own var-uint length before it, then back
                // to a char boundary so a cut never falls inside a char (or a surrogate pair).
                let mut taken = rest.len().min(room);
                while taken > 0 && var_len(taken as u64) + taken > room {
                    taken -= 1;
                }
                while !rest.is_char_boundary(taken) {
                    taken -= 1;
                }
                if taken == 0 {
                    return Ok(None);
                }
                let units = u32::try_from(utf16_len(&rest[..taken])).unwrap_or(u32::MAX);
                Ok(Some(Position {
                    units: from.units + units,
                    byte: from.byte + taken,
                }))
            }
            Payload::Elements { bytes, kind } => {
                let mut reader = Reader::new(bytes);
                reader.pos = from.byte;
                let mut end = from;
                while end.units < self.len {
                    kind.skip(&mut reader)?;
                    let count = end.units - from.units + 1;
                    if var_len(u64::from(count)) + (reader.pos - from.byte) > room {
                        break;
                    }
                    end = Position {
                        units: end.units + 1,
                        byte: reader.pos,
                    };
                }
                Ok((end.units > from.units).then_some(end))
            }
        }
    }

    /// Encoded size of the smallest part starting at `from`: one char or one element.
    fn smallest_part_len(&self, from: Position) -> Result<usize, SplitError> {
        let unit_bytes = match &self.payload {
            Payload::Text(text) => text[from.byte..].chars().next().map_or(0, char::len_utf8),
            Payload::Elements { bytes, kind } => {
                let mut reader = Reader::new(bytes);
                reader.pos = from.byte;
                kind.skip(&mut reader)?;
                reader.pos - from.byte
            }
        };
        Ok(self.header_len(from.units) + var_len(unit_bytes as u64) + unit_bytes)
    }

    /// Encodes the part of the item between `from` and `to`, as Yjs's `Item.write` does with an
    /// offset.
    fn encode_part(&self, from: Position, to: Position) -> Vec<u8> {
        let payload_bytes = match &self.payload {
            Payload::Text(text) => &text.as_bytes()[from.byte..to.byte],
            Payload::Elements { bytes, .. } => &bytes[from.byte..to.byte],
        };
        let mut out = Vec::with_capacity(self.header_len(from.units) + 5 + payload_bytes.len());
        if from.units == 0 {
            out.extend_from_slice(self.head);
        } else {
            // Origin: the last unit of the part before. The parent is left out; the receiver
            // takes it (and the parent sub) from that origin.
            out.push(
                HAS_ORIGIN
                    | (self.info & (HAS_RIGHT_ORIGIN | HAS_PARENT_SUB))
                    | (self.info & CONTENT_REF_MASK),
            );
            write_var(&mut out, self.client);
            write_var(&mut out, u64::from(self.clock + from.units - 1));
            if let Some(right_origin) = self.right_origin {
                out.extend_from_slice(right_origin);
            }
        }
        match self.payload {
            // String content is a byte length then UTF-8.
            Payload::Text(_) => write_var(&mut out, payload_bytes.len() as u64),
            // Any and JSON content are an element count then the elements.
            Payload::Elements { .. } => write_var(&mut out, u64::from(to.units - from.units)),
        }
        out.extend_from_slice(payload_bytes);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Delete set pieces
// ---------------------------------------------------------------------------------------------

/// A piece with no structs and part of the delete set. `size` is always its exact encoded size.
struct DeleteSetPiece {
    entries: Vec<DeleteSetEntry>,
    clients: HashSet<u64>,
    /// Whether the next range of the client of the last entry may join that entry.
    last_entry_open: bool,
    size: usize,
}

impl DeleteSetPiece {
    fn new() -> Self {
        DeleteSetPiece {
            entries: Vec::new(),
            clients: HashSet::new(),
            last_entry_open: false,
            // No sections, no delete set clients.
            size: EMPTY_UPDATE.len(),
        }
    }

    /// The piece's size with one more range; `None` if the client already has a closed entry
    /// here (yrs keeps only the last entry of a client, so it must not appear twice).
    fn size_with(&self, client: u64, range: (u32, u32)) -> Option<usize> {
        let range_len = var_len(u64::from(range.0)) + var_len(u64::from(range.1));
        match self.entries.last() {
            Some(last) if self.last_entry_open && last.client == client => {
                let count = last.ranges.len();
                Some(self.size - var_len(count as u64) + var_len((count + 1) as u64) + range_len)
            }
            _ if self.clients.contains(&client) => None,
            _ => {
                let count = self.entries.len();
                Some(
                    self.size - var_len(count as u64)
                        + var_len((count + 1) as u64)
                        + var_len(client)
                        + var_len(1)
                        + range_len,
                )
            }
        }
    }

    /// Ends the last entry: the next range starts an entry of its own.
    fn close_entry(&mut self) {
        self.last_entry_open = false;
    }

    /// Adds a range; `size` is what `size_with` said for it on this piece as it is.
    fn push(&mut self, client: u64, range: (u32, u32), size: usize) {
        self.size = size;
        match self.entries.last_mut() {
            Some(last) if self.last_entry_open && last.client == client => last.ranges.push(range),
            _ => {
                self.clients.insert(client);
                self.entries.push(DeleteSetEntry {
                    client,
                    ranges: vec![range],
                });
                self.last_entry_open = true;
            }
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size);
        write_var(&mut out, 0);
        write_var(&mut out, self.entries.len() as u64);
        for entry in &self.entries {
            write_var(&mut out, entry.client);
            write_var(&mut out, entry.ranges.len() as u64);
            for &(clock, len) in &entry.ranges {
                write_var(&mut out, u64::from(clock));
                write_var(&mut out, u64::from(len));
            }
        }
        debug_assert_eq!(out.len(), self.size);
        out
    }
}

fn pack_delete_set(
    entries: &[DeleteSetEntry],
    max: usize,
    pieces: &mut Vec<Vec<u8>>,
) -> Result<(), SplitError> {
    let mut piece = DeleteSetPiece::new();
    for entry in entries {
        // Each input entry starts an entry of its own.
        piece.close_entry();
        for &range in &entry.ranges {
            let mut size = piece.size_with(entry.client, range);
            if size.is_none_or(|size| size > max) && !piece.entries.is_empty() {
                pieces.push(piece.encode());
                piece = DeleteSetPiece::new();
                size = piece.size_with(entry.client, range);
            }
            match size {
                Some(size) if size <= max => piece.push(entry.client, range, size),
                // An empty piece takes any client, so `size` is known here.
                size => {
                    return Err(SplitError::Indivisible {
                        size: size.unwrap_or(usize::MAX),
                        max,
                    })
                }
            }
        }
    }
    if !piece.entries.is_empty() {
        pieces.push(piece.encode());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::Arc;
    use std::time::Instant;
    use yrs::types::text::YChange;
    use yrs::types::{Attrs, ToJson};
    use yrs::updates::decoder::Decode;
    use yrs::updates::encoder::Encode;
    use yrs::{
        Any, Array, ArrayPrelim, Doc, GetString, Map, MapPrelim, OffsetKind, Options, ReadTxn,
        StateVector, Text, TextPrelim, Transact, Update, Xml, XmlElementPrelim, XmlFragment,
        XmlTextPrelim,
    };

    // ---- helpers --------------------------------------------------------------------------

    /// A document that counts text like Yjs does: in UTF-16 code units.
    fn new_doc(client_id: u64) -> Doc {
        Doc::with_options(Options {
            client_id: yrs::ClientID::new(client_id),
            offset_kind: OffsetKind::Utf16,
            ..Options::default()
        })
    }

    /// Without garbage collection deleted items keep their content, and only the delete set
    /// says they are deleted (with it, they become Deleted content and GC structs).
    fn new_doc_without_gc(client_id: u64) -> Doc {
        Doc::with_options(Options {
            client_id: yrs::ClientID::new(client_id),
            offset_kind: OffsetKind::Utf16,
            skip_gc: true,
            ..Options::default()
        })
    }

    fn full_state(doc: &Doc) -> Vec<u8> {
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    fn apply(doc: &Doc, update: &[u8]) {
        let decoded = Update::decode_v1(update).expect("piece decodes");
        doc.transact_mut()
            .apply_update(decoded)
            .expect("piece applies");
    }

    /// Sends each side what the other lacks.
    fn sync(a: &Doc, b: &Doc) {
        let a_to_b = a
            .transact()
            .encode_state_as_update_v1(&b.transact().state_vector());
        let b_to_a = b
            .transact()
            .encode_state_as_update_v1(&a.transact().state_vector());
        apply(b, &a_to_b);
        apply(a, &b_to_a);
    }

    fn doc_from<'u>(updates: impl IntoIterator<Item = &'u [u8]>) -> Doc {
        let doc = new_doc(999);
        for update in updates {
            apply(&doc, update);
        }
        doc
    }

    /// Everything the test documents hold, read through the root types they use.
    #[derive(Debug, PartialEq)]
    struct Content {
        text: String,
        text_delta: Vec<yrs::types::text::Diff<YChange>>,
        map: Any,
        array: Any,
        xml: String,
        state_vector: StateVector,
        snapshot: yrs::Snapshot,
        missing: bool,
    }

    fn content(doc: &Doc) -> Content {
        let text = doc.get_or_insert_text("text");
        let map = doc.get_or_insert_map("map");
        let array = doc.get_or_insert_array("array");
        let xml = doc.get_or_insert_xml_fragment("xml");
        let txn = doc.transact();
        Content {
            text: text.get_string(&txn),
            // Formatting attributes and embeds.
            text_delta: text.diff(&txn, YChange::identity),
            map: map.to_json(&txn),
            array: array.to_json(&txn),
            xml: xml.get_string(&txn),
            state_vector: txn.state_vector(),
            snapshot: txn.snapshot(),
            missing: txn.has_missing_updates(),
        }
    }

    /// Checks the pieces' sizes and that they rebuild the original's state in several orders.
    fn assert_pieces_rebuild(update: &[u8], pieces: &[Vec<u8>], max: usize) {
        assert!(!pieces.is_empty());
        for piece in pieces {
            assert!(
                piece.len() <= max,
                "piece of {} bytes over {max}",
                piece.len()
            );
            Update::decode_v1(piece).expect("every piece is a valid update");
        }
        let expected = content(&doc_from([update]));

        let forward: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        let mut orders = vec![forward.clone(), forward.iter().rev().copied().collect()];
        let mut rng = StdRng::seed_from_u64(pieces.len() as u64);
        for _ in 0..3 {
            let mut shuffled = forward.clone();
            shuffled.shuffle(&mut rng);
            orders.push(shuffled);
        }
        for order in orders {
            let rebuilt = doc_from(order);
            let actual = content(&rebuilt);
            assert_eq!(actual, expected);
            // The original holds nothing the rebuilt document lacks.
            let sv = rebuilt.transact().state_vector();
            let rest = yrs::diff_updates_v1(update, &sv.encode_v1()).expect("diff");
            assert!(!Update::decode_v1(&rest).expect("diff decodes").extends(&sv));
        }
    }

    fn split_and_check(update: &[u8], max: usize) -> Vec<Vec<u8>> {
        let pieces = split_update_v1(update, max).expect("split");
        assert_pieces_rebuild(update, &pieces, max);
        pieces
    }

    /// Three clients editing text (with formatting, embeds, non-ASCII and emoji), a map of many
    /// kinds of values, an array, XML and a subdocument, with deletions and GC'd content.
    fn rich_document(gc: bool) -> Vec<u8> {
        let new_doc = if gc { new_doc } else { new_doc_without_gc };
        let alice = new_doc(1);
        let bob = new_doc(0x1234_5678);
        // A 53-bit client id: the largest Yjs uses, a long var-int.
        let carol = new_doc((1 << 53) - 1);

        {
            let text = alice.get_or_insert_text("text");
            let mut txn = alice.transact_mut();
            text.insert(&mut txn, 0, "Hello, wörld! Ünïcödé 你好世界 😀🎉👩‍👩‍👧 done.");
            let bold: Attrs = HashMap::from([(Arc::from("bold"), Any::Bool(true))]);
            text.format(&mut txn, 0, 5, bold);
            let link: Attrs = HashMap::from([(Arc::from("link"), Any::from("https://ü.example"))]);
            text.insert_with_attributes(&mut txn, 7, "linked 🔗 ", link);
            text.insert_embed(&mut txn, 3, Any::from(vec![1u8, 2, 3]));
        }
        sync(&alice, &bob);
        {
            let text = bob.get_or_insert_text("text");
            let mut txn = bob.transact_mut();
            text.insert(&mut txn, 10, "[bob 🐝 was here]");
            text.remove_range(&mut txn, 2, 4);
            let italic: Attrs = HashMap::from([(Arc::from("italic"), Any::Bool(true))]);
            text.format(&mut txn, 5, 12, italic);
        }
        {
            // Concurrent with bob.
            let text = carol.get_or_insert_text("text");
            let mut txn = carol.transact_mut();
            text.insert(&mut txn, 0, "Carol: 𝄞𝄞𝄞 ");
        }
        {
            let map = alice.get_or_insert_map("map");
            let mut txn = alice.transact_mut();
            map.insert(&mut txn, "int", 42);
            map.insert(&mut txn, "negative", -7);
            map.insert(&mut txn, "big", 1i64 << 40);
            map.insert(&mut txn, "float", 1.5);
            map.insert(&mut txn, "precise", 0.1);
            map.insert(&mut txn, "yes", true);
            map.insert(&mut txn, "no", false);
            map.insert(&mut txn, "nothing", Any::Null);
            map.insert(&mut txn, "undefined", Any::Undefined);
            map.insert(&mut txn, "string", "ünïcode ✓ 😀");
            map.insert(&mut txn, "buffer", Any::from(vec![0u8, 255, 7]));
            map.insert(
                &mut txn,
                "json",
                Any::from(HashMap::from([
                    ("a".to_string(), Any::from(vec![Any::from(1), Any::Null])),
                    ("b".to_string(), Any::from("x")),
                ])),
            );
            map.insert(
                &mut txn,
                "nested map",
                MapPrelim::from([("inner", "value")]),
            );
            map.insert(&mut txn, "nested array", ArrayPrelim::from([1, 2, 3]));
            map.insert(&mut txn, "nested text", TextPrelim::new("inner text ✍️"));
            map.insert(&mut txn, "overwritten", "first");
            map.insert(&mut txn, "overwritten", "second");
            map.insert(&mut txn, "temp", MapPrelim::from([("gone", "soon")]));
            map.remove(&mut txn, "temp");
            map.insert(
                &mut txn,
                "subdoc",
                Doc::with_options(Options {
                    guid: "sub".into(),
                    ..Options::default()
                }),
            );
        }
        {
            let array = bob.get_or_insert_array("array");
            let mut txn = bob.transact_mut();
            array.insert_range(
                &mut txn,
                0,
                (0..40).map(|i| Any::from(format!("item {i} é"))),
            );
            array.insert_range(&mut txn, 10, [Any::from(1.25), Any::Bool(true), Any::Null]);
            array.remove_range(&mut txn, 20, 5);
            array.push_back(&mut txn, MapPrelim::from([("k", 1)]));
        }
        {
            let xml = carol.get_or_insert_xml_fragment("xml");
            let mut txn = carol.transact_mut();
            let paragraph = xml.insert(&mut txn, 0, XmlElementPrelim::empty("p"));
            paragraph.insert_attribute(&mut txn, "class", "intro");
            let text = paragraph.insert(&mut txn, 0, XmlTextPrelim::new("xml text ✓ 😀"));
            let bold: Attrs = HashMap::from([(Arc::from("b"), Any::Bool(true))]);
            text.format(&mut txn, 0, 3, bold);
            let list = xml.insert(&mut txn, 1, XmlElementPrelim::empty("ul"));
            for i in 0..3 {
                let item = list.insert(&mut txn, i, XmlElementPrelim::empty("li"));
                item.insert(&mut txn, 0, XmlTextPrelim::new(format!("entry {i}")));
            }
            list.remove_range(&mut txn, 1, 1);
        }
        sync(&alice, &bob);
        sync(&bob, &carol);
        sync(&alice, &carol);
        {
            let text = alice.get_or_insert_text("text");
            let mut txn = alice.transact_mut();
            let len = text.len(&txn);
            text.remove_range(&mut txn, len - 6, 3);
        }
        sync(&alice, &bob);
        sync(&bob, &carol);
        full_state(&alice)
    }

    /// A hand-made update: one client, one struct, empty delete set.
    fn one_struct_update(client: u8, struct_bytes: &[u8]) -> Vec<u8> {
        let mut update = vec![1, 1, client, 0];
        update.extend_from_slice(struct_bytes);
        update.push(0);
        update
    }

    /// Item bytes for a root type named `root` with no origins: info, parent name, content.
    fn root_item(content_kind: u8, root: &str, content: &[u8]) -> Vec<u8> {
        let mut item = vec![content_kind, 1];
        write_var(&mut item, root.len() as u64);
        item.extend_from_slice(root.as_bytes());
        item.extend_from_slice(content);
        item
    }

    // ---- splitting real documents ---------------------------------------------------------

    #[test]
    fn an_update_that_fits_is_returned_unchanged() {
        let update = rich_document(true);
        let pieces = split_update_v1(&update, update.len()).expect("split");
        assert_eq!(pieces, vec![update.clone()]);
        // Not even parsed: the caller gets exactly what it gave.
        assert_eq!(
            split_update_v1(&[1, 2, 3], 3).expect("split"),
            vec![vec![1, 2, 3]]
        );
    }

    #[test]
    fn a_rich_document_is_rebuilt_from_its_pieces_in_any_order() {
        for gc in [true, false] {
            let update = rich_document(gc);
            assert!(update.len() > 1000, "{} bytes", update.len());
            for max in [64, 100, 200, 1000] {
                let pieces = split_and_check(&update, max);
                assert!(pieces.len() > 1, "{max}: {} piece(s)", pieces.len());
            }
        }
    }

    #[test]
    fn every_small_limit_gives_valid_pieces() {
        // Walks the cut points across every kind of struct of the document.
        let update = rich_document(true);
        // Its largest struct that cannot be cut (a formatting mark with two origins of 53-bit
        // clients) needs a 61-byte piece.
        assert!(matches!(
            split_update_v1(&update, 60),
            Err(SplitError::Indivisible { size: 61, max: 60 })
        ));
        for max in 61..=160 {
            split_and_check(&update, max);
        }
        let without_gc = rich_document(false);
        for max in 61..=160 {
            split_and_check(&without_gc, max);
        }
    }

    #[test]
    fn a_long_string_is_cut_on_char_boundaries() {
        let doc = new_doc(5);
        let text = doc.get_or_insert_text("text");
        let long: String = (0..400)
            .map(|i| ["a", "é", "你", "😀", "𝄞", "z"][i % 6])
            .collect();
        {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, "start ");
            // One item in the middle: its parts have both origins.
            text.insert(&mut txn, 3, &long);
        }
        let update = full_state(&doc);
        for max in [30, 31, 32, 33, 47, 64, 200, 1000] {
            let pieces = split_and_check(&update, max);
            let expected = update.len() / max;
            assert!(pieces.len() >= expected, "{max}: {} pieces", pieces.len());
        }
    }

    #[test]
    fn a_string_item_without_origins_is_cut() {
        // The first item of a root type has no origins: its first part carries the parent name,
        // the others do not.
        let doc = new_doc(6);
        let text = doc.get_or_insert_text("text");
        let long = "😀 ünïcode ✓ ".repeat(200);
        text.insert(&mut doc.transact_mut(), 0, &long);
        let update = full_state(&doc);
        let pieces = split_and_check(&update, 100);
        assert!(pieces.len() >= update.len() / 100);
    }

    #[test]
    fn a_long_any_item_is_cut_between_elements() {
        let doc = new_doc(8);
        let array = doc.get_or_insert_array("array");
        {
            let mut txn = doc.transact_mut();
            let values = (0..2000).map(|i| match i % 5 {
                0 => Any::from(i),
                1 => Any::from(format!("value {i} 😀")),
                2 => Any::from(vec![
                    Any::from(i),
                    Any::from(HashMap::from([("k".to_string(), Any::Null)])),
                ]),
                3 => Any::from(i as f64 + 0.5),
                _ => Any::Bool(i % 2 == 0),
            });
            array.insert_range(&mut txn, 0, values);
        }
        let update = full_state(&doc);
        for max in [64, 500, 4096] {
            let pieces = split_and_check(&update, max);
            assert!(pieces.len() >= update.len() / max);
        }
    }

    #[test]
    fn a_large_delete_set_is_cut_into_pieces_of_its_own() {
        // Without GC, the deletions are in the delete set only.
        let alice = new_doc_without_gc(1);
        let bob = new_doc_without_gc(2);
        let text = alice.get_or_insert_text("text");
        text.insert(&mut alice.transact_mut(), 0, &"abcdefghij".repeat(300));
        sync(&alice, &bob);
        {
            // Every other char, by both clients, in separate transactions: many ranges.
            let bob_text = bob.get_or_insert_text("text");
            for i in 0..300 {
                text.remove_range(&mut alice.transact_mut(), i, 1);
                bob_text.remove_range(&mut bob.transact_mut(), 2999 - 2 * i - 1, 1);
            }
        }
        sync(&alice, &bob);
        let update = full_state(&alice);
        let pieces = split_and_check(&update, 64);
        let delete_set_pieces = pieces.iter().filter(|piece| piece[0] == 0).count();
        assert!(
            delete_set_pieces > 1,
            "{delete_set_pieces} delete set piece(s)"
        );
    }

    #[test]
    fn skips_of_a_merged_update_are_kept() {
        // Updates 1 and 3 of one client, merged: the gap where update 2 belongs is a Skip.
        let doc = new_doc(3);
        let text = doc.get_or_insert_text("text");
        let mut updates = Vec::new();
        for chunk in ["first 😀 ", "second ", "third ünï "] {
            let before = doc.transact().state_vector();
            text.push(&mut doc.transact_mut(), &chunk.repeat(10));
            updates.push(doc.transact().encode_state_as_update_v1(&before));
        }
        let merged = yrs::merge_updates_v1([&updates[0][..], &updates[2][..]]).expect("merge");

        let expected = doc_from([&merged[..], &updates[1][..]]);
        for max in [40, 64, 100] {
            let pieces = split_update_v1(&merged, max).expect("split");
            assert!(pieces.iter().all(|piece| piece.len() <= max));
            let mut shuffled = pieces.clone();
            shuffled.shuffle(&mut StdRng::seed_from_u64(max as u64));
            let without_gap = doc_from(shuffled.iter().map(Vec::as_slice));
            assert_eq!(
                content(&without_gap).state_vector,
                content(&doc_from([&merged[..]])).state_vector
            );
            apply(&without_gap, &updates[1]);
            assert_eq!(content(&without_gap), content(&expected));
        }
    }

    /// About 800 KB from three clients: long paragraphs (cut across pieces), thousands of small
    /// text edits and deletions, and map entries.
    fn large_document() -> Vec<u8> {
        let clients: Vec<Doc> = (1..=3).map(new_doc).collect();
        let mut rng = StdRng::seed_from_u64(42);
        let words = [
            "a ", "lorem ", "ipsum ", "dolor ", "ü ", "你好 ", "😀 ", "\n",
        ];
        let random_text = |rng: &mut StdRng, words_count: usize| -> String {
            (0..words_count)
                .map(|_| words[rng.random_range(0..words.len())])
                .collect()
        };
        for round in 0..12 {
            for (index, doc) in clients.iter().enumerate() {
                let text = doc.get_or_insert_text("text");
                let map = doc.get_or_insert_map("map");
                let mut txn = doc.transact_mut();
                for _ in 0..2 {
                    let words_count = rng.random_range(500..2500);
                    let paragraph = random_text(&mut rng, words_count);
                    let at = rng.random_range(0..=text.len(&txn));
                    text.insert(&mut txn, at, &paragraph);
                }
                for edit in 0..150 {
                    let len = text.len(&txn);
                    if len > 20 && rng.random_bool(0.2) {
                        let at = rng.random_range(0..len - 10);
                        text.remove_range(&mut txn, at, rng.random_range(1..5));
                    } else {
                        let at = rng.random_range(0..=len);
                        text.insert(&mut txn, at, &random_text(&mut rng, 1));
                    }
                    map.insert(&mut txn, format!("k{index}-{round}-{edit}"), edit);
                    map.insert(&mut txn, format!("s{index}-{round}-{edit}"), "value");
                }
            }
            for pair in clients.windows(2) {
                sync(&pair[0], &pair[1]);
            }
        }
        sync(&clients[2], &clients[0]);
        full_state(&clients[0])
    }

    #[test]
    fn a_large_document_fits_api_gateway_messages() {
        let update = large_document();
        let max = 90_000;
        let started = Instant::now();
        let pieces = split_update_v1(&update, max).expect("split");
        let elapsed = started.elapsed();
        eprintln!(
            "large document: {} bytes -> {} pieces under {max} bytes in {elapsed:?}",
            update.len(),
            pieces.len()
        );
        assert!(update.len() > 700_000, "only {} bytes", update.len());
        // Struct pieces are filled to the brim: one more than the minimum, for the delete set.
        assert!(
            pieces.len() <= update.len().div_ceil(max) + 1,
            "{} pieces",
            pieces.len()
        );
        assert_pieces_rebuild(&update, &pieces, max);
    }

    // ---- hand-made updates ----------------------------------------------------------------

    #[test]
    fn binary_content_fits_or_is_indivisible() {
        let mut content = vec![200, 1];
        content.extend_from_slice(&[7; 200]);
        let binary = root_item(CONTENT_BINARY, "array", &content);
        let update = one_struct_update(9, &binary);
        doc_from([&update[..]]); // yrs takes it
        match split_update_v1(&update, 100) {
            Err(SplitError::Indivisible { size, max: 100 }) => assert_eq!(size, update.len()),
            other => panic!("expected Indivisible, got {other:?}"),
        }
        // Ten of them under a limit that fits one.
        let mut update = vec![1, 10, 9, 0];
        update.extend_from_slice(&binary);
        for clock in 0..9u8 {
            // Each following item has the one before as origin.
            update.extend_from_slice(&[CONTENT_BINARY | HAS_ORIGIN, 9, clock]);
            update.extend_from_slice(&content);
        }
        update.push(0);
        split_and_check(&update, binary.len() + 10);
    }

    #[test]
    fn one_oversized_value_is_indivisible() {
        let doc = new_doc(4);
        let map = doc.get_or_insert_map("map");
        map.insert(&mut doc.transact_mut(), "big", "x".repeat(5000));
        let update = full_state(&doc);
        match split_update_v1(&update, 1000) {
            Err(SplitError::Indivisible { size, max: 1000 }) => assert!(size > 5000),
            other => panic!("expected Indivisible, got {other:?}"),
        }
        // A limit below the smallest piece.
        let update = rich_document(true);
        assert!(matches!(
            split_update_v1(&update, 10),
            Err(SplitError::Indivisible { max: 10, .. })
        ));
    }

    #[test]
    fn json_content_is_cut_between_strings() {
        // Old Yjs writes JSON content: a count, then JSON texts. yrs 0.28.1 misreads it (one
        // string too many), so only the cut is checked here, by reading the pieces back.
        let mut content = vec![3];
        for text in ["\"a\"", "{\"k\":[1,2]}", "null"] {
            write_var(&mut content, text.len() as u64);
            content.extend_from_slice(text.as_bytes());
        }
        let update = one_struct_update(9, &root_item(CONTENT_JSON, "array", &content));
        let pieces = split_update_v1(&update, 24).expect("split");
        assert!(pieces.len() > 1);
        let mut clocks = Vec::new();
        for piece in &pieces {
            assert!(piece.len() <= 24);
            let parsed = parse_update(piece).expect("piece parses");
            for section in &parsed.sections {
                clocks.extend(section.structs.iter().map(|span| (span.clock, span.len)));
            }
        }
        clocks.sort();
        let mut next = 0;
        for (clock, len) in clocks {
            assert_eq!(clock, next);
            next += len;
        }
        assert_eq!(next, 3);
    }

    #[test]
    fn xml_hook_type_is_read_as_yrs_writes_it() {
        // Type content, type ref 5 (XmlHook), no hook name (yrs), in a map entry.
        let mut hook = vec![CONTENT_TYPE | HAS_PARENT_SUB, 1, 3];
        hook.extend_from_slice(b"map");
        hook.extend_from_slice(&[4]);
        hook.extend_from_slice(b"hook");
        hook.push(TYPE_XML_HOOK);
        let update = one_struct_update(9, &hook);
        doc_from([&update[..]]);
        let parsed = parse_update(&update).expect("parses");
        assert_eq!(parsed.sections[0].structs.len(), 1);
    }

    #[test]
    fn a_client_in_two_sections_is_kept_apart_or_joined_by_a_skip() {
        // Not what yrs writes, but valid. yrs reads all of a client's structs in one update as
        // one list, so a section may only continue the one before it in the same piece.
        let backwards = [
            3, 1, 1, 5, INFO_GC, 2, 1, 1, 0, INFO_GC, 3, 1, 2, 0, INFO_GC, 1, 0,
        ];
        let pieces = split_update_v1(&backwards, backwards.len() - 1).expect("split");
        assert_eq!(pieces.len(), 2);
        for piece in &pieces {
            let sections = parse_update(piece).expect("piece parses").sections;
            let clients: HashSet<u64> = sections.iter().map(|section| section.client).collect();
            assert_eq!(clients.len(), sections.len());
        }
        // Clocks 0-1, then 5: one section, the gap bridged by a Skip of 3.
        let forwards = [2, 1, 1, 0, INFO_GC, 2, 1, 1, 5, INFO_GC, 1, 0];
        let pieces = split_update_v1(&forwards, forwards.len() - 1).expect("split");
        assert_eq!(
            pieces,
            vec![vec![1, 3, 1, 0, INFO_GC, 2, INFO_SKIP, 3, INFO_GC, 1, 0]]
        );
    }

    #[test]
    fn an_update_of_skips_only_gives_the_empty_update() {
        let update = [1, 2, 1, 0, INFO_SKIP, 5, INFO_SKIP, 3, 0];
        assert_eq!(
            split_update_v1(&update, 4).expect("split"),
            vec![EMPTY_UPDATE.to_vec()]
        );
        assert!(matches!(
            split_update_v1(&update, 1),
            Err(SplitError::Indivisible { size: 2, max: 1 })
        ));
    }

    // ---- malformed input ------------------------------------------------------------------

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
            &root_item(CONTENT_STRING, "t", &huge_string),
        ));
        // An Any array of 2^63 values.
        let mut huge_array = vec![1, ANY_ARRAY];
        huge_array.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        assert_malformed(&one_struct_update(
            1,
            &root_item(CONTENT_ANY, "t", &huge_array),
        ));
        // A clock that overflows: GC of length 10 at clock 2^32 - 5.
        assert_malformed(&[1, 1, 1, 0xfb, 0xff, 0xff, 0xff, 0x0f, 0, 10, 0]);
        // A deleted range that overflows.
        assert_malformed(&[0, 1, 1, 1, 0xfb, 0xff, 0xff, 0xff, 0x0f, 10]);
        // A delete set of four billion clients, none there.
        assert_malformed(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f, 1]);
        // Zero-length GC and Skip, an unknown content kind, an unknown Any tag, a weak link.
        assert_malformed(&one_struct_update(1, &[INFO_GC, 0]));
        assert_malformed(&one_struct_update(1, &[INFO_SKIP, 0]));
        assert_malformed(&one_struct_update(1, &root_item(11, "t", &[])));
        assert_malformed(&one_struct_update(
            1,
            &root_item(CONTENT_ANY, "t", &[1, 100]),
        ));
        assert_malformed(&one_struct_update(
            1,
            &root_item(CONTENT_TYPE, "t", &[7, 0]),
        ));
        // Invalid UTF-8 in a string.
        assert_malformed(&one_struct_update(
            1,
            &root_item(CONTENT_STRING, "t", &[2, 0xc3, 0x28]),
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
        let nested_item = root_item(CONTENT_ANY, "t", &nested);
        // Followed by a second item (its origin the first), so that the update can be cut.
        let mut update = vec![1, 2, 1, 0];
        update.extend_from_slice(&nested_item);
        update.extend_from_slice(&[CONTENT_STRING | HAS_ORIGIN, 1, 0, 2, b'o', b'k', 0]);
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
}
