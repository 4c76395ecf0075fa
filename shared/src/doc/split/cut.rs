//! Cutting one String, Any or JSON item into parts, as Yjs's `splitItem` and
//! `Item.write(encoder, offset)` do: the first part is the item's own encoding with shorter
//! content; every later part has as origin the last unit of the part before it.
use yrs::block::{HAS_ORIGIN, HAS_PARENT_SUB, HAS_RIGHT_ORIGIN};

use super::parse::{read_struct, utf16_len, ItemParts, Payload, StructKind, CONTENT_REF_MASK};
use super::SplitError;
use crate::codec::{var_uint_len, write_var_uint, Reader};

/// A place inside an item's content.
#[derive(Clone, Copy, Default)]
pub(super) struct Position {
    /// Clock units from the item's first one.
    pub(super) units: u32,
    /// Byte offset in the payload.
    pub(super) byte: usize,
}

/// A String, Any or JSON item being cut into parts.
pub(super) struct CuttableItem<'a> {
    client: u64,
    clock: u32,
    /// Clock units it takes.
    pub(super) len: u32,
    info: u8,
    head: &'a [u8],
    right_origin: Option<&'a [u8]>,
    payload: Payload<'a>,
}

impl<'a> CuttableItem<'a> {
    pub(super) fn parse(client: u64, clock: u32, bytes: &'a [u8]) -> Result<Self, SplitError> {
        let parsed = read_struct(&mut Reader::new(bytes))?;
        match parsed.kind {
            StructKind::Item(ItemParts {
                info,
                head,
                right_origin,
                payload: Some(payload),
                ..
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
        1 + var_uint_len(self.client)
            + var_uint_len(u64::from(self.clock + from_units - 1))
            + self.right_origin.map_or(0, <[u8]>::len)
    }

    /// The end of the longest part starting at `from` whose encoding fits in `budget` bytes, or
    /// `None` if not even one unit fits.
    pub(super) fn largest_part(
        &self,
        from: Position,
        budget: usize,
    ) -> Result<Option<Position>, SplitError> {
        let Some(room) = budget.checked_sub(self.header_len(from.units)) else {
            return Ok(None);
        };
        match &self.payload {
            Payload::Text(text) => {
                let rest = &text[from.byte..];
                // Largest byte count that fits with its own var-uint length before it, then back
                // to a char boundary so a cut never falls inside a char (or a surrogate pair).
                let mut taken = rest.len().min(room);
                while taken > 0 && var_uint_len(taken as u64) + taken > room {
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
                let mut reader = Reader::at(bytes, from.byte);
                let mut end = from;
                while end.units < self.len {
                    kind.skip(&mut reader)?;
                    let count = end.units - from.units + 1;
                    if var_uint_len(u64::from(count)) + (reader.pos() - from.byte) > room {
                        break;
                    }
                    end = Position {
                        units: end.units + 1,
                        byte: reader.pos(),
                    };
                }
                Ok((end.units > from.units).then_some(end))
            }
        }
    }

    /// Encoded size of the smallest part starting at `from`: one char or one element.
    pub(super) fn smallest_part_len(&self, from: Position) -> Result<usize, SplitError> {
        let unit_bytes = match &self.payload {
            Payload::Text(text) => text[from.byte..].chars().next().map_or(0, char::len_utf8),
            Payload::Elements { bytes, kind } => {
                let mut reader = Reader::at(bytes, from.byte);
                kind.skip(&mut reader)?;
                reader.pos() - from.byte
            }
        };
        Ok(self.header_len(from.units) + var_uint_len(unit_bytes as u64) + unit_bytes)
    }

    /// Encodes the part of the item between `from` and `to`, as Yjs's `Item.write` does with an
    /// offset.
    pub(super) fn encode_part(&self, from: Position, to: Position) -> Vec<u8> {
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
            write_var_uint(&mut out, self.client);
            write_var_uint(&mut out, u64::from(self.clock + from.units - 1));
            if let Some(right_origin) = self.right_origin {
                out.extend_from_slice(right_origin);
            }
        }
        match self.payload {
            // String content is a byte length then UTF-8.
            Payload::Text(_) => write_var_uint(&mut out, payload_bytes.len() as u64),
            // Any and JSON content are an element count then the elements.
            Payload::Elements { .. } => write_var_uint(&mut out, u64::from(to.units - from.units)),
        }
        out.extend_from_slice(payload_bytes);
        out
    }
}
