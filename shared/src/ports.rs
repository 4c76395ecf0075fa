//! The storage and delivery ports the handler core is written against.
//!
//! Each port is a small `Send + Sync` trait with one embedded adapter (in `adapters`) and one AWS /
//! Redis adapter. Every adapter must pass the same conformance suite (`crate::conformance`).
use std::fmt;

use async_trait::async_trait;

use crate::protocol::pieces::Piece;

/// What a connection is a member of: a y-websocket document room or a y-webrtc signaling topic.
/// They live in different key spaces (`room#R` / `topic#T`), so a room and a topic with the same
/// name never see each other's traffic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Room(String),
    Topic(String),
    /// A signaling connection's own record (`peer#{connectionId}`), written at `$connect` when
    /// access control is on: it carries the token's [`Credential`], so later subscribes and
    /// publishes (whose events carry no query string) can be checked against it.
    Peer(String),
}

impl Scope {
    /// The partition key this scope is stored under (`room#R` or `topic#T`).
    pub fn key(&self) -> String {
        match self {
            Scope::Room(r) => format!("room#{r}"),
            Scope::Topic(t) => format!("topic#{t}"),
            Scope::Peer(c) => format!("peer#{c}"),
        }
    }

    /// Parses a partition key written by [`Scope::key`].
    pub fn from_key(key: &str) -> Option<Scope> {
        if let Some(r) = key.strip_prefix("room#") {
            Some(Scope::Room(r.to_string()))
        } else if let Some(t) = key.strip_prefix("topic#") {
            Some(Scope::Topic(t.to_string()))
        } else {
            key.strip_prefix("peer#")
                .map(|c| Scope::Peer(c.to_string()))
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Scope::Room(n) | Scope::Topic(n) | Scope::Peer(n) => n,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// The endpoint of a connection served by a `ylambda serve` instance: `direct:{instance id}`.
/// Nobody posts to such a connection: its instance delivers room and topic traffic to it from
/// the relay channel (ARCHITECTURE.md invariant 25).
pub const DIRECT_ENDPOINT_PREFIX: &str = "direct:";

/// One connection's membership of one room or topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub scope: Scope,
    pub connection_id: String,
    /// The management API endpoint that reaches this connection (`https://{domain}/{stage}`).
    pub endpoint: String,
    /// Read-only members receive state and awareness; their document updates are dropped.
    pub readonly: bool,
    /// Milliseconds since the Unix epoch when the membership was written.
    pub joined_at_ms: u64,
    /// Seconds since the Unix epoch after which the record is stale (its `$disconnect` never ran).
    pub expires_at: u64,
    /// What the connection's token granted, when access control is on.
    pub credential: Option<Credential>,
}

impl Membership {
    /// Whether the connection gets room and topic traffic from the relay channel (a direct
    /// instance's client) rather than from posts.
    pub fn hears_the_channel(&self) -> bool {
        self.endpoint.starts_with(DIRECT_ENDPOINT_PREFIX)
    }
}

/// The part of a connection's token its records keep: who it is (for logs and the dashboard),
/// until when it may stay, and which rooms and topics it opens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credential {
    /// The token's `sub`.
    pub sub: Option<String>,
    /// The token's `exp` (epoch seconds): the connection is closed at its first message after it.
    pub token_expires_at: u64,
    /// The token's `room` / `rooms` patterns (exact names or `prefix*`).
    pub rooms: Vec<String>,
}

/// A room's directory record (DynamoDB item `room#R` / `meta`): what an operator or a dashboard
/// wants to know about a room without opening its document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomMeta {
    /// Milliseconds since the Unix epoch when the room's first snapshot was recorded.
    pub created_ms: u64,
    /// Milliseconds since the Unix epoch of the last recorded snapshot (a room is compacted when
    /// its last connection leaves and when its log passes the threshold, so this lags a busy
    /// room by at most one compaction).
    pub last_active_ms: u64,
    /// Updates merged into the room's snapshots, over its whole life.
    pub updates: u64,
    /// How many snapshots have been written.
    pub snapshots: u64,
    /// The version of the latest snapshot (S3 ETag; file generation when embedded).
    pub snapshot_version: String,
    /// Size of the latest snapshot in bytes.
    pub snapshot_bytes: u64,
}

/// A room in the directory of active rooms: how many connections it has and when anything last
/// happened in it. Kept by the connection store as connections join and leave (no extra request
/// on the per-update path), so a listing needs no Scan and no per-room read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomActivity {
    pub room: String,
    /// Room memberships written and not yet removed. A connection whose `$disconnect` never ran
    /// stays counted until its record is removed (a 410 finds it, or it is cleaned up at its
    /// next departure); the room's exact members are `ConnectionStore::members`.
    pub connections: u64,
    /// Milliseconds since the Unix epoch of the last join, departure or recorded activity.
    pub last_active_ms: u64,
}

/// One page of the active rooms (connections > 0), most recently active first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomPage {
    pub rooms: Vec<RoomActivity>,
    /// Pass to [`ConnectionStore::active_rooms`] for the next page; `None` on the last one.
    pub next: Option<String>,
}

/// A connection opening or closing in a room, kept for a week (`room#R` / `event#{ts}#{conn}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomEvent {
    pub at_ms: u64,
    pub connection_id: String,
    pub kind: RoomEventKind,
    /// The `sub` of the connection's token, when it had one.
    pub sub: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomEventKind {
    Opened,
    Closed,
}

impl RoomEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomEventKind::Opened => "opened",
            RoomEventKind::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<RoomEventKind> {
        match s {
            "opened" => Some(RoomEventKind::Opened),
            "closed" => Some(RoomEventKind::Closed),
            _ => None,
        }
    }
}

/// How long connection events are kept.
pub const ROOM_EVENT_TTL_SECS: u64 = 7 * 24 * 3600;
/// The most rooms one directory page holds.
pub const MAX_ROOM_PAGE: usize = 100;

/// One written snapshot, as recorded in the room's directory record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRecord {
    pub at_ms: u64,
    /// Log entries merged into this snapshot.
    pub updates_merged: u64,
    pub version: String,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend failed: {0}")]
    Backend(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A page cursor that no listing of this store wrote.
    #[error("bad page cursor: {0}")]
    BadCursor(String),
}

pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// Who is in which room or topic.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Adds (or refreshes) a membership. Idempotent. A new room membership also counts in the
    /// room's [`RoomActivity`] (at `joined_at_ms`) and records an `Opened` [`RoomEvent`], in
    /// the same atomic write: refreshing an existing one does neither.
    async fn join(&self, membership: Membership) -> StoreResult<()>;
    /// Removes one membership; removing a missing one is not an error. Removing a room
    /// membership uncounts it and records a `Closed` event, once, whoever else removes it.
    async fn leave(&self, scope: &Scope, connection_id: &str) -> StoreResult<()>;
    /// All unexpired members of a scope, read consistently (a member whose `join` returned is in
    /// the list: ARCHITECTURE.md invariant 2 depends on it).
    async fn members(&self, scope: &Scope) -> StoreResult<Vec<Membership>>;
    /// All unexpired memberships of one connection.
    async fn memberships_of(&self, connection_id: &str) -> StoreResult<Vec<Membership>>;
    /// Removes every membership of a connection and returns what was removed.
    async fn remove_connection(&self, connection_id: &str) -> StoreResult<Vec<Membership>>;
    /// Records a written snapshot in the room's directory record, creating it the first time
    /// (`created` is kept, `updates` and `snapshots` add up, the rest is replaced). The record
    /// lives beside the room's memberships but is never listed among them. Callers hold the
    /// room's compaction lock, so records arrive in snapshot order.
    async fn record_snapshot(&self, room: &str, record: &SnapshotRecord) -> StoreResult<()>;
    /// The room's directory record, if a snapshot was ever recorded.
    async fn room_meta(&self, room: &str) -> StoreResult<Option<RoomMeta>>;
    /// Active rooms (at least one connection counted), most recently active first, at most
    /// `limit` (1..=[`MAX_ROOM_PAGE`]) after the page that returned `after`. A query on an
    /// index, never a Scan. A cursor this store did not write is `StoreError::BadCursor`.
    async fn active_rooms(&self, limit: usize, after: Option<&str>) -> StoreResult<RoomPage>;
    /// The room's connection count and last activity, if a connection ever joined it (and it
    /// has not been idle for longer than events are kept).
    async fn room_activity(&self, room: &str) -> StoreResult<Option<RoomActivity>>;
    /// Moves an active room's last activity to `at_ms` (edits in it; callers write this at
    /// most every half minute per room). A room nobody is counted in is left as it is.
    async fn touch_room(&self, room: &str, at_ms: u64) -> StoreResult<()>;
    /// The room's most recent connection events, newest first, at most `limit`.
    async fn room_events(&self, room: &str, limit: usize) -> StoreResult<Vec<RoomEvent>>;
}

/// A position in a room's update log. Opaque to the core: each adapter defines the encoding and
/// the order (the in-memory log uses a counter, Redis a stream id).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LogPosition(pub String);

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A room's update log as read at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogRead {
    /// Accepted updates (Yjs update v1), oldest first.
    pub updates: Vec<Vec<u8>>,
    /// The position of the newest entry read, if any: trimming up to it removes exactly these.
    pub last: Option<LogPosition>,
}

impl LogRead {
    pub fn byte_len(&self) -> usize {
        self.updates.iter().map(Vec::len).sum()
    }
}

/// The outcome of an append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub position: LogPosition,
    /// Entries in the log after the append.
    pub entries: usize,
    /// Bytes of updates in the log after the append.
    pub bytes: usize,
    /// The room's roster version, read in the same atomic step as the append, after it; `None`
    /// when the store does not keep one or has none for the room. See [`RosterVersion`].
    pub roster: Option<RosterVersion>,
}

/// A value that changes every time a room's members change ([`DocStore::mark_roster_changed`]):
/// the handler keeps the member list it last read with the version it read before it, and reads
/// the members again only when an append reports another version (ARCHITECTURE.md invariant 21).
/// Random rather than a counter, so a store that lost its data and starts again cannot repeat a
/// version some process still holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RosterVersion(pub u64);

impl RosterVersion {
    pub fn random() -> Self {
        RosterVersion(rand::random())
    }
}

/// The latest awareness update one connection sent to a room, and the Yjs client ids (with their
/// clocks) it spoke for, so their removal can be broadcast when the connection goes away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwarenessEntry {
    pub connection_id: String,
    /// `(client id, clock)` of every client this connection has announced.
    pub clients: Vec<(u64, u32)>,
    /// The last awareness update message payload (y-protocols awareness update encoding).
    pub update: Vec<u8>,
}

impl AwarenessEntry {
    /// The entry after `newer` from the same connection: the newest update, the highest clock
    /// per client, and every client id the connection ever spoke for (a connection owns only the
    /// ids it introduced; their removal is broadcast when it leaves). Every doc store merges
    /// with this one rule.
    pub fn merge(self, newer: AwarenessEntry) -> AwarenessEntry {
        let mut clients = self.clients;
        for (id, clock) in newer.clients {
            match clients.iter_mut().find(|(known, _)| *known == id) {
                Some(entry) => entry.1 = entry.1.max(clock),
                None => clients.push((id, clock)),
            }
        }
        AwarenessEntry {
            connection_id: newer.connection_id,
            clients,
            update: newer.update,
        }
    }
}

/// A relay channel. Every room and every signaling topic has one; [`DocStore::append`] publishes
/// on the room's, [`DocStore::publish`] on either (ARCHITECTURE.md invariant 25).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    Room(String),
    Topic(String),
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Room(room) => write!(f, "room {room:?}"),
            Channel::Topic(topic) => write!(f, "topic {topic:?}"),
        }
    }
}

/// What a [`RelayListener`]'s owner hears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelEvent {
    /// A message published on a channel it listens to.
    Message { channel: Channel, payload: Vec<u8> },
    /// The listener lost its connection (or fell behind) and listens again: messages published
    /// in between were missed, and the owner resyncs its clients (invariant 25).
    Resumed,
}

/// Listens to relay channels for a long-lived process (`ylambda serve`). Made with its event
/// receiver by the doc store (`relay_listener()`); events of every channel arrive there, each
/// channel's in publish order.
#[async_trait]
pub trait RelayListener: Send + Sync {
    /// Starts hearing `channel`. Once this returns, every later publish on it is heard. An error
    /// (the backend is unreachable now) leaves the channel unheard. The owner calls it once per
    /// channel, and [`RelayListener::stop_listening`] once when done.
    async fn listen(&self, channel: &Channel) -> StoreResult<()>;
    /// Stops hearing `channel`.
    async fn stop_listening(&self, channel: &Channel) -> StoreResult<()>;
    /// Whether the listener is connected now (a direct server's readiness).
    fn connected(&self) -> bool;
}

/// Proof of holding a room's compaction lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockToken(pub String);

/// The live side of a document: update log since the last snapshot, awareness, relay channel and
/// compaction lock.
#[async_trait]
pub trait DocStore: Send + Sync {
    /// Appends an accepted update to the room's log and publishes `relay` on the room's channel, in
    /// one round trip where the backend allows. Reports the log's size after the append, so the
    /// caller can decide to compact without reading the log.
    async fn append(&self, room: &str, update: &[u8], relay: &[u8]) -> StoreResult<Appended>;
    /// Reads the whole log of a room (empty if none).
    async fn read_log(&self, room: &str) -> StoreResult<LogRead>;
    /// Removes every entry at or before `upto`; entries appended after it stay.
    async fn trim_log(&self, room: &str, upto: &LogPosition) -> StoreResult<()>;
    /// Stores the latest awareness update of one connection (replacing the previous one), merging
    /// the client ids it speaks for with those already known for that connection.
    async fn put_awareness(&self, room: &str, entry: AwarenessEntry) -> StoreResult<()>;
    /// Every connection's latest awareness update in a room.
    async fn awareness(&self, room: &str) -> StoreResult<Vec<AwarenessEntry>>;
    /// Removes and returns one connection's awareness entry.
    async fn remove_awareness(
        &self,
        room: &str,
        connection_id: &str,
    ) -> StoreResult<Option<AwarenessEntry>>;
    /// Publishes a message on a room's or topic's relay channel without logging it (awareness,
    /// signaling): what `ylambda serve` instances deliver to their own clients.
    async fn publish(&self, channel: &Channel, message: &[u8]) -> StoreResult<()>;
    /// Takes the room's compaction lock for `ttl_ms`, or `None` if someone else holds it.
    async fn try_lock(&self, room: &str, ttl_ms: u64) -> StoreResult<Option<LockToken>>;
    /// Releases the lock if `token` still holds it.
    async fn unlock(&self, room: &str, token: &LockToken) -> StoreResult<()>;
    /// Marks the room's live data as present and reports whether it was already there. A `false`
    /// while a room has connections means the backend lost its data (ARCHITECTURE.md invariant 6).
    async fn ensure_epoch(&self, room: &str) -> StoreResult<bool>;
    /// Stores one piece of a connection's message that arrives in pieces (see
    /// `protocol::pieces`), within `limits`. Pieces of one message may arrive in any order, more
    /// than once and at once from several callers: exactly one caller gets
    /// [`PieceOutcome::Complete`], and a piece of a message already completed is a duplicate.
    /// Incomplete messages expire after `limits.ttl`. Messages of different connections never mix.
    async fn put_piece(
        &self,
        connection_id: &str,
        piece: &Piece<'_>,
        limits: &PieceLimits,
    ) -> StoreResult<PieceOutcome>;
    /// Counts one message of `connection_id` in the fixed rate window `window` (a number that
    /// names the window, e.g. epoch seconds / window length) and returns the window's count so
    /// far, this message included. Counts are shared by every process on the backend (a flood
    /// spread over many Lambda instances is still one count) and a window's count is forgotten
    /// soon after the window ends.
    async fn count_message(&self, connection_id: &str, window: u64) -> StoreResult<u64>;
    /// Gives the room a new roster version. Called after a member joins (its record already
    /// written) and after members leave, so that an append that reports the old version happened
    /// before the join finished (ARCHITECTURE.md invariant 21). A store that reports no roster
    /// versions from `append` does nothing here.
    async fn mark_roster_changed(&self, room: &str) -> StoreResult<()>;
    /// Whether a dashboard viewer is watching: a flag [`DocStore::keep_watching`] keeps alive.
    async fn watched(&self) -> StoreResult<bool>;
    /// Says a viewer is watching for the next `for_ms` milliseconds (replacing the previous
    /// deadline: every viewer renews it well before it passes).
    async fn keep_watching(&self, for_ms: u64) -> StoreResult<()>;
    /// Appends an event to the dashboard feed (kept about an hour, or the latest
    /// [`DASHBOARD_FEED_KEEP`] events).
    async fn emit(&self, event: &DashboardEvent) -> StoreResult<()>;
    /// Feed events after `after` (a cursor a read returned), oldest first, waiting up to `wait`
    /// for one. `None` starts at the feed's end: no events, only the cursor to read from.
    async fn read_feed(
        &self,
        after: Option<&str>,
        wait: std::time::Duration,
    ) -> StoreResult<FeedRead>;
}

/// What the live dashboard is told, as it happens (only while someone watches).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DashboardEvent {
    Opened {
        room: String,
        connection_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sub: Option<String>,
        at_ms: u64,
    },
    Closed {
        room: String,
        connection_id: String,
        at_ms: u64,
    },
    /// `count` updates in `room` over the `ms` milliseconds before `at_ms`, from one process
    /// (each process reports its own, at most once a second per room).
    Updates {
        room: String,
        count: u64,
        ms: u64,
        at_ms: u64,
    },
    Compacted {
        room: String,
        updates: u64,
        bytes: u64,
        at_ms: u64,
    },
}

/// Events a feed read found, and the cursor to read on from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedRead {
    /// (cursor of the event, event), oldest first.
    pub events: Vec<(String, DashboardEvent)>,
    pub cursor: String,
}

/// The most events a dashboard feed keeps.
pub const DASHBOARD_FEED_KEEP: usize = 1000;

/// Bounds on messages that arrive in pieces (`YLAMBDA_MAX_ASSEMBLED_BYTES` and friends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PieceLimits {
    /// The largest assembled message text (its base64), in bytes.
    pub max_text_bytes: usize,
    /// The most incomplete messages one connection may have at once.
    pub max_open_messages: usize,
    /// How long an incomplete message, and the memory of a completed one, is kept.
    pub ttl: std::time::Duration,
}

/// What storing a piece did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PieceOutcome {
    /// Stored; the message waits for more pieces.
    Waiting,
    /// This piece was stored before, or its message was already completed: nothing to do.
    Duplicate,
    /// This piece completed the message: its whole text, given to this caller only.
    Complete(String),
    /// Refused, nothing stored; the connection is sending something wrong.
    Refused(PieceRefusal),
}

/// Why a piece was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PieceRefusal {
    #[error("the piece gives another piece count than its message's first piece")]
    CountMismatch,
    #[error("the piece overlaps one already received with other data")]
    Overlap,
    #[error("the assembled message would be larger than the limit")]
    TooLarge,
    #[error("the connection has too many incomplete messages")]
    TooManyOpen,
}

/// A room's merged document state between sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The merged Yjs update v1.
    pub update: Vec<u8>,
    /// The log position this snapshot covers (entries at or before it are merged in).
    pub covers: Option<LogPosition>,
}

/// A snapshot as stored, with the version a conditional write must name to replace it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSnapshot {
    pub snapshot: Snapshot,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Written {
        version: String,
    },
    /// Someone else wrote the snapshot since it was read: nothing was written.
    Conflict,
}

#[async_trait]
pub trait SnapshotStore: Send + Sync {
    async fn get(&self, room: &str) -> StoreResult<Option<StoredSnapshot>>;
    /// Durably replaces the room's snapshot, atomically (a reader sees the old or the new one),
    /// only if the stored version is still `expected` (`None`: only if there is no snapshot).
    /// This compare-and-swap is what keeps two racing compactions from losing an update.
    async fn put(
        &self,
        room: &str,
        snapshot: &Snapshot,
        expected: Option<&str>,
    ) -> StoreResult<PutOutcome>;
}

#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    /// The connection no longer exists (API Gateway's 410 Gone).
    #[error("connection {0} is gone")]
    Gone(String),
    #[error("delivery failed: {0}")]
    Failed(String),
}

/// Delivers messages to connections (API Gateway's `@connections` management API).
#[async_trait]
pub trait Fanout: Send + Sync {
    /// Sends one text frame to a connection.
    async fn post(
        &self,
        endpoint: &str,
        connection_id: &str,
        text: &str,
    ) -> Result<(), FanoutError>;
    /// Closes a connection (`DELETE @connections/{id}`).
    async fn close(&self, endpoint: &str, connection_id: &str) -> Result<(), FanoutError>;
}
