//! When this process last wrote a room's activity in the directory, so that edits move a room's
//! "last active" time at most once per [`ACTIVITY_INTERVAL`] per room and process: the directory
//! costs the per-update path one small write per half minute of editing, not one per update.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::room_cache::insert_within;

/// How stale a busy room's "last active" time may get in the directory.
pub(super) const ACTIVITY_INTERVAL: Duration = Duration::from_secs(30);
/// Rooms remembered per process; a forgotten room costs one early write.
const ACTIVITY_ROOMS: usize = 1_000;

#[derive(Default)]
pub(super) struct ActivityClock {
    rooms: Mutex<HashMap<String, Instant>>,
}

impl ActivityClock {
    /// Whether an update in `room` should write its activity now (and if so, it is taken as
    /// written: a failed write waits for the next interval, the directory is informational).
    pub(super) fn due(&self, room: &str) -> bool {
        let Ok(mut rooms) = self.rooms.lock() else {
            return false;
        };
        if rooms
            .get(room)
            .is_some_and(|at| at.elapsed() < ACTIVITY_INTERVAL)
        {
            return false;
        }
        insert_within(&mut rooms, ACTIVITY_ROOMS, room, Instant::now());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_is_due_once_per_interval() {
        let clock = ActivityClock::default();
        assert!(clock.due("a"));
        assert!(!clock.due("a"), "written a moment ago");
        assert!(clock.due("b"), "rooms are independent");
        clock
            .rooms
            .lock()
            .unwrap()
            .insert("a".into(), Instant::now() - ACTIVITY_INTERVAL);
        assert!(clock.due("a"), "due again after the interval");
    }
}
