//! The dashboard feed in Redis: the watch flag is a key with an expiry, the events a capped
//! stream. Readers poll with non-blocking `XRANGE` (a blocking `XREAD` would hold up the one
//! multiplexed connection every other command of the process shares).
use std::time::Duration;

use redis::streams::StreamRangeReply;

use super::RedisDocStore;
use crate::ports::{DashboardEvent, FeedRead, StoreError, StoreResult, DASHBOARD_FEED_KEEP};

const WATCH_KEY: &str = "yl:dashboard:watch";
const FEED_KEY: &str = "yl:dashboard:feed";
const EVENT_FIELD: &str = "e";
/// Pause between polls of an empty feed.
const POLL: Duration = Duration::from_millis(200);

impl RedisDocStore {
    pub(super) async fn feed_watched(&self) -> StoreResult<bool> {
        redis::cmd("EXISTS")
            .arg(WATCH_KEY)
            .query_async::<bool>(&mut self.conn())
            .await
            .map_err(|e| self.error("EXISTS (dashboard watch)", "", e))
    }

    pub(super) async fn feed_keep_watching(&self, for_ms: u64) -> StoreResult<()> {
        redis::cmd("SET")
            .arg(WATCH_KEY)
            .arg(1)
            .arg("PX")
            .arg(for_ms.max(1))
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| self.error("SET (dashboard watch)", "", e))
    }

    pub(super) async fn feed_emit(&self, event: &DashboardEvent) -> StoreResult<()> {
        let json = serde_json::to_string(event)
            .map_err(|e| StoreError::Backend(format!("encode a dashboard event: {e}")))?;
        redis::cmd("XADD")
            .arg(FEED_KEY)
            .arg("MAXLEN")
            .arg("~")
            .arg(DASHBOARD_FEED_KEEP)
            .arg("*")
            .arg(EVENT_FIELD)
            .arg(json)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| self.error("XADD (dashboard feed)", "", e))
    }

    pub(super) async fn feed_read(
        &self,
        after: Option<&str>,
        wait: Duration,
    ) -> StoreResult<FeedRead> {
        let Some(after) = after else {
            let last: StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(FEED_KEY)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut self.conn())
                .await
                .map_err(|e| self.error("XREVRANGE (dashboard feed)", "", e))?;
            let cursor = last
                .ids
                .first()
                .map(|e| e.id.clone())
                .unwrap_or_else(|| "0-0".into());
            return Ok(FeedRead {
                events: Vec::new(),
                cursor,
            });
        };
        let valid = after
            .split_once('-')
            .is_some_and(|(ms, seq)| ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok());
        if !valid {
            return Err(StoreError::BadCursor(format!(
                "{after:?} is not a feed cursor"
            )));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let reply: StreamRangeReply = redis::cmd("XRANGE")
                .arg(FEED_KEY)
                .arg(format!("({after}"))
                .arg("+")
                .arg("COUNT")
                .arg(100)
                .query_async(&mut self.conn())
                .await
                .map_err(|e| self.error("XRANGE (dashboard feed)", "", e))?;
            let mut events = Vec::with_capacity(reply.ids.len());
            for entry in &reply.ids {
                let json: Option<String> = entry.get(EVENT_FIELD);
                match json.as_deref().map(serde_json::from_str::<DashboardEvent>) {
                    Some(Ok(event)) => events.push((entry.id.clone(), event)),
                    // Written by a newer version, or not by us: skipped, not fatal.
                    _ => tracing::warn!(id = %entry.id, "skipping an unreadable dashboard event"),
                }
            }
            let cursor = reply.ids.last().map(|e| e.id.clone());
            if cursor.is_some() || tokio::time::Instant::now() >= deadline {
                return Ok(FeedRead {
                    events,
                    cursor: cursor.unwrap_or_else(|| after.to_string()),
                });
            }
            tokio::time::sleep(POLL.min(deadline - tokio::time::Instant::now())).await;
        }
    }
}
