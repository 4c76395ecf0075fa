//! Messages that arrive in pieces, on Redis: one hash per message and one sorted set of a
//! connection's incomplete messages, both under the connection's hash tag, updated by one Lua
//! script so that storing a piece and completing its message are atomic (exactly one caller
//! completes a message, however many Lambda instances store its pieces at once).
//!
//! | key | type | content |
//! | --- | --- | --- |
//! | `ylp:{C}:m:{id}` | hash | `count`, `bytes`, `have`, and `p{index}` = the piece's data; once complete, only `done` |
//! | `ylp:{C}:open` | sorted set | ids of the connection's incomplete messages, scored by expiry (ms) |
//!
//! `C` is the connection id, escaped as room names are. Both keys expire after the piece TTL.
use redis::Value;

use super::wire::room_tag;
use crate::ports::{PieceOutcome, PieceRefusal};

/// KEYS: message hash, open set. ARGV: index, count, data, max open messages, max text bytes,
/// TTL ms, now ms, message id. Returns `{'waiting'}`, `{'duplicate'}`, `{'complete', text}` or
/// `{'refused', why}`; refusals store nothing new.
pub(super) const PIECE_SCRIPT: &str = r"
local index, count, data = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local max_open, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local ttl, now, id = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
if redis.call('HEXISTS', KEYS[1], 'done') == 1 then return {'duplicate'} end
local known = redis.call('HGET', KEYS[1], 'count')
if known then
  if tonumber(known) ~= count then return {'refused', 'count'} end
else
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= max_open then return {'refused', 'open'} end
end
local field = 'p' .. index
local stored = redis.call('HGET', KEYS[1], field)
if stored then
  if stored == data then return {'duplicate'} end
  return {'refused', 'overlap'}
end
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0') + string.len(data)
if bytes > max_bytes then return {'refused', 'size'} end
if not known then
  redis.call('HSET', KEYS[1], 'count', count)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('ZADD', KEYS[2], now + ttl, id)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('HSET', KEYS[1], field, data, 'bytes', bytes)
if redis.call('HINCRBY', KEYS[1], 'have', 1) < count then return {'waiting'} end
local parts = {}
for i = 0, count - 1 do parts[#parts + 1] = redis.call('HGET', KEYS[1], 'p' .. i) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'done', 1)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZREM', KEYS[2], id)
return {'complete', table.concat(parts)}
";

/// The keys of one message of one connection.
pub(super) struct PieceKeys {
    pub(super) message: String,
    pub(super) open: String,
}

impl PieceKeys {
    pub(super) fn new(connection_id: &str, message_id: &str) -> Self {
        let base = format!("ylp:{{{}}}", room_tag(connection_id));
        PieceKeys {
            message: format!("{base}:m:{message_id}"),
            open: format!("{base}:open"),
        }
    }
}

/// The script's reply as an outcome; anything else is an error naming it.
pub(super) fn piece_outcome(reply: &Value) -> Result<PieceOutcome, String> {
    let Value::Array(items) = reply else {
        return Err(format!("piece script replied {reply:?}"));
    };
    let text = |value: &Value| match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    };
    let words: Vec<Option<String>> = items.iter().map(text).collect();
    match words.as_slice() {
        [Some(kind)] if kind == "waiting" => Ok(PieceOutcome::Waiting),
        [Some(kind)] if kind == "duplicate" => Ok(PieceOutcome::Duplicate),
        [Some(kind), Some(text)] if kind == "complete" => Ok(PieceOutcome::Complete(text.clone())),
        [Some(kind), Some(why)] if kind == "refused" => {
            Ok(PieceOutcome::Refused(match why.as_str() {
                "count" => PieceRefusal::CountMismatch,
                "overlap" => PieceRefusal::Overlap,
                "size" => PieceRefusal::TooLarge,
                "open" => PieceRefusal::TooManyOpen,
                other => return Err(format!("piece script refused for {other:?}")),
            }))
        }
        _ => Err(format!("piece script replied {reply:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(words: &[&str]) -> Value {
        Value::Array(
            words
                .iter()
                .map(|w| Value::BulkString(w.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn replies_are_read_strictly() {
        assert_eq!(
            piece_outcome(&bulk(&["waiting"])),
            Ok(PieceOutcome::Waiting)
        );
        assert_eq!(
            piece_outcome(&bulk(&["complete", "QUJD"])),
            Ok(PieceOutcome::Complete("QUJD".into()))
        );
        assert_eq!(
            piece_outcome(&bulk(&["refused", "overlap"])),
            Ok(PieceOutcome::Refused(PieceRefusal::Overlap))
        );
        assert!(piece_outcome(&bulk(&["refused", "why not"])).is_err());
        assert!(piece_outcome(&bulk(&["complete"])).is_err());
        assert!(piece_outcome(&Value::Int(1)).is_err());
    }

    #[test]
    fn a_connections_keys_share_one_slot_and_never_mix() {
        let a = PieceKeys::new("Ab+c/d=", "m1");
        assert_eq!(a.message, "ylp:{Ab+c/d=}:m:m1");
        assert_eq!(a.open, "ylp:{Ab+c/d=}:open");
        // A connection id cannot end the hash tag early.
        let odd = PieceKeys::new("x}y", "m1");
        assert!(odd.message.starts_with("ylp:{x%7Dy}"), "{}", odd.message);
    }
}
