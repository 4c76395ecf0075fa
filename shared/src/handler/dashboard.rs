//! Dashboard events, produced only while a viewer watches. A process reads the watch flag at
//! most once per `YLAMBDA_DASHBOARD_CHECK_SECS` (first at its start, `check_dashboard`), so
//! while nobody watches an event costs no store command; a viewer's arrival reaches every
//! process within that time (the dashboard also re-reads the room counts every few seconds,
//! so it is right even before). Updates are counted per room and reported at most once a second
//! per room and process: a room's last second of updates is reported with its next update.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::room_cache::insert_within;
use super::Handler;
use crate::adapters::unix_now_ms;
use crate::ports::DashboardEvent;

/// Rooms whose update counts a process keeps.
const COUNTED_ROOMS: usize = 1_000;
/// The shortest span one `Updates` event covers.
const UPDATE_WINDOW: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct DashboardState {
    /// When the watch flag was last read, and what it said.
    checked: Mutex<Option<(Instant, bool)>>,
    /// room -> (updates since the window began, when it began).
    updates: Mutex<HashMap<String, (u64, Instant)>>,
}

impl Handler {
    /// Reads the watch flag now (what a process does when it starts).
    pub async fn check_dashboard(&self) -> bool {
        let watched = match self.ports.docs.watched().await {
            Ok(watched) => watched,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the dashboard's watch flag");
                false
            }
        };
        if let Ok(mut checked) = self.dashboard.checked.lock() {
            *checked = Some((Instant::now(), watched));
        }
        watched
    }

    /// A viewer is watching for the next `for_ms`: says so in the store, and this process
    /// reports from now on without waiting for its next check.
    pub async fn keep_watching(&self, for_ms: u64) -> crate::ports::StoreResult<()> {
        self.ports.docs.keep_watching(for_ms).await?;
        if let Ok(mut checked) = self.dashboard.checked.lock() {
            *checked = Some((Instant::now(), true));
        }
        Ok(())
    }

    async fn watching(&self) -> bool {
        let cached = self.dashboard.checked.lock().ok().and_then(|c| *c);
        match cached {
            Some((at, watched)) if at.elapsed() < self.config.dashboard_check => watched,
            _ => self.check_dashboard().await,
        }
    }

    /// Reports `event` if a viewer watches. Never fails the caller: the dashboard is informational.
    pub(super) async fn report(&self, event: DashboardEvent) {
        if !self.watching().await {
            return;
        }
        if let Err(e) = self.ports.docs.emit(&event).await {
            tracing::warn!(error = %e, "cannot report a dashboard event");
        }
    }

    /// Counts an update in `room`, reported with the others of its second.
    pub(super) async fn report_update(&self, room: &str) {
        if !self.watching().await {
            return;
        }
        let due = {
            let Ok(mut updates) = self.dashboard.updates.lock() else {
                return;
            };
            let now = Instant::now();
            let long_ago = now.checked_sub(UPDATE_WINDOW).unwrap_or(now);
            let (count, since) = updates.get(room).copied().unwrap_or((0, long_ago));
            let count = count + 1;
            if since.elapsed() >= UPDATE_WINDOW {
                insert_within(&mut updates, COUNTED_ROOMS, room, (0, now));
                Some((count, since.elapsed()))
            } else {
                insert_within(&mut updates, COUNTED_ROOMS, room, (count, since));
                None
            }
        };
        if let Some((count, span)) = due {
            self.report(DashboardEvent::Updates {
                room: room.to_string(),
                count,
                ms: span.as_millis().min(u128::from(u64::MAX)) as u64,
                at_ms: unix_now_ms(),
            })
            .await;
        }
    }
}

/// How long a viewer's renewal of the watch flag lasts (renewed every third of it).
pub const WATCH_FOR: Duration = Duration::from_secs(30);
