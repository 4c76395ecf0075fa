//! Each room's members, remembered by the process that relays its updates, under the roster
//! version the doc store reported before they were read (ARCHITECTURE.md invariant 21).
//!
//! Relaying an update needs the room's members: on AWS a DynamoDB Query per update, the second
//! round trip of every edit after the Redis append. Members change only at `$connect` and at
//! departures, and each of those gives the room a new roster version after writing the records.
//! The append reports the version in its own round trip, so while it is unchanged the list read
//! under it is still the room's, and the Query is skipped.
//!
//! Why that cannot miss a member: a join writes its record, then the new version. An append that
//! reads the old version ran before the new version was set, so the joiner, which reads the log
//! only after its `$connect` returned, finds that update in the log. An append that reads the new
//! version does not match the cached one, and its Query runs after the version was set, hence
//! after the record was written. A list is only ever kept under a version read before its Query.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::room_cache::insert_within;
use crate::adapters::unix_now_secs;
use crate::ports::{Membership, RosterVersion};

/// Rooms remembered per process. Past it, an arbitrary room is dropped: a forgotten room only
/// costs one more Query.
pub(super) const ROSTER_CACHE_ROOMS: usize = 1_000;

/// A list is read again after this long even if the version has not moved: a bound on how long
/// anything the version does not cover (a record that expired, a store that changed without
/// `$connect` or `$disconnect`) can go unnoticed.
pub(super) const ROSTER_MAX_AGE: Duration = Duration::from_secs(60);

struct Entry {
    version: RosterVersion,
    members: Vec<Membership>,
    read_at: Instant,
}

#[derive(Default)]
pub(super) struct RosterCache {
    rooms: Mutex<HashMap<String, Entry>>,
}

impl RosterCache {
    /// The room's members if they were read under `version` less than [`ROSTER_MAX_AGE`] ago,
    /// without the memberships that expired since.
    pub(super) fn get(&self, room: &str, version: RosterVersion) -> Option<Vec<Membership>> {
        let rooms = self.rooms.lock().ok()?;
        let entry = rooms.get(room)?;
        if entry.version != version || entry.read_at.elapsed() >= ROSTER_MAX_AGE {
            return None;
        }
        let now = unix_now_secs();
        Some(
            entry
                .members
                .iter()
                .filter(|m| m.expires_at > now)
                .cloned()
                .collect(),
        )
    }

    /// Keeps `members`, read after `version` was reported, under that version.
    pub(super) fn remember(&self, room: &str, version: RosterVersion, members: &[Membership]) {
        let Ok(mut rooms) = self.rooms.lock() else {
            return;
        };
        let entry = Entry {
            version,
            members: members.to_vec(),
            read_at: Instant::now(),
        };
        insert_within(&mut rooms, ROSTER_CACHE_ROOMS, room, entry);
    }

    /// Drops what this process knows of a room's members (it saw them change itself).
    pub(super) fn forget(&self, room: &str) {
        if let Ok(mut rooms) = self.rooms.lock() {
            rooms.remove(room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Scope;

    fn member(id: &str, expires_at: u64) -> Membership {
        crate::conformance::membership(&Scope::Room("r".into()), id, expires_at)
    }

    #[test]
    fn a_list_is_given_only_under_its_own_version() {
        let cache = RosterCache::default();
        let (v1, v2) = (RosterVersion(1), RosterVersion(2));
        let live = unix_now_secs() + 60;
        cache.remember("r", v1, &[member("a", live), member("b", live)]);
        assert_eq!(cache.get("r", v1).map(|m| m.len()), Some(2));
        assert_eq!(cache.get("r", v2), None, "another version: read again");
        assert_eq!(cache.get("other", v1), None);
        cache.forget("r");
        assert_eq!(cache.get("r", v1), None);
    }

    #[test]
    fn expired_memberships_are_left_out() {
        let cache = RosterCache::default();
        let v = RosterVersion(7);
        let past = unix_now_secs().saturating_sub(1);
        cache.remember(
            "r",
            v,
            &[member("a", unix_now_secs() + 60), member("old", past)],
        );
        let members = cache.get("r", v).unwrap_or_default();
        let ids: Vec<&str> = members.iter().map(|m| m.connection_id.as_str()).collect();
        assert_eq!(ids, ["a"]);
    }

    #[test]
    fn stays_within_its_capacity() {
        let cache = RosterCache::default();
        let v = RosterVersion(1);
        for i in 0..ROSTER_CACHE_ROOMS + 10 {
            cache.remember(&format!("r{i}"), v, &[]);
        }
        let kept = cache.rooms.lock().map(|r| r.len()).unwrap_or(0);
        assert_eq!(kept, ROSTER_CACHE_ROOMS);
        let newest = format!("r{}", ROSTER_CACHE_ROOMS + 9);
        assert!(cache.get(&newest, v).is_some(), "the newest room is kept");
    }
}
