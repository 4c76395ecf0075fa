//! lib0's binary encoding, the one reader and writer for untrusted bytes in this crate: the
//! y-websocket framing (`protocol::ywebsocket`) and the Yjs update walker (`doc::split`) both
//! read through [`Reader`] and write through [`write_var_uint`] / [`write_var_buf`].
//!
//! Writing is yrs's own (`yrs::encoding::write::Write`): the bytes are exactly lib0's. Reading
//! is done here because yrs's `Cursor` does not fit input from the network: its var-uint reader
//! wraps on overflow (it takes an 11th byte and drops high bits; a `u32` read wraps a 64-bit
//! value), and its errors do not say what was read or where. The rule here is strict:
//! - a var-uint has at most 10 bytes, and the 10th may hold only bit 63: anything larger is
//!   refused, never truncated;
//! - a `u32` read refuses a value over 32 bits rather than wrapping it;
//! - a length is checked against the bytes left before anything is sliced or allocated for it;
//! - strings must be valid UTF-8 (as yrs requires).
//!
//! Every error names what was being read and the byte it started at.
use std::borrow::Cow;

use yrs::encoding::write::Write;

/// Longest var-int accepted: 10 bytes hold 64 bits. yrs' signed reader shifts past 63 bits (a
/// panic in debug builds) from the 11th byte on, so nothing longer is let through.
pub const MAX_VAR_INT_BYTES: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ends inside a value, or a length runs past its end.
    #[error("{problem} in {what} at byte {at}")]
    Truncated {
        what: &'static str,
        at: usize,
        problem: Cow<'static, str>,
    },
    /// The bytes are there but do not hold a valid value.
    #[error("{problem} in {what} at byte {at}")]
    Invalid {
        what: &'static str,
        at: usize,
        problem: Cow<'static, str>,
    },
}

/// A bounds-checked cursor over untrusted bytes.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// A reader over `buf` starting at `pos` (clamped to its end).
    pub fn at(buf: &'a [u8], pos: usize) -> Self {
        Reader {
            buf,
            pos: pos.min(buf.len()),
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// The bytes read since position `start` (an earlier [`Reader::pos`]).
    pub fn since(&self, start: usize) -> &'a [u8] {
        &self.buf[start.min(self.pos)..self.pos]
    }

    /// An error about the value being read at the current position, for callers that find the
    /// bytes well-formed for lib0 but wrong for their own format.
    pub fn invalid(&self, what: &'static str, problem: impl Into<Cow<'static, str>>) -> CodecError {
        CodecError::Invalid {
            what,
            at: self.pos,
            problem: problem.into(),
        }
    }

    fn truncated(&self, what: &'static str, problem: impl Into<Cow<'static, str>>) -> CodecError {
        CodecError::Truncated {
            what,
            at: self.pos,
            problem: problem.into(),
        }
    }

    pub fn read_u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        let byte = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.truncated(what, "unexpected end of input"))?;
        self.pos += 1;
        Ok(byte)
    }

    /// Takes `len` bytes, refusing a length larger than what is left before touching anything.
    pub fn read_bytes(&mut self, len: u64, what: &'static str) -> Result<&'a [u8], CodecError> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.remaining())
            .ok_or_else(|| {
                self.truncated(what, format!("length {len} runs past the end of input"))
            })?;
        let bytes = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    /// A lib0 var-uint: 7 bits per byte, low bits first, high bit set while more follow.
    pub fn read_var_u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let start = self.pos;
        let mut value = 0u64;
        for index in 0..MAX_VAR_INT_BYTES {
            let byte = self.read_u8(what)?;
            let bits = u64::from(byte & 0x7f);
            // The 10th byte holds bit 63 only.
            if index == MAX_VAR_INT_BYTES - 1 && bits > 1 {
                return Err(self.var_int_overflow(what, start));
            }
            value |= bits << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.var_int_overflow(what, start))
    }

    fn var_int_overflow(&self, what: &'static str, start: usize) -> CodecError {
        CodecError::Invalid {
            what,
            at: start,
            problem: "var-int over 64 bits".into(),
        }
    }

    /// Clocks, lengths and counts are 32-bit in yrs; a larger value is refused rather than wrapped.
    pub fn read_var_u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        let value = self.read_var_u64(what)?;
        u32::try_from(value).map_err(|_| self.invalid(what, format!("{value} is over 32 bits")))
    }

    /// Steps over lib0's signed var-int: sign and 6 bits in the first byte, 7 bits in the others.
    pub fn skip_var_i64(&mut self, what: &'static str) -> Result<(), CodecError> {
        let start = self.pos;
        for _ in 0..MAX_VAR_INT_BYTES {
            if self.read_u8(what)? & 0x80 == 0 {
                return Ok(());
            }
        }
        Err(CodecError::Invalid {
            what,
            at: start,
            problem: "signed var-int over 64 bits".into(),
        })
    }

    /// A var-uint count of entries that each take at least `min_entry_bytes`, refused when the
    /// bytes left could not hold that many. yrs sizes its collections by such counts before it
    /// reads an entry: 4 bytes claiming 2^28 entries made it allocate ~500 MB.
    pub fn read_count(
        &mut self,
        min_entry_bytes: usize,
        what: &'static str,
    ) -> Result<usize, CodecError> {
        let count = self.read_var_u64(what)?;
        let most = self.remaining() / min_entry_bytes.max(1);
        usize::try_from(count)
            .ok()
            .filter(|&count| count <= most)
            .ok_or_else(|| {
                self.truncated(
                    what,
                    format!(
                        "{count} entries cannot fit in the {} bytes left",
                        self.remaining()
                    ),
                )
            })
    }

    /// A var-uint length followed by that many bytes.
    pub fn read_var_buf(&mut self, what: &'static str) -> Result<&'a [u8], CodecError> {
        let len = self.read_var_u64(what)?;
        self.read_bytes(len, what)
    }

    /// A var-uint byte length followed by UTF-8, which yrs requires to be valid.
    pub fn read_var_str(&mut self, what: &'static str) -> Result<&'a str, CodecError> {
        let start = self.pos;
        let bytes = self.read_var_buf(what)?;
        std::str::from_utf8(bytes).map_err(|_| CodecError::Invalid {
            what,
            at: start,
            problem: "invalid UTF-8".into(),
        })
    }
}

/// Bytes of `value` as a lib0 var-uint.
pub fn var_uint_len(value: u64) -> usize {
    let significant_bits = 64 - value.leading_zeros() as usize;
    significant_bits.div_ceil(7).max(1)
}

/// Writes `value` as a lib0 var-uint.
pub fn write_var_uint(out: &mut Vec<u8>, value: u64) {
    out.write_var(value);
}

/// Writes a var-uint length, then `bytes`.
pub fn write_var_buf(out: &mut Vec<u8>, bytes: &[u8]) {
    out.write_buf(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_var_uint(&mut out, value);
        out
    }

    #[test]
    fn var_uints_round_trip_at_every_length() {
        for shift in 0..64 {
            for value in [(1u64 << shift) - 1, 1u64 << shift, u64::MAX >> (63 - shift)] {
                let bytes = var(value);
                assert_eq!(bytes.len(), var_uint_len(value), "{value}");
                let mut reader = Reader::new(&bytes);
                assert_eq!(reader.read_var_u64("value"), Ok(value));
                assert!(reader.is_at_end());
            }
        }
        assert_eq!(var(u64::MAX).len(), MAX_VAR_INT_BYTES);
    }

    #[test]
    fn a_count_is_refused_when_the_bytes_left_cannot_hold_it() {
        // Two entries of at least 2 bytes in 4 bytes: fine; three: refused before any is read.
        let mut bytes = var(2);
        bytes.extend([1, 1, 2, 2]);
        assert_eq!(Reader::new(&bytes).read_count(2, "entries"), Ok(2));
        bytes[0] = 3;
        assert!(matches!(
            Reader::new(&bytes).read_count(2, "entries"),
            Err(CodecError::Truncated { .. })
        ));
        // What yrs reserved ~500 MB for: 2^28-odd entries claimed by a 4-byte var-int.
        let bomb = [0x9f, 0x98, 0x80, 0x7a];
        assert!(Reader::new(&bomb).read_count(1, "entries").is_err());
    }

    #[test]
    fn var_uints_over_64_bits_are_refused_not_truncated() {
        // Ten bytes whose last holds more than bit 63.
        let mut ten = vec![0xff; 9];
        ten.push(0x02);
        assert!(matches!(
            Reader::new(&ten).read_var_u64("value"),
            Err(CodecError::Invalid { at: 0, .. })
        ));
        // Eleven bytes.
        let mut eleven = vec![0x80; 10];
        eleven.push(0);
        assert!(matches!(
            Reader::new(&eleven).read_var_u64("value"),
            Err(CodecError::Invalid { .. })
        ));
        // A value over 32 bits where 32 are expected.
        assert!(matches!(
            Reader::new(&var(1 << 32)).read_var_u32("count"),
            Err(CodecError::Invalid { .. })
        ));
        assert_eq!(
            Reader::new(&var(u32::MAX.into())).read_var_u32("count"),
            Ok(u32::MAX)
        );
    }

    #[test]
    fn lengths_past_the_end_are_refused_before_slicing() {
        let mut buf = var(1 << 40);
        buf.extend_from_slice(b"abc");
        let error = Reader::new(&buf).read_var_buf("buffer").unwrap_err();
        assert!(matches!(error, CodecError::Truncated { .. }), "{error}");
        assert!(matches!(
            Reader::new(&[0x80]).read_var_u64("value"),
            Err(CodecError::Truncated { .. })
        ));
        // Says what and where.
        let mut reader = Reader::new(&[5, 1]);
        reader.read_u8("first").unwrap();
        assert_eq!(
            reader.read_var_buf("name").unwrap_err().to_string(),
            "length 1 runs past the end of input in name at byte 2"
        );
    }

    #[test]
    fn strings_must_be_utf8() {
        let mut good = Vec::new();
        write_var_buf(&mut good, "ü😀".as_bytes());
        assert_eq!(Reader::new(&good).read_var_str("text"), Ok("ü😀"));
        assert!(matches!(
            Reader::new(&[2, 0xc3, 0x28]).read_var_str("text"),
            Err(CodecError::Invalid { .. })
        ));
    }

    #[test]
    fn signed_var_ints_are_bounded() {
        let mut reader = Reader::new(&[0xc1, 0x80, 0x01, 7]);
        reader.skip_var_i64("integer").unwrap();
        assert_eq!(reader.pos(), 3);
        assert!(Reader::new(&[0xff; 11]).skip_var_i64("integer").is_err());
    }
}
