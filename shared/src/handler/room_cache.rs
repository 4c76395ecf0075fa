//! Which room each y-websocket connection joined, remembered by the process that handles it.
//!
//! `$default` events carry no query string, so the room is found through the connection index
//! (one `gs1` Query on DynamoDB). A y-websocket connection joins exactly one room at `$connect`
//! and never changes it, so a warm Lambda (or `ylambda dev`) can remember the answer and skip that
//! Query on the connection's later messages: half the reads of every document update.
use std::collections::HashMap;
use std::sync::Mutex;

use crate::adapters::unix_now_secs;
use crate::ports::Membership;

/// Connections remembered per process (a few hundred bytes each). Past it, an arbitrary entry
/// is dropped: a forgotten connection only costs one more index Query.
pub(super) const ROOM_CACHE_CAPACITY: usize = 10_000;

#[derive(Default)]
pub(super) struct RoomCache {
    entries: Mutex<HashMap<String, Membership>>,
}

impl RoomCache {
    /// The connection's room membership, if remembered and not expired.
    pub(super) fn get(&self, connection_id: &str) -> Option<Membership> {
        let mut entries = self.entries.lock().ok()?;
        match entries.get(connection_id) {
            Some(m) if m.expires_at > unix_now_secs() => Some(m.clone()),
            Some(_) => {
                entries.remove(connection_id);
                None
            }
            None => None,
        }
    }

    pub(super) fn remember(&self, membership: &Membership) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        insert_within(
            &mut entries,
            ROOM_CACHE_CAPACITY,
            &membership.connection_id,
            membership.clone(),
        );
    }

    pub(super) fn forget(&self, connection_id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(connection_id);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

/// Inserts into a per-process cache of at most `capacity` entries: past it, an arbitrary other
/// entry is dropped first (the caches here only save a read, so any entry may go).
pub(super) fn insert_within<V>(map: &mut HashMap<String, V>, capacity: usize, key: &str, value: V) {
    if map.len() >= capacity && !map.contains_key(key) {
        if let Some(evicted) = map.keys().next().cloned() {
            map.remove(&evicted);
        }
    }
    map.insert(key.to_string(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Scope;

    fn membership(id: &str, expires_at: u64) -> Membership {
        crate::conformance::membership(&Scope::Room("r".into()), id, expires_at)
    }

    #[test]
    fn remembers_forgets_and_drops_expired_entries() {
        let cache = RoomCache::default();
        let live = membership("a", unix_now_secs() + 60);
        cache.remember(&live);
        assert_eq!(cache.get("a"), Some(live));
        cache.forget("a");
        assert_eq!(cache.get("a"), None);
        cache.remember(&membership("old", unix_now_secs().saturating_sub(1)));
        assert_eq!(cache.get("old"), None);
        assert_eq!(cache.len(), 0, "an expired entry is dropped when seen");
    }

    #[test]
    fn stays_within_its_capacity() {
        let cache = RoomCache::default();
        let expires = unix_now_secs() + 60;
        for i in 0..ROOM_CACHE_CAPACITY + 10 {
            cache.remember(&membership(&format!("c{i}"), expires));
        }
        assert_eq!(cache.len(), ROOM_CACHE_CAPACITY);
        let last = format!("c{}", ROOM_CACHE_CAPACITY + 9);
        assert!(cache.get(&last).is_some(), "the newest entry is kept");
    }
}
