//! The embedded dashboard feed: the watch flag and the latest events in memory, with a notify so
//! a reader waits for the next event instead of polling.
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use super::unix_now_ms;
use crate::ports::{DashboardEvent, FeedRead, StoreError, StoreResult, DASHBOARD_FEED_KEEP};

#[derive(Default)]
pub(super) struct MemoryFeed {
    inner: Mutex<Feed>,
    arrived: Notify,
}

#[derive(Default)]
struct Feed {
    watched_until_ms: u64,
    /// Ids count from 1; a cursor is the id of the last event seen ("0": none yet).
    last_id: u64,
    events: VecDeque<(u64, DashboardEvent)>,
}

fn poisoned() -> StoreError {
    StoreError::Backend("dashboard feed lock poisoned".into())
}

impl MemoryFeed {
    pub(super) fn watched(&self) -> StoreResult<bool> {
        let feed = self.inner.lock().map_err(|_| poisoned())?;
        Ok(feed.watched_until_ms > unix_now_ms())
    }

    pub(super) fn keep_watching(&self, for_ms: u64) -> StoreResult<()> {
        let mut feed = self.inner.lock().map_err(|_| poisoned())?;
        feed.watched_until_ms = unix_now_ms() + for_ms;
        Ok(())
    }

    pub(super) fn emit(&self, event: &DashboardEvent) -> StoreResult<()> {
        let mut feed = self.inner.lock().map_err(|_| poisoned())?;
        feed.last_id += 1;
        let id = feed.last_id;
        if feed.events.len() == DASHBOARD_FEED_KEEP {
            feed.events.pop_front();
        }
        feed.events.push_back((id, event.clone()));
        drop(feed);
        self.arrived.notify_waiters();
        Ok(())
    }

    pub(super) async fn read(&self, after: Option<&str>, wait: Duration) -> StoreResult<FeedRead> {
        let after = match after {
            None => {
                let feed = self.inner.lock().map_err(|_| poisoned())?;
                return Ok(FeedRead {
                    events: Vec::new(),
                    cursor: feed.last_id.to_string(),
                });
            }
            Some(cursor) => cursor
                .parse::<u64>()
                .map_err(|_| StoreError::BadCursor(format!("{cursor:?} is not a feed cursor")))?,
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so an event emitted in between still wakes us.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let feed = self.inner.lock().map_err(|_| poisoned())?;
                let events: Vec<(String, DashboardEvent)> = feed
                    .events
                    .iter()
                    .filter(|(id, _)| *id > after)
                    .map(|(id, e)| (id.to_string(), e.clone()))
                    .collect();
                if !events.is_empty() || tokio::time::Instant::now() >= deadline {
                    let cursor = events
                        .last()
                        .map(|(id, _)| id.clone())
                        .unwrap_or_else(|| after.to_string());
                    return Ok(FeedRead { events, cursor });
                }
            }
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }
}
