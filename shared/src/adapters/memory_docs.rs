//! In-memory doc store: per-room update log, awareness and compaction lock, plus a broadcast
//! channel per room standing in for Redis pub/sub.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::memory_channels::{MemoryChannels, MemoryRelayListener};
use super::memory_feed::MemoryFeed;
use super::memory_pieces::MemoryPieces;
use crate::ports::{
    Appended, AwarenessEntry, Channel, ChannelEvent, DashboardEvent, DocStore, FeedRead, LockToken,
    LogPosition, LogRead, PieceLimits, PieceOutcome, RosterVersion, StoreError, StoreResult,
};
use crate::protocol::pieces::Piece;

#[derive(Default)]
pub struct MemoryDocStore {
    rooms: Mutex<HashMap<String, Room>>,
    pieces: MemoryPieces,
    /// Message counts per connection: (window, count) of its latest window only, so memory is
    /// one entry per connection that sent in the last window (older entries are swept).
    rates: Mutex<HashMap<String, (u64, u64)>>,
    feed: MemoryFeed,
    /// Relay channels live apart from the rooms' data: a flush (lost data) keeps listeners.
    channels: Arc<MemoryChannels>,
}

#[derive(Default)]
struct Room {
    /// (sequence number, update), oldest first.
    log: Vec<(u64, Vec<u8>)>,
    next_seq: u64,
    awareness: HashMap<String, AwarenessEntry>,
    lock: Option<(String, Instant)>,
    epoch: bool,
    roster: Option<RosterVersion>,
}

fn position(seq: u64) -> LogPosition {
    LogPosition(seq.to_string())
}

fn parse_position(p: &LogPosition) -> StoreResult<u64> {
    p.0.parse()
        .map_err(|_| StoreError::Corrupt(format!("not an in-memory log position: {p}")))
}

impl MemoryDocStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A listener of this store's relay channels (the stand-in for Redis SUBSCRIBE), and the
    /// receiver of what it hears.
    pub fn relay_listener(&self) -> (MemoryRelayListener, mpsc::Receiver<ChannelEvent>) {
        self.channels.listener()
    }

    /// Drops every room's data, as a Redis flush or failover would (ARCHITECTURE.md invariant 6 tests).
    pub fn flush(&self) -> StoreResult<()> {
        self.rooms
            .lock()
            .map_err(|_| StoreError::Backend("doc store lock poisoned".into()))?
            .clear();
        Ok(())
    }

    fn with_room<T>(
        &self,
        room: &str,
        f: impl FnOnce(&mut Room) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut rooms = self
            .rooms
            .lock()
            .map_err(|_| StoreError::Backend("doc store lock poisoned".into()))?;
        f(rooms.entry(room.to_string()).or_default())
    }
}

#[async_trait]
impl DocStore for MemoryDocStore {
    async fn append(&self, room: &str, update: &[u8], relay: &[u8]) -> StoreResult<Appended> {
        self.with_room(room, |r| {
            let seq = r.next_seq;
            r.next_seq += 1;
            r.log.push((seq, update.to_vec()));
            self.channels
                .publish(&Channel::Room(room.to_string()), relay);
            Ok(Appended {
                position: position(seq),
                entries: r.log.len(),
                bytes: r.log.iter().map(|(_, u)| u.len()).sum(),
                roster: r.roster,
            })
        })
    }

    async fn read_log(&self, room: &str) -> StoreResult<LogRead> {
        self.with_room(room, |r| {
            Ok(LogRead {
                updates: r.log.iter().map(|(_, u)| u.clone()).collect(),
                last: r.log.last().map(|(s, _)| position(*s)),
            })
        })
    }

    async fn trim_log(&self, room: &str, upto: &LogPosition) -> StoreResult<()> {
        let upto = parse_position(upto)?;
        self.with_room(room, |r| {
            r.log.retain(|(seq, _)| *seq > upto);
            Ok(())
        })
    }

    async fn put_awareness(&self, room: &str, entry: AwarenessEntry) -> StoreResult<()> {
        self.with_room(room, |r| {
            let merged = match r.awareness.remove(&entry.connection_id) {
                Some(previous) => previous.merge(entry),
                None => entry,
            };
            r.awareness.insert(merged.connection_id.clone(), merged);
            Ok(())
        })
    }

    async fn awareness(&self, room: &str) -> StoreResult<Vec<AwarenessEntry>> {
        self.with_room(room, |r| {
            let mut entries: Vec<_> = r.awareness.values().cloned().collect();
            entries.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
            Ok(entries)
        })
    }

    async fn remove_awareness(
        &self,
        room: &str,
        connection_id: &str,
    ) -> StoreResult<Option<AwarenessEntry>> {
        self.with_room(room, |r| Ok(r.awareness.remove(connection_id)))
    }

    async fn publish(&self, channel: &Channel, message: &[u8]) -> StoreResult<()> {
        self.channels.publish(channel, message);
        Ok(())
    }

    async fn try_lock(&self, room: &str, ttl_ms: u64) -> StoreResult<Option<LockToken>> {
        self.with_room(room, |r| {
            let now = Instant::now();
            if matches!(&r.lock, Some((_, until)) if *until > now) {
                return Ok(None);
            }
            let token = format!("{:016x}", rand::random::<u64>());
            r.lock = Some((token.clone(), now + Duration::from_millis(ttl_ms)));
            Ok(Some(LockToken(token)))
        })
    }

    async fn unlock(&self, room: &str, token: &LockToken) -> StoreResult<()> {
        self.with_room(room, |r| {
            if matches!(&r.lock, Some((held, _)) if *held == token.0) {
                r.lock = None;
            }
            Ok(())
        })
    }

    async fn ensure_epoch(&self, room: &str) -> StoreResult<bool> {
        self.with_room(room, |r| Ok(std::mem::replace(&mut r.epoch, true)))
    }

    async fn put_piece(
        &self,
        connection_id: &str,
        piece: &Piece<'_>,
        limits: &PieceLimits,
    ) -> StoreResult<PieceOutcome> {
        self.pieces.put(connection_id, piece, limits)
    }

    async fn count_message(&self, connection_id: &str, window: u64) -> StoreResult<u64> {
        let mut rates = self
            .rates
            .lock()
            .map_err(|_| StoreError::Backend("rate counters lock poisoned".into()))?;
        if rates.len() >= RATE_SWEEP_AT {
            // Connections that went quiet: anything not counted in this window or the last.
            rates.retain(|_, (w, _)| *w + 1 >= window);
        }
        let entry = rates
            .entry(connection_id.to_string())
            .or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 += 1;
        Ok(entry.1)
    }

    async fn mark_roster_changed(&self, room: &str) -> StoreResult<()> {
        self.with_room(room, |r| {
            r.roster = Some(RosterVersion::random());
            Ok(())
        })
    }

    async fn watched(&self) -> StoreResult<bool> {
        self.feed.watched()
    }

    async fn keep_watching(&self, for_ms: u64) -> StoreResult<()> {
        self.feed.keep_watching(for_ms)
    }

    async fn emit(&self, event: &DashboardEvent) -> StoreResult<()> {
        self.feed.emit(event)
    }

    async fn read_feed(&self, after: Option<&str>, wait: Duration) -> StoreResult<FeedRead> {
        self.feed.read(after, wait).await
    }
}

/// Rate counters kept before stale ones are swept.
const RATE_SWEEP_AT: usize = 10_000;
