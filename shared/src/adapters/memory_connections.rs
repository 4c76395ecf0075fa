//! In-memory connection store: two maps mirroring the DynamoDB table and its `gs1` index.
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::unix_now_secs;
use crate::ports::{
    ConnectionStore, Membership, RoomMeta, Scope, SnapshotRecord, StoreError, StoreResult,
};

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
        t.by_scope
            .entry(membership.scope.clone())
            .or_default()
            .insert(membership.connection_id.clone(), membership);
        Ok(())
    }

    async fn leave(&self, scope: &Scope, connection_id: &str) -> StoreResult<()> {
        let mut t = self.lock()?;
        if let Some(members) = t.by_scope.get_mut(scope) {
            members.remove(connection_id);
            if members.is_empty() {
                t.by_scope.remove(scope);
            }
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
}
