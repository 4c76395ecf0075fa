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
//! | `yl:{R}:awareness` | hash | connection id -> encoded [`AwarenessEntry`] (see `awareness_codec`) |
//! | `yl:{R}:compact` | string | compaction lock token (SET NX PX) |
//! | `yl:{R}:epoch` | string | `1` while the room's live data exists (ARCHITECTURE.md invariant 6) |
//! | `yl:{R}:roster` | string | the room's roster version, a random u64 (ARCHITECTURE.md invariant 21) |
//! | `yl:{R}` | channel | every relayed message (PUBLISH) |
//! | `ylp:{C}:m:{id}`, `ylp:{C}:open` | hash, zset | pieces of connection `C`'s messages (see `pieces`) |
//! | `ylr:{C}:{W}` | string | messages connection `C` sent in rate window `W` (INCR, EXPIRE) |
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
//! - The roster version expires [`AWARENESS_TTL_MS`] after it was set: every connection of the
//!   room has joined or left since (API Gateway's 2 h), and a missing version only means the
//!   members are read again.
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script, Value};

mod channels;
mod feed;
mod pieces;
mod wire;

use channels::channel_name;
pub use channels::RedisRelayListener;
use pieces::{piece_outcome, PieceKeys, PIECE_SCRIPT};
use wire::{
    is_unexpected_data, next_stream_id, parse_log, redact_url, room_tag, set_nx_outcome, RoomKeys,
    LOG_FIELD,
};

use crate::adapters::awareness_codec::{decode_awareness, encode_awareness};
use crate::adapters::unix_now_ms;
use crate::ports::{
    Appended, AwarenessEntry, Channel, ChannelEvent, DashboardEvent, DocStore, FeedRead, LockToken,
    LogPosition, LogRead, PieceLimits, PieceOutcome, RosterVersion, StoreError, StoreResult,
};
use crate::protocol::pieces::Piece;

/// How long an awareness hash lives after its last write: longer than API Gateway's 2 h maximum
/// connection lifetime, so only entries of connections that are certainly gone can expire.
pub const AWARENESS_TTL_MS: u64 = 3 * 60 * 60 * 1000;

/// Establishing a connection (TCP + TLS + AUTH): ElastiCache in a VPC answers in milliseconds; a
/// few seconds covers a failover without hanging a Lambda until its own timeout.
/// Lifetime of a rate counter (`ylr:`): longer than any rate window the handler uses, so a
/// window's count lives through the window.
pub const RATE_COUNTER_TTL_SECS: u64 = 60;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One command's answer. The crate's default (500 ms) is too tight for reading or trimming a long
/// log; Lambdas time out after seconds, so this still fails before they do.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect attempts of the connection manager before a command fails.
const RECONNECT_RETRIES: usize = 3;
/// Optimistic `put_awareness` retries. Only concurrent writes for the same connection conflict,
/// and one connection sends an awareness update every ~15 s, so a second attempt is already rare.
const AWARENESS_CAS_ATTEMPTS: usize = 8;

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
    piece: Script,
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
        // redis' rustls has no crypto provider compiled in for it to pick; install aws-lc-rs as
        // the process default. An error means a provider is already installed, which serves as
        // well.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
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
            piece: Script::new(PIECE_SCRIPT),
        })
    }

    /// A listener of this store's relay channels on its own pub/sub connection (for
    /// long-lived processes: `ylambda serve`), and the receiver of what it hears.
    pub fn relay_listener(
        &self,
    ) -> (
        RedisRelayListener,
        tokio::sync::mpsc::Receiver<ChannelEvent>,
    ) {
        RedisRelayListener::start(self.client.clone(), self.target.clone())
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
    /// published (ARCHITECTURE.md invariant 1) and the reported size is exactly the log's after this append.
    #[tracing::instrument(level = "debug", skip_all, fields(room = %room, len = update.len()))]
    async fn append(&self, room: &str, update: &[u8], relay: &[u8]) -> StoreResult<Appended> {
        let keys = RoomKeys::new(room);
        let (id, bytes, entries, _receivers, roster): (String, i64, i64, i64, Option<String>) =
            redis::pipe()
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
                .cmd("GET")
                .arg(&keys.roster)
                .query_async(&mut self.conn())
                .await
                .map_err(|e| self.error("append", room, e))?;
        let entries = usize::try_from(entries)
            .map_err(|_| self.corrupt(room, format!("negative log length {entries}")))?;
        let bytes = usize::try_from(bytes)
            .map_err(|_| self.corrupt(room, format!("negative log byte count {bytes}")))?;
        tracing::debug!(position = %id, entries, bytes, "appended");
        // The update is in the log already, so an unreadable version must not fail the append:
        // it only costs a read of the members.
        let roster = roster.and_then(|v| match v.parse() {
            Ok(v) => Some(RosterVersion(v)),
            Err(_) => {
                tracing::warn!(room, version = %v, "unreadable roster version: ignored");
                None
            }
        });
        Ok(Appended {
            position: LogPosition(id),
            entries,
            bytes,
            roster,
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

    #[tracing::instrument(level = "debug", skip_all, fields(%channel, len = message.len()))]
    async fn publish(&self, channel: &Channel, message: &[u8]) -> StoreResult<()> {
        let name = channel_name(channel);
        let _receivers: i64 = redis::cmd("PUBLISH")
            .arg(&name)
            .arg(message)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| {
                StoreError::Backend(format!(
                    "redis publish on {channel} at {}: {e}",
                    self.target
                ))
            })?;
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

    /// One script run: see `pieces` for the keys and the rules.
    #[tracing::instrument(level = "debug", skip_all, fields(connection_id, index = piece.index))]
    async fn put_piece(
        &self,
        connection_id: &str,
        piece: &Piece<'_>,
        limits: &PieceLimits,
    ) -> StoreResult<PieceOutcome> {
        let keys = PieceKeys::new(connection_id, piece.message_id);
        let ttl_ms = u64::try_from(limits.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let reply: Value = self
            .piece
            .key(&keys.message)
            .key(&keys.open)
            .arg(piece.index)
            .arg(piece.count)
            .arg(piece.data)
            .arg(limits.max_open_messages)
            .arg(limits.max_text_bytes)
            .arg(ttl_ms)
            .arg(unix_now_ms())
            .arg(piece.message_id)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| {
                StoreError::Backend(format!(
                    "redis put_piece for connection {connection_id:?} at {}: {e}",
                    self.target
                ))
            })?;
        piece_outcome(&reply).map_err(|what| {
            StoreError::Corrupt(format!(
                "connection {connection_id:?} at {}: {what}",
                self.target
            ))
        })
    }

    /// One pipelined round trip: INCR the window's counter and give it a TTL (windows are
    /// shorter than [`RATE_COUNTER_TTL_SECS`]), so counters of quiet connections vanish.
    #[tracing::instrument(level = "debug", skip_all, fields(connection_id))]
    async fn count_message(&self, connection_id: &str, window: u64) -> StoreResult<u64> {
        let key = format!("ylr:{{{}}}:{window}", room_tag(connection_id));
        let (count, _): (u64, i64) = redis::pipe()
            .cmd("INCR")
            .arg(&key)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(RATE_COUNTER_TTL_SECS)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| {
                StoreError::Backend(format!(
                    "redis count_message for connection {connection_id:?} at {}: {e}",
                    self.target
                ))
            })?;
        Ok(count)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(room = %room))]
    async fn mark_roster_changed(&self, room: &str) -> StoreResult<()> {
        let keys = RoomKeys::new(room);
        redis::cmd("SET")
            .arg(&keys.roster)
            .arg(RosterVersion::random().0)
            .arg("PX")
            .arg(AWARENESS_TTL_MS)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| self.error("mark_roster_changed", room, e))
    }

    async fn watched(&self) -> StoreResult<bool> {
        self.feed_watched().await
    }

    async fn keep_watching(&self, for_ms: u64) -> StoreResult<()> {
        self.feed_keep_watching(for_ms).await
    }

    async fn emit(&self, event: &DashboardEvent) -> StoreResult<()> {
        self.feed_emit(event).await
    }

    async fn read_feed(&self, after: Option<&str>, wait: Duration) -> StoreResult<FeedRead> {
        self.feed_read(after, wait).await
    }
}
