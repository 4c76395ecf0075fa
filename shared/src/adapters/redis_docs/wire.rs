//! What the Redis doc store writes and reads: room key names, the awareness entry encoding,
//! stream replies and log positions, and error and URL helpers. Pure functions over bytes and
//! replies, tested here without a server.
use redis::{ErrorKind, RedisError, Value};

use crate::ports::{LogPosition, LogRead};

/// The stream entry field holding the update bytes.
pub(super) const LOG_FIELD: &[u8] = b"u";

/// Whether a failure means the room's keys hold something this adapter did not write: a reply
/// that does not convert to the expected type, or WRONGTYPE (also inside a MULTI block, where the
/// crate reports each failed command separately).
pub(super) fn is_unexpected_data(err: &RedisError) -> bool {
    const WRONGTYPE: &str = "WRONGTYPE";
    matches!(
        err.kind(),
        ErrorKind::UnexpectedReturnType | ErrorKind::Parse
    ) || err.code() == Some(WRONGTYPE)
        || err
            .clone()
            .into_server_errors()
            .is_some_and(|failed| failed.iter().any(|(_, e)| e.code() == WRONGTYPE))
}

/// The keys and channel of one room.
pub(super) struct RoomKeys {
    pub(super) log: String,
    pub(super) bytes: String,
    pub(super) awareness: String,
    pub(super) compact: String,
    pub(super) epoch: String,
    pub(super) roster: String,
    pub(super) channel: String,
}

impl RoomKeys {
    pub(super) fn new(room: &str) -> Self {
        let channel = format!("yl:{{{}}}", room_tag(room));
        Self {
            log: format!("{channel}:log"),
            bytes: format!("{channel}:bytes"),
            awareness: format!("{channel}:awareness"),
            compact: format!("{channel}:compact"),
            epoch: format!("{channel}:epoch"),
            roster: format!("{channel}:roster"),
            channel,
        }
    }
}

/// The room as written inside the hash tag. Percent-escaping `%`, `{` and `}` is injective and
/// leaves no `}` to end the tag early. An empty tag (`{}`) would make Redis Cluster hash the whole
/// key, scattering the room over slots, so the empty name becomes `%`, which no escaped name is.
pub(super) fn room_tag(room: &str) -> String {
    if room.is_empty() {
        return "%".to_string();
    }
    let mut tag = String::with_capacity(room.len());
    for c in room.chars() {
        match c {
            '%' => tag.push_str("%25"),
            '{' => tag.push_str("%7B"),
            '}' => tag.push_str("%7D"),
            c => tag.push(c),
        }
    }
    tag
}

/// The reply of `SET ... NX`: `Some(true)` if it set the key, `Some(false)` if the key existed.
pub(super) fn set_nx_outcome(reply: &Value) -> Option<bool> {
    match reply {
        Value::Okay => Some(true),
        Value::SimpleString(s) if s == "OK" => Some(true),
        Value::Nil => Some(false),
        _ => None,
    }
}

/// The stream id right after `position` (`ms-seq` -> `ms-(seq+1)`), or `None` if `position` is
/// not a stream id.
pub(super) fn next_stream_id(position: &LogPosition) -> Option<String> {
    let (ms, seq) = position.0.split_once('-')?;
    let number = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse::<u64>().ok()
        }
    };
    let (ms, seq) = (number(ms)?, number(seq)?);
    match seq.checked_add(1) {
        Some(seq) => Some(format!("{ms}-{seq}")),
        None => Some(format!("{}-0", ms.checked_add(1)?)),
    }
}

/// Decodes an XRANGE reply: `[[id, [field, value, ...]], ...]`.
pub(super) fn parse_log(reply: Value) -> Result<LogRead, String> {
    let Value::Array(items) = reply else {
        return Err(format!("XRANGE reply is not an array: {reply:?}"));
    };
    let mut read = LogRead::default();
    for item in items {
        let Value::Array(parts) = item else {
            return Err("log entry is not an array".into());
        };
        let mut parts = parts.into_iter();
        let (Some(id), Some(fields), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("log entry is not [id, fields]".into());
        };
        let id = match id {
            Value::BulkString(b) => String::from_utf8(b).map_err(|_| "log id is not UTF-8")?,
            Value::SimpleString(s) => s,
            other => return Err(format!("log id is not a string: {other:?}")),
        };
        let fields = match fields {
            Value::Array(fields) => fields,
            // RESP3 servers may answer a field list as a map.
            Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            other => return Err(format!("fields of log entry {id} are {other:?}")),
        };
        let mut update = None;
        let mut fields = fields.into_iter();
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            if matches!(&name, Value::BulkString(n) if n == LOG_FIELD) {
                match value {
                    Value::BulkString(bytes) => update = Some(bytes),
                    other => return Err(format!("update of log entry {id} is {other:?}")),
                }
            }
        }
        let update = update.ok_or_else(|| format!("log entry {id} has no update field"))?;
        read.updates.push(update);
        read.last = Some(LogPosition(id));
    }
    Ok(read)
}

/// The URL with its password replaced by `***`, for messages and logs.
pub(super) fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***"),
                // `redis://secret@host`: some clients read a lone userinfo as the password.
                None => "***".to_string(),
            };
            format!("{scheme}{user}@{host}{tail}")
        }
        None => format!("{scheme}{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_tags_are_injective_and_never_end_the_hash_tag() {
        let names = [
            "", "%", "%25", "{", "}", "%7B", "{}", "a:b", "a}:log", "a b", "ü✓", "a{b}c",
        ];
        let tags: Vec<String> = names.iter().map(|n| room_tag(n)).collect();
        for (i, tag) in tags.iter().enumerate() {
            assert!(!tag.is_empty(), "empty hash tag for {:?}", names[i]);
            assert!(!tag.contains('}') && !tag.contains('{'), "{tag:?}");
            for (j, other) in tags.iter().enumerate() {
                assert!(i == j || tag != other, "{:?} / {:?}", names[i], names[j]);
            }
        }
        assert_eq!(RoomKeys::new("a}b").log, "yl:{a%7Db}:log");
        assert_eq!(RoomKeys::new("doc").channel, "yl:{doc}");
    }

    #[test]
    fn next_stream_id_steps_past_the_position() {
        let next = |s: &str| next_stream_id(&LogPosition(s.into()));
        assert_eq!(next("1700000000000-0").as_deref(), Some("1700000000000-1"));
        assert_eq!(
            next(&format!("5-{}", u64::MAX)).as_deref(),
            Some("6-0"),
            "sequence overflow carries into the time part"
        );
        for bad in ["", "7", "-1", "1-", "a-1", "1-b", "+1-2", "1-2-3", "1 -2"] {
            assert_eq!(next(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn log_replies_are_parsed_defensively() {
        let entry = |id: &str, fields: Vec<Value>| {
            Value::Array(vec![
                Value::BulkString(id.as_bytes().to_vec()),
                Value::Array(fields),
            ])
        };
        let good = Value::Array(vec![
            entry(
                "1-0",
                vec![
                    Value::BulkString(b"u".to_vec()),
                    Value::BulkString(vec![0, 255]),
                ],
            ),
            entry(
                "1-1",
                vec![
                    Value::BulkString(b"x".to_vec()),
                    Value::BulkString(vec![9]),
                    Value::BulkString(b"u".to_vec()),
                    Value::BulkString(vec![]),
                ],
            ),
        ]);
        let read = parse_log(good).unwrap();
        assert_eq!(read.updates, vec![vec![0, 255], vec![]]);
        assert_eq!(read.last, Some(LogPosition("1-1".into())));
        assert_eq!(parse_log(Value::Array(vec![])).unwrap(), LogRead::default());

        assert!(parse_log(Value::Nil).is_err());
        assert!(parse_log(Value::Array(vec![Value::Int(1)])).is_err());
        assert!(parse_log(Value::Array(vec![entry("1-0", vec![])])).is_err());
        assert!(parse_log(Value::Array(vec![entry(
            "1-0",
            vec![Value::BulkString(b"u".to_vec()), Value::Int(3)]
        )]))
        .is_err());
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact_url("rediss://app:s3cret@cache.example:6379/0"),
            "rediss://app:***@cache.example:6379/0"
        );
        assert_eq!(
            redact_url("redis://:pw@127.0.0.1:7000"),
            "redis://:***@127.0.0.1:7000"
        );
        assert_eq!(redact_url("redis://pw@h"), "redis://***@h");
        assert_eq!(redact_url("redis://127.0.0.1:1"), "redis://127.0.0.1:1");
        assert_eq!(redact_url("redis://u:p@ss@h/1"), "redis://u:***@h/1");
    }
}
