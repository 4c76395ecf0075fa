//! In-memory connection store: two maps mirroring the DynamoDB table and its `gs1` index, plus
//! the room directory (activity and connection events) kept in the same lock.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{cursor_after, directory_key, key_of_cursor, unix_now_ms, unix_now_secs};
use crate::ports::{
    ConnectionStore, Membership, RoomActivity, RoomEvent, RoomEventKind, RoomMeta, RoomPage, Scope,
    SnapshotRecord, StoreError, StoreResult, MAX_ROOM_PAGE, ROOM_EVENT_TTL_SECS,
};

/// Events kept per room (the newest): DynamoDB keeps a week of them, memory must stay bounded.
const EVENTS_PER_ROOM: usize = 1000;

#[derive(Default)]
pub struct MemoryConnectionStore {
    // One lock over both maps, so the table and its index never disagree.
    inner: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    /// scope -> connection id -> membership (the table: pk / sk).
    by_scope: HashMap<Scope, BTreeMap<String, Membership>>,
    /// connection id -> scopes (the `gs1` index: hash `sk`).
    by_connection: HashMap<String, Vec<Scope>>,
    /// room -> directory record (the `room#R` / `meta` item).
    rooms: HashMap<String, RoomMeta>,
    /// room -> connections counted and last activity (the `room#R` / `rooms#{shard}` item).
    activity: HashMap<String, RoomActivity>,
    /// room -> connection events, oldest first (the `room#R` / `event#…` items).
    events: HashMap<String, VecDeque<RoomEvent>>,
}

impl Tables {
    /// Counts a room membership in or out of its room's activity and records the event.
    fn record(&mut self, membership: &Membership, kind: RoomEventKind, at_ms: u64) {
        let Scope::Room(room) = &membership.scope else {
            return;
        };
        let activity = self
            .activity
            .entry(room.clone())
            .or_insert_with(|| RoomActivity {
                room: room.clone(),
                ..RoomActivity::default()
            });
        activity.connections = match kind {
            RoomEventKind::Opened => activity.connections + 1,
            RoomEventKind::Closed => activity.connections.saturating_sub(1),
        };
        activity.last_active_ms = activity.last_active_ms.max(at_ms);
        let events = self.events.entry(room.clone()).or_default();
        if events.len() == EVENTS_PER_ROOM {
            events.pop_front();
        }
        events.push_back(RoomEvent {
            at_ms,
            connection_id: membership.connection_id.clone(),
            kind,
            sub: membership.credential.as_ref().and_then(|c| c.sub.clone()),
        });
    }

    /// Forgets rooms idle for longer than events are kept, as DynamoDB's TTL would.
    fn forget_idle_rooms(&mut self, now_ms: u64) {
        let horizon = now_ms.saturating_sub(ROOM_EVENT_TTL_SECS * 1000);
        self.activity
            .retain(|_, a| a.connections > 0 || a.last_active_ms >= horizon);
        for events in self.events.values_mut() {
            while events.front().is_some_and(|e| e.at_ms < horizon) {
                events.pop_front();
            }
        }
        self.events.retain(|_, events| !events.is_empty());
    }
}

impl MemoryConnectionStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> StoreResult<std::sync::MutexGuard<'_, Tables>> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Backend("connection store lock poisoned".into()))
    }
}

fn live(m: &Membership, now: u64) -> bool {
    m.expires_at > now
}

#[async_trait]
impl ConnectionStore for MemoryConnectionStore {
    async fn join(&self, membership: Membership) -> StoreResult<()> {
        let mut t = self.lock()?;
        let scopes = t
            .by_connection
            .entry(membership.connection_id.clone())
            .or_default();
        if !scopes.contains(&membership.scope) {
            scopes.push(membership.scope.clone());
        }
        let joined_at_ms = membership.joined_at_ms;
        let replaced = t
            .by_scope
            .entry(membership.scope.clone())
            .or_default()
            .insert(membership.connection_id.clone(), membership.clone());
        if replaced.is_none() {
            t.record(&membership, RoomEventKind::Opened, joined_at_ms);
        }
        Ok(())
    }

    async fn leave(&self, scope: &Scope, connection_id: &str) -> StoreResult<()> {
        let mut t = self.lock()?;
        let mut removed = None;
        if let Some(members) = t.by_scope.get_mut(scope) {
            removed = members.remove(connection_id);
            if members.is_empty() {
                t.by_scope.remove(scope);
            }
        }
        if let Some(membership) = removed {
            t.record(&membership, RoomEventKind::Closed, unix_now_ms());
        }
        if let Some(scopes) = t.by_connection.get_mut(connection_id) {
            scopes.retain(|s| s != scope);
            if scopes.is_empty() {
                t.by_connection.remove(connection_id);
            }
        }
        Ok(())
    }

    async fn members(&self, scope: &Scope) -> StoreResult<Vec<Membership>> {
        let now = unix_now_secs();
        let t = self.lock()?;
        Ok(t.by_scope
            .get(scope)
            .map(|m| m.values().filter(|m| live(m, now)).cloned().collect())
            .unwrap_or_default())
    }

    async fn memberships_of(&self, connection_id: &str) -> StoreResult<Vec<Membership>> {
        let now = unix_now_secs();
        let t = self.lock()?;
        let scopes = t
            .by_connection
            .get(connection_id)
            .cloned()
            .unwrap_or_default();
        Ok(scopes
            .iter()
            .filter_map(|s| t.by_scope.get(s).and_then(|m| m.get(connection_id)))
            .filter(|m| live(m, now))
            .cloned()
            .collect())
    }

    async fn remove_connection(&self, connection_id: &str) -> StoreResult<Vec<Membership>> {
        let mut t = self.lock()?;
        let scopes = t.by_connection.remove(connection_id).unwrap_or_default();
        let mut removed = Vec::new();
        for scope in scopes {
            if let Some(members) = t.by_scope.get_mut(&scope) {
                if let Some(m) = members.remove(connection_id) {
                    removed.push(m);
                }
                if members.is_empty() {
                    t.by_scope.remove(&scope);
                }
            }
        }
        let now_ms = unix_now_ms();
        for membership in &removed {
            t.record(membership, RoomEventKind::Closed, now_ms);
        }
        Ok(removed)
    }

    async fn record_snapshot(&self, room: &str, record: &SnapshotRecord) -> StoreResult<()> {
        let mut t = self.lock()?;
        let meta = t.rooms.entry(room.to_string()).or_insert_with(|| RoomMeta {
            created_ms: record.at_ms,
            ..RoomMeta::default()
        });
        meta.last_active_ms = record.at_ms;
        meta.updates += record.updates_merged;
        meta.snapshots += 1;
        meta.snapshot_version = record.version.clone();
        meta.snapshot_bytes = record.bytes;
        Ok(())
    }

    async fn room_meta(&self, room: &str) -> StoreResult<Option<RoomMeta>> {
        Ok(self.lock()?.rooms.get(room).cloned())
    }

    async fn active_rooms(&self, limit: usize, after: Option<&str>) -> StoreResult<RoomPage> {
        let limit = limit.clamp(1, MAX_ROOM_PAGE);
        let below = after.map(key_of_cursor).transpose()?;
        let mut t = self.lock()?;
        t.forget_idle_rooms(unix_now_ms());
        let mut keyed: Vec<(String, &RoomActivity)> = t
            .activity
            .values()
            .filter(|a| a.connections > 0)
            .map(|a| (directory_key(a.last_active_ms, &a.room), a))
            .filter(|(key, _)| below.as_ref().is_none_or(|below| key < below))
            .collect();
        keyed.sort_by(|a, b| b.0.cmp(&a.0));
        let next = (keyed.len() > limit).then(|| cursor_after(&keyed[limit - 1].0));
        Ok(RoomPage {
            rooms: keyed
                .into_iter()
                .take(limit)
                .map(|(_, a)| a.clone())
                .collect(),
            next,
        })
    }

    async fn touch_room(&self, room: &str, at_ms: u64) -> StoreResult<()> {
        if let Some(activity) = self.lock()?.activity.get_mut(room) {
            if activity.connections > 0 {
                activity.last_active_ms = activity.last_active_ms.max(at_ms);
            }
        }
        Ok(())
    }

    async fn room_activity(&self, room: &str) -> StoreResult<Option<RoomActivity>> {
        Ok(self.lock()?.activity.get(room).cloned())
    }

    async fn room_events(&self, room: &str, limit: usize) -> StoreResult<Vec<RoomEvent>> {
        let t = self.lock()?;
        let mut events: Vec<RoomEvent> = t
            .events
            .get(room)
            .map(|events| events.iter().rev().cloned().collect())
            .unwrap_or_default();
        // By time, as DynamoDB's sort key orders them (stable: same time, latest written first).
        events.sort_by_key(|e| std::cmp::Reverse(e.at_ms));
        events.truncate(limit);
        Ok(events)
    }
}
