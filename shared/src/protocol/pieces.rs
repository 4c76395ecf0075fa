//! Client-to-server messages larger than one WebSocket frame, sent as numbered pieces.
//!
//! API Gateway closes a connection on a client frame over 32 KB, and browsers send every message
//! as one frame, so a larger message (a big paste, the first sync of offline edits) travels as
//! several text messages that each fit a frame. Version 1 of a piece is one text frame:
//!
//! ```text
//! ~1:{message id}:{index}:{count}:{data}
//! ```
//!
//! - `~` cannot start a base64 y-websocket frame (not in the alphabet) nor y-webrtc JSON (`{`);
//! - `1` is the format version; another version is refused, not guessed at;
//! - the message id is 1 to 32 ASCII letters and digits, chosen by the sender, unique among its
//!   connection's unfinished messages;
//! - `index` (from 0) and `count` (at least 2) are decimal, without leading zeros;
//! - `data` is one slice of the whole message's text (its base64 y-websocket frame); the slices in
//!   index order make that text.
//!
//! Pieces may arrive in any order and more than once; the receiver stores them and handles the
//! message once, when the last piece arrives.
use std::fmt;

/// First character of every piece.
pub const PIECE_MARKER: char = '~';
/// The format version this module reads and writes.
pub const PIECE_VERSION: &str = "1";
/// Longest message id.
pub const MAX_MESSAGE_ID_LEN: usize = 32;

/// Whether a text frame is a piece (rather than a base64 frame or signaling JSON).
pub fn is_piece_frame(text: &str) -> bool {
    text.starts_with(PIECE_MARKER)
}

/// One parsed piece; `data` borrows from the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece<'a> {
    pub message_id: &'a str,
    pub index: u32,
    pub count: u32,
    pub data: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PieceError {
    #[error("piece header is malformed: {0}")]
    Malformed(&'static str),
    #[error("piece format version {0:?} is not supported (this server reads version 1)")]
    Version(String),
    #[error("piece {index} of a {count}-piece message is out of range")]
    IndexOutOfRange { index: u32, count: u32 },
    #[error("a message of {count} pieces is over the limit of {max}")]
    TooManyPieces { count: u32, max: u32 },
}

/// Parses a piece frame. `max_pieces` bounds `count` before anything is stored for it.
pub fn parse_piece(text: &str, max_pieces: u32) -> Result<Piece<'_>, PieceError> {
    let rest = text
        .strip_prefix(PIECE_MARKER)
        .ok_or(PieceError::Malformed("no ~ marker"))?;
    let mut fields = rest.splitn(5, ':');
    let mut next = |what| fields.next().ok_or(PieceError::Malformed(what));
    let version = next("no version")?;
    if version.is_empty() {
        return Err(PieceError::Malformed("no version"));
    }
    if version != PIECE_VERSION {
        return Err(PieceError::Version(version.chars().take(16).collect()));
    }
    let message_id = next("no message id")?;
    if message_id.is_empty()
        || message_id.len() > MAX_MESSAGE_ID_LEN
        || !message_id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(PieceError::Malformed(
            "message id must be 1 to 32 ASCII letters and digits",
        ));
    }
    let index = decimal(next("no index")?).ok_or(PieceError::Malformed("index is not a number"))?;
    let count = decimal(next("no count")?).ok_or(PieceError::Malformed("count is not a number"))?;
    let data = next("no data")?;
    if count < 2 {
        return Err(PieceError::Malformed("a message in pieces has at least 2"));
    }
    if count > max_pieces {
        return Err(PieceError::TooManyPieces {
            count,
            max: max_pieces,
        });
    }
    if index >= count {
        return Err(PieceError::IndexOutOfRange { index, count });
    }
    if data.is_empty() {
        return Err(PieceError::Malformed("a piece carries no data"));
    }
    Ok(Piece {
        message_id,
        index,
        count,
        data,
    })
}

/// A decimal `u32` without sign, leading zeros or anything else.
fn decimal(text: &str) -> Option<u32> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

impl fmt::Display for Piece<'_> {
    /// The piece as a frame: what [`parse_piece`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PIECE_MARKER}{PIECE_VERSION}:{}:{}:{}:{}",
            self.message_id, self.index, self.count, self.data
        )
    }
}

/// Cuts an ASCII message text into piece frames of at most `max_frame_bytes` each, or returns it
/// whole when it fits. The reference for what a sender does (the JavaScript adapter in
/// `client/` does the same); `None` if even one character of data does not fit.
pub fn split_into_pieces(
    text: &str,
    message_id: &str,
    max_frame_bytes: usize,
) -> Option<Vec<String>> {
    if text.len() <= max_frame_bytes {
        return Some(vec![text.to_string()]);
    }
    debug_assert!(text.is_ascii(), "pieces cut text by bytes");
    // Every piece's header is sized for the longest (the last index): find the smallest count
    // whose data slices, with that header, hold the whole text.
    let header_len = |count: usize| {
        format!(
            "{PIECE_MARKER}{PIECE_VERSION}:{message_id}:{}:{count}:",
            count - 1
        )
        .len()
    };
    let mut guess = 2;
    let (count, per_piece) = loop {
        let per_piece = max_frame_bytes
            .checked_sub(header_len(guess))
            .filter(|&n| n > 0)?;
        let needed = text.len().div_ceil(per_piece);
        if needed <= guess {
            break (needed, per_piece);
        }
        guess = needed;
    };
    let count = u32::try_from(count).ok()?;
    text.as_bytes()
        .chunks(per_piece)
        .zip(0u32..)
        .map(|(chunk, index)| {
            let data = std::str::from_utf8(chunk).ok()?;
            Some(
                Piece {
                    message_id,
                    index,
                    count,
                    data,
                }
                .to_string(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_round_trip_and_fit_the_frame() {
        let text = "QUJD".repeat(10_000);
        for max in [64, 100, 1000, 32 * 1024] {
            let pieces = split_into_pieces(&text, "m1", max).expect("fits");
            assert!(pieces.iter().all(|p| p.len() <= max), "{max}");
            let mut parsed: Vec<Piece> = pieces
                .iter()
                .map(|p| parse_piece(p, u32::MAX).expect("parses"))
                .collect();
            let count = parsed.len() as u32;
            assert!(parsed
                .iter()
                .all(|p| p.count == count && p.message_id == "m1"));
            parsed.sort_by_key(|p| p.index);
            let joined: String = parsed.iter().map(|p| p.data).collect();
            assert_eq!(joined, text);
        }
        // Small messages stay as they are.
        assert_eq!(
            split_into_pieces("AAAB", "m", 64),
            Some(vec!["AAAB".to_string()])
        );
        // A frame too small for even a header.
        assert_eq!(split_into_pieces(&text, "m", 8), None);
    }

    #[test]
    fn pieces_are_told_apart_from_other_frames() {
        assert!(is_piece_frame("~1:a:0:2:QUJD"));
        assert!(!is_piece_frame("AAABAA=="));
        assert!(!is_piece_frame(r#"{"type":"ping"}"#));
    }

    #[test]
    fn bad_headers_are_refused_with_a_reason() {
        let ok = parse_piece("~1:abc:1:3:QUJD", 10).unwrap();
        assert_eq!(
            (ok.message_id, ok.index, ok.count, ok.data),
            ("abc", 1, 3, "QUJD")
        );
        // Data may contain the separator.
        assert_eq!(parse_piece("~1:a:0:2:x:y", 10).unwrap().data, "x:y");
        for bad in [
            "1:a:0:2:QUJD",
            "~",
            "~1",
            "~1:a:0:2",
            "~1:a:0:2:",
            "~1::0:2:QUJD",
            "~1:a-b:0:2:QUJD",
            &format!("~1:{}:0:2:QUJD", "a".repeat(33)),
            "~1:a:x:2:QUJD",
            "~1:a:01:2:QUJD",
            "~1:a:-1:2:QUJD",
            "~1:a:0:+2:QUJD",
            "~1:a:0:1:QUJD",
            "~1:a:0:99999999999:QUJD",
        ] {
            assert!(
                matches!(parse_piece(bad, 10), Err(PieceError::Malformed(_))),
                "{bad:?}: {:?}",
                parse_piece(bad, 10)
            );
        }
        assert_eq!(
            parse_piece("~2:a:0:2:QUJD", 10),
            Err(PieceError::Version("2".into()))
        );
        assert_eq!(
            parse_piece("~1:a:2:2:QUJD", 10),
            Err(PieceError::IndexOutOfRange { index: 2, count: 2 })
        );
        assert_eq!(
            parse_piece("~1:a:0:11:QUJD", 10),
            Err(PieceError::TooManyPieces { count: 11, max: 10 })
        );
    }
}
