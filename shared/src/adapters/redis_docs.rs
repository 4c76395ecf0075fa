//! Redis adapter of the [`DocStore`] port: a stream per room for the update log, a hash for
//! awareness, a pub/sub channel for the live relay, and small keys for the compaction lock and the
//! epoch marker.
//!
//! # Key layout
//! Every key of a room carries the room in a `{...}` hash tag, so a Redis Cluster keeps all of them
//! on one slot (the Lua scripts and MULTI blocks below touch several keys of one room at once):
//!
//! | key | type | content |
//! | --- | --- | --- |
//! | `yl:{R}:log` | stream | one entry per accepted update: field `u` = the Yjs update v1 bytes |
//! | `yl:{R}:bytes` | string | sum of the update bytes in the log (kept by `append` and `trim_log`) |
//! | `yl:{R}:awareness` | hash | connection id -> encoded [`AwarenessEntry`] (see `encode_awareness`) |
//! | `yl:{R}:compact` | string | compaction lock token (SET NX PX) |
//! | `yl:{R}:epoch` | string | `1` while the room's live data exists (invariant 6) |
//! | `yl:{R}` | channel | every relayed message (PUBLISH) |
//!
//! `R` is the room name with `%`, `{` and `}` percent-escaped (the empty name is written `%`), so a
//! name can neither end the hash tag early nor make two rooms share keys.
//!
//! # Expiry
//! - The log, its byte counter and the epoch have no TTL: an update that expires before compaction
//!   has written it to a snapshot would be lost, and a vanished epoch reads as a Redis data loss.
//!   Compaction trims the log. For the same reason the server must not run an `allkeys-*` eviction
//!   policy: `noeviction` or `volatile-*` (the ElastiCache default, `volatile-lru`) only ever evicts
//!   the keys that do have a TTL, here awareness and locks, both of which are safe to lose.
//! - The awareness hash expires [`AWARENESS_TTL_MS`] after its last write. API Gateway ends every
//!   connection after 2 h, so by then every connection that wrote an entry is gone; this cleans up
//!   after `$disconnect`s that never ran.
//! - The lock expires by its own PX.
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, Script, Value};

use crate::ports::{
    Appended, AwarenessEntry, DocStore, LockToken, LogPosition, LogRead, StoreError, StoreResult,
};

/// How long an awareness hash lives after its last write: longer than API Gateway's 2 h maximum
/// connection lifetime, so only entries of connections that are certainly gone can expire.
pub const AWARENESS_TTL_MS: u64 = 3 * 60 * 60 * 1000;

/// Establishing a connection (TCP + TLS + AUTH): ElastiCache in a VPC answers in milliseconds; a
/// few seconds covers a failover without hanging a Lambda until its own timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One command's answer. The crate's default (500 ms) is too tight for reading or trimming a long
/// log; Lambdas time out after seconds, so this still fails before they do.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect attempts of the connection manager before a command fails.
const RECONNECT_RETRIES: usize = 3;
/// Optimistic `put_awareness` retries. Only concurrent writes for the same connection conflict,
/// and one connection sends an awareness update every ~15 s, so a second attempt is already rare.
const AWARENESS_CAS_ATTEMPTS: usize = 8;

/// The stream entry field holding the update bytes.
const LOG_FIELD: &[u8] = b"u";
/// Version byte leading every encoded awareness entry, so the encoding can change without an old
/// reader misreading a new entry (it reports it corrupt instead).
const AWARENESS_V1: u8 = 1;

/// Trims the log up to (excluding) `ARGV[1]` and recomputes the byte counter from what is left:
/// trimming is rare and the log is short right after a compaction, and recomputing repairs any
/// drift in the counter. Runs atomically, so no append can land between trim and recount.
const TRIM_SCRIPT: &str = r"
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
local total = 0
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'u' then total = total + string.len(fields[i + 1]) end
  end
end
if total == 0 then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], total) end
return total
";

/// Compare-and-set of one awareness entry: writes `ARGV[4]` for connection `ARGV[1]` only if the
/// stored entry is still the one the caller read (`ARGV[2]` = '1' and `ARGV[3]` its bytes, or
/// `ARGV[2]` = '0': there was none), and refreshes the hash's TTL (`ARGV[5]` ms). Returns 1 if
/// written, 0 if someone wrote in between (the caller re-reads and merges again).
const AWARENESS_CAS_SCRIPT: &str = r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  if current ~= ARGV[3] then return 0 end
elseif current then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

/// Deletes the lock only if it still holds the caller's token, so a holder whose lock expired
/// cannot release the lock of the next holder.
const UNLOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The [`DocStore`] on Redis (standalone, ElastiCache, or a cluster: every multi-key operation
/// stays within one room's hash slot).
///
/// Build it once per process (a Lambda's cold start) and share it: the [`ConnectionManager`] is
/// one multiplexed connection that reconnects by itself, so it survives across invocations.
#[derive(Clone)]
pub struct RedisDocStore {
    /// Opens the dedicated pub/sub connections of [`RedisDocStore::subscribe`].
    client: redis::Client,
    conn: ConnectionManager,
    /// The URL without its password, for messages.
    target: String,
    trim: Script,
    awareness_cas: Script,
    unlock: Script,
}

impl fmt::Debug for RedisDocStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDocStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl RedisDocStore {
    /// Connects to `redis://[user[:password]@]host[:port][/db]` or `rediss://...` (TLS, checked
    /// against the webpki roots, as ElastiCache's in-transit encryption needs). Fails if the server
    /// cannot be reached now; later disconnects are repaired by reconnecting.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let target = redact_url(url);
        // redis' rustls has no crypto provider compiled in for it to pick; install ring as the
        // process default. An error means a provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Backend(format!("invalid Redis URL {target}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES);
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| {
                StoreError::Backend(format!("cannot connect to Redis at {target}: {e}"))
            })?;
        tracing::info!(url = %target, "connected to Redis");
        Ok(Self {
            client,
            conn,
            target,
            trim: Script::new(TRIM_SCRIPT),
            awareness_cas: Script::new(AWARENESS_CAS_SCRIPT),
            unlock: Script::new(UNLOCK_SCRIPT),
        })
    }

    /// Everything published on a room's channel from now on (relayed updates and awareness), for
    /// long-lived listeners. Uses a dedicated connection (a subscribed connection can run no other
    /// command); SUBSCRIBE is confirmed before this returns, so every later publish is received.
    /// The stream ends when that connection drops: subscribe again to resume (messages published
    /// in between are not replayed; the log has the updates).
    pub async fn subscribe(
        &self,
        room: &str,
    ) -> StoreResult<impl Stream<Item = Vec<u8>> + Send + 'static> {
        let channel = RoomKeys::new(room).channel;
        // The pub/sub connection is not the manager's, so it gets the same deadlines explicitly.
        let subscribed = tokio::time::timeout(CONNECT_TIMEOUT + RESPONSE_TIMEOUT, async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, RedisError>(pubsub)
        })
        .await
        .map_err(|_| {
            StoreError::Backend(format!(
                "timed out subscribing to room {room:?} at {}",
                self.target
            ))
        })?;
        let pubsub = subscribed.map_err(|e| self.error("subscribe", room, e))?;
        tracing::debug!(room, channel, "subscribed");
        Ok(pubsub
            .into_on_message()
            .map(|msg| msg.get_payload_bytes().to_vec()))
    }

    /// Maps a Redis failure to the port's error. A reply of the wrong shape or a key of the wrong
    /// type means something other than this adapter wrote the room's keys: that is corrupt data,
    /// not an outage, and retrying will not help.
    fn error(&self, op: &str, room: &str, err: RedisError) -> StoreError {
        let message = format!("redis {op} for room {room:?} at {}: {err}", self.target);
        if is_unexpected_data(&err) {
            tracing::warn!(op, room, error = %err, "unexpected data in Redis");
            StoreError::Corrupt(message)
        } else {
            StoreError::Backend(message)
        }
    }

    fn corrupt(&self, room: &str, what: impl fmt::Display) -> StoreError {
        tracing::warn!(room, %what, "corrupt data in Redis");
        StoreError::Corrupt(format!("room {room:?} at {}: {what}", self.target))
    }

    /// The `ConnectionManager` is a cheap handle onto one shared multiplexed connection; commands
    /// need it mutably, so each operation works on its own clone.
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

#[async_trait]
impl DocStore for RedisDocStore {
    /// One MULTI/EXEC block, sent as one pipeline (one round trip). Redis runs the block with no
    /// other client's command in between, so the update is in the log before the relay is
    /// published (invariant 1) and the reported size is exactly the log's after this append.
    #[tracing::instrument(level = "debug", skip_all, fields(room = %room, len = update.len()))]
    async fn append(&self, room: &str, update: &[u8], relay: &[u8]) -> StoreResult<Appended> {
        let keys = RoomKeys::new(room);
        let (id, bytes, entries, _receivers): (String, i64, i64, i64) = redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(&keys.log)
            .arg("*")
            .arg(LOG_FIELD)
            .arg(update)
            .cmd("INCRBY")
            .arg(&keys.bytes)
            .arg(update.len())
            .cmd("XLEN")
            .arg(&keys.log)
            .cmd("PUBLISH")
            .arg(&keys.channel)
            .arg(relay)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("append", room, e))?;
        let entries = usize::try_from(entries)
            .map_err(|_| self.corrupt(room, format!("negative log length {entries}")))?;
        let bytes = usize::try_from(bytes)
            .map_err(|_| self.corrupt(room, format!("negative log byte count {bytes}")))?;
        tracing::debug!(position = %id, entries, bytes, "appended");
        Ok(Appended {
            position: LogPosition(id),
            entries,
            bytes,
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(room = %room))]
    async fn read_log(&self, room: &str) -> StoreResult<LogRead> {
        let keys = RoomKeys::new(room);
        let reply: Value = redis::cmd("XRANGE")
            .arg(&keys.log)
            .arg("-")
            .arg("+")
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("read_log", room, e))?;
        parse_log(reply).map_err(|what| self.corrupt(room, what))
    }

    /// XTRIM MINID removes the entries *below* an id, so it is given the id right after `upto`.
    #[tracing::instrument(level = "debug", skip_all, fields(room = %room, upto = %upto))]
    async fn trim_log(&self, room: &str, upto: &LogPosition) -> StoreResult<()> {
        let min_kept = next_stream_id(upto).ok_or_else(|| {
            StoreError::Corrupt(format!("not a Redis stream id: {upto} (room {room:?})"))
        })?;
        let keys = RoomKeys::new(room);
        let remaining: i64 = self
            .trim
            .key(&keys.log)
            .key(&keys.bytes)
            .arg(&min_kept)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error("trim_log", room, e))?;
        tracing::debug!(remaining_bytes = remaining, "trimmed");
        Ok(())
    }

    /// Read, merge (the same [`AwarenessEntry::merge`] as the embedded store) and compare-and-set: the
    /// write only lands if the entry is unchanged since it was read, else it is merged again.
    /// API Gateway may run two messages of one connection concurrently, so a plain
    /// read-modify-write could drop a client id that `$disconnect` must later announce as removed.
    #[tracing::instrument(level = "debug", skip_all, fields(room = %room, connection = %entry.connection_id))]
    async fn put_awareness(&self, room: &str, entry: AwarenessEntry) -> StoreResult<()> {
        let keys = RoomKeys::new(room);
        let mut conn = self.conn();
        for _ in 0..AWARENESS_CAS_ATTEMPTS {
            let current: Option<Vec<u8>> = redis::cmd("HGET")
                .arg(&keys.awareness)
                .arg(&entry.connection_id)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error("put_awareness", room, e))?;
            let merged = match &current {
                Some(raw) => match decode_awareness(&entry.connection_id, raw) {
                    Ok(previous) => previous.merge(entry.clone()),
                    // The new update replaces the old anyway; only the client ids of an entry
                    // nobody can read are lost, and replacing it heals the room.
                    Err(what) => {
                        tracing::warn!(%what, "replacing an undecodable awareness entry");
                        entry.clone()
                    }
                },
                None => entry.clone(),
            };
            let written: i64 = self
                .awareness_cas
                .key(&keys.awareness)
                .arg(&entry.connection_id)
                .arg(if current.is_some() { "1" } else { "0" })
                .arg(current.as_deref().unwrap_or_default())
                .arg(encode_awareness(&merged))
                .arg(AWARENESS_TTL_MS)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.error("put_awareness", room, e))?;
            if written == 1 {
                return Ok(());
            }
            tracing::debug!("awareness entry changed concurrently; merging again");
        }
        Err(StoreError::Backend(format!(
            "awareness of connection {} in room {room:?} kept changing during \
             {AWARENESS_CAS_ATTEMPTS} attempts",
            entry.connection_id
        )))
    }

    /// Entries that cannot be decoded (written by a newer version during a deploy, or by
    /// something else) are skipped with a warning rather than failing the read: this runs for
    /// every joining client, and one bad entry must not keep the whole room from syncing.
    #[tracing::instrument(level = "debug", skip_all, fields(room = %room))]
    async fn awareness(&self, room: &str) -> StoreResult<Vec<AwarenessEntry>> {
        let keys = RoomKeys::new(room);
        let fields: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(&keys.awareness)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("awareness", room, e))?;
        let mut entries = Vec::with_capacity(fields.len());
        for (field, raw) in fields {
            let decoded = String::from_utf8(field)
                .map_err(|_| "connection id is not UTF-8".to_string())
                .and_then(|id| decode_awareness(&id, &raw));
            match decoded {
                Ok(entry) => entries.push(entry),
                Err(what) => tracing::warn!(room, %what, "skipping undecodable awareness entry"),
            }
        }
        entries.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
        Ok(entries)
    }

    /// HGET and HDEL in one MULTI block, so two `$disconnect`s cannot both get the entry.
    #[tracing::instrument(level = "debug", skip_all, fields(room = %room, connection = connection_id))]
    async fn remove_awareness(
        &self,
        room: &str,
        connection_id: &str,
    ) -> StoreResult<Option<AwarenessEntry>> {
        let keys = RoomKeys::new(room);
        let (raw, _deleted): (Option<Vec<u8>>, i64) = redis::pipe()
            .atomic()
            .cmd("HGET")
            .arg(&keys.awareness)
            .arg(connection_id)
            .cmd("HDEL")
            .arg(&keys.awareness)
            .arg(connection_id)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("remove_awareness", room, e))?;
        // The entry is gone either way; a corrupt one is reported, not returned half-read.
        raw.map(|raw| decode_awareness(connection_id, &raw))
            .transpose()
            .map_err(|what| self.corrupt(room, what))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(room = %room, len = message.len()))]
    async fn publish(&self, room: &str, message: &[u8]) -> StoreResult<()> {
        let keys = RoomKeys::new(room);
        let _receivers: i64 = redis::cmd("PUBLISH")
            .arg(&keys.channel)
            .arg(message)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("publish", room, e))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(room = %room, ttl_ms = ttl_ms))]
    async fn try_lock(&self, room: &str, ttl_ms: u64) -> StoreResult<Option<LockToken>> {
        let keys = RoomKeys::new(room);
        let token = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let reply: Value = redis::cmd("SET")
            .arg(&keys.compact)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms.max(1)) // PX 0 is an error in Redis
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("try_lock", room, e))?;
        match set_nx_outcome(&reply) {
            Some(true) => Ok(Some(LockToken(token))),
            Some(false) => Ok(None),
            None => Err(self.corrupt(room, format!("unexpected SET NX reply {reply:?}"))),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(room = %room))]
    async fn unlock(&self, room: &str, token: &LockToken) -> StoreResult<()> {
        let keys = RoomKeys::new(room);
        let released: i64 = self
            .unlock
            .key(&keys.compact)
            .arg(&token.0)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error("unlock", room, e))?;
        if released == 0 {
            tracing::debug!("lock had expired or was taken over; nothing released");
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(room = %room))]
    async fn ensure_epoch(&self, room: &str) -> StoreResult<bool> {
        let keys = RoomKeys::new(room);
        let reply: Value = redis::cmd("SET")
            .arg(&keys.epoch)
            .arg(1)
            .arg("NX")
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("ensure_epoch", room, e))?;
        match set_nx_outcome(&reply) {
            Some(created) => Ok(!created),
            None => Err(self.corrupt(room, format!("unexpected SET NX reply {reply:?}"))),
        }
    }
}

/// Whether a failure means the room's keys hold something this adapter did not write: a reply
/// that does not convert to the expected type, or WRONGTYPE (also inside a MULTI block, where the
/// crate reports each failed command separately).
fn is_unexpected_data(err: &RedisError) -> bool {
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
struct RoomKeys {
    log: String,
    bytes: String,
    awareness: String,
    compact: String,
    epoch: String,
    channel: String,
}

impl RoomKeys {
    fn new(room: &str) -> Self {
        let channel = format!("yl:{{{}}}", room_tag(room));
        Self {
            log: format!("{channel}:log"),
            bytes: format!("{channel}:bytes"),
            awareness: format!("{channel}:awareness"),
            compact: format!("{channel}:compact"),
            epoch: format!("{channel}:epoch"),
            channel,
        }
    }
}

/// The room as written inside the hash tag. Percent-escaping `%`, `{` and `}` is injective and
/// leaves no `}` to end the tag early. An empty tag (`{}`) would make Redis Cluster hash the whole
/// key, scattering the room over slots, so the empty name becomes `%`, which no escaped name is.
fn room_tag(room: &str) -> String {
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
fn set_nx_outcome(reply: &Value) -> Option<bool> {
    match reply {
        Value::Okay => Some(true),
        Value::SimpleString(s) if s == "OK" => Some(true),
        Value::Nil => Some(false),
        _ => None,
    }
}

/// The stream id right after `position` (`ms-seq` -> `ms-(seq+1)`), or `None` if `position` is
/// not a stream id.
fn next_stream_id(position: &LogPosition) -> Option<String> {
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
fn parse_log(reply: Value) -> Result<LogRead, String> {
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

/// Encodes an awareness entry (the connection id is the hash field, so it is not repeated):
/// version byte `1`, client count (u32 BE), per client its id (u64 BE) and clock (u32 BE), then
/// the awareness update bytes to the end. Compact, binary-safe and cheap to validate.
fn encode_awareness(entry: &AwarenessEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + entry.clients.len() * 12 + entry.update.len());
    out.push(AWARENESS_V1);
    // More than u32::MAX clients cannot be announced in one 128 KB message anyway.
    let count = u32::try_from(entry.clients.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for (id, clock) in entry.clients.iter().take(count as usize) {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&clock.to_be_bytes());
    }
    out.extend_from_slice(&entry.update);
    out
}

/// The inverse of [`encode_awareness`]; any length or version mismatch is an error, never a panic.
fn decode_awareness(connection_id: &str, raw: &[u8]) -> Result<AwarenessEntry, String> {
    let bad = |why: &str| format!("awareness entry of connection {connection_id:?}: {why}");
    let (&version, rest) = raw.split_first().ok_or_else(|| bad("empty"))?;
    if version != AWARENESS_V1 {
        return Err(bad(&format!("unknown encoding version {version}")));
    }
    let (count, mut rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("truncated client count"))?;
    let count = u32::from_be_bytes(*count) as usize;
    if count.checked_mul(12).is_none_or(|need| need > rest.len()) {
        return Err(bad("truncated client list"));
    }
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        let (id, after_id) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| bad("truncated client id"))?;
        let (clock, after_clock) = after_id
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("truncated clock"))?;
        clients.push((u64::from_be_bytes(*id), u32::from_be_bytes(*clock)));
        rest = after_clock;
    }
    Ok(AwarenessEntry {
        connection_id: connection_id.to_string(),
        clients,
        update: rest.to_vec(),
    })
}

/// The URL with its password replaced by `***`, for messages and logs.
fn redact_url(url: &str) -> String {
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
    fn awareness_encoding_round_trips_and_rejects_damage() {
        let entry = AwarenessEntry {
            connection_id: "c1".into(),
            clients: vec![(u64::MAX, u32::MAX), (0, 0), (42, 7)],
            update: (0..=255u8).collect(),
        };
        let raw = encode_awareness(&entry);
        assert_eq!(decode_awareness("c1", &raw), Ok(entry.clone()));
        let empty = AwarenessEntry {
            connection_id: "c2".into(),
            clients: vec![],
            update: vec![],
        };
        assert_eq!(decode_awareness("c2", &encode_awareness(&empty)), Ok(empty));

        assert!(decode_awareness("c1", &[]).is_err());
        assert!(decode_awareness("c1", &[2, 0, 0, 0, 0]).is_err(), "version");
        assert!(decode_awareness("c1", &[1, 0, 0]).is_err(), "short count");
        assert!(decode_awareness("c1", &raw[..5 + 3 * 12 - 1]).is_err());
        assert!(decode_awareness("c1", &[1, 0xff, 0xff, 0xff, 0xff, 0]).is_err());
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
