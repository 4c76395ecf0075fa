//! The sort key of the active-room directory and the page cursors built from it, shared by both
//! connection stores so their listings order and page alike.
//!
//! A room's directory key is `{last_active_ms, 20 digits}#{room}`: sorting keys in descending
//! string order lists the most recently active rooms first, ties broken by name, and no two rooms
//! share a key, so "every key below the cursor" is an exact next page. A cursor is that key of a
//! page's last room, URL-safe base64 (it goes in a query string).
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::ports::{StoreError, StoreResult};

/// The directory key of `room`, last active at `last_active_ms`.
pub fn directory_key(last_active_ms: u64, room: &str) -> String {
    format!("{last_active_ms:020}#{room}")
}

/// The cursor that continues a listing after the room with directory key `key`.
pub fn cursor_after(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// The directory key a cursor continues after; a cursor no listing wrote is refused.
pub fn key_of_cursor(cursor: &str) -> StoreResult<String> {
    let bad = || StoreError::BadCursor(format!("{cursor:?} is not a cursor this server wrote"));
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let key = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ms, _room) = key.split_once('#').ok_or_else(bad)?;
    if ms.len() != 20 || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_time_then_name_and_cursors_round_trip() {
        let older = directory_key(9_000, "z");
        let newer = directory_key(10_000, "a");
        assert!(newer > older, "a later time sorts higher whatever the name");
        assert!(directory_key(10_000, "b") > newer, "ties broken by name");
        let cursor = cursor_after(&newer);
        assert!(cursor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(key_of_cursor(&cursor).unwrap(), newer);
        for bad in ["", "!!", &cursor_after("12#room"), &cursor_after("no-hash")] {
            assert!(
                matches!(key_of_cursor(bad), Err(StoreError::BadCursor(_))),
                "{bad:?}"
            );
        }
    }
}
