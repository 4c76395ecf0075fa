//! The dashboard feed in the table (DynamoDB profile): the watch flag is one item, the events
//! items of one partition that expire after an hour. Readers poll with a Query past their
//! cursor, only while someone watches (the feed is written only then).
//!
//! | pk | sk | attributes |
//! | --- | --- | --- |
//! | `dash#feed` | `watch` | `until_ms`, `ttl` |
//! | `dash#feed` | `e#{at_ms:020}#{random:016x}` | `e` (S, the event as JSON), `ttl` (1 h) |
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{get_u64, DynamoDocStore};
use crate::adapters::aws::items::{key, number, s, Item};
use crate::adapters::{unix_now_ms, unix_now_secs};
use crate::ports::{DashboardEvent, FeedRead, StoreError, StoreResult};

const FEED_PK: &str = "dash#feed";
const WATCH_SK: &str = "watch";
const EVENT_PREFIX: &str = "e#";
/// Above every event key: `~` sorts after the hex digits and `#`.
const EVENTS_END: &str = "e#~";
const EVENT_TTL_SECS: u64 = 3600;
/// Pause between polls of an empty feed: a viewer's stream costs about two reads a second.
const POLL: Duration = Duration::from_millis(500);

impl DynamoDocStore {
    pub(super) async fn feed_watched(&self) -> StoreResult<bool> {
        let item = self.get(key(FEED_PK, WATCH_SK), "dashboard watch").await?;
        Ok(item
            .as_ref()
            .and_then(|i| get_u64(i, "until_ms"))
            .is_some_and(|until| until > unix_now_ms()))
    }

    pub(super) async fn feed_keep_watching(&self, for_ms: u64) -> StoreResult<()> {
        let until = unix_now_ms() + for_ms;
        let mut item = key(FEED_PK, WATCH_SK);
        item.insert("until_ms".into(), number(until));
        item.insert("ttl".into(), number(until / 1000 + 60));
        self.put(item, "dashboard watch").await
    }

    pub(super) async fn feed_emit(&self, event: &DashboardEvent) -> StoreResult<()> {
        let json = serde_json::to_string(event)
            .map_err(|e| StoreError::Backend(format!("encode a dashboard event: {e}")))?;
        let sk = format!(
            "{EVENT_PREFIX}{:020}#{:016x}",
            unix_now_ms(),
            rand::random::<u64>()
        );
        let mut item = key(FEED_PK, sk);
        item.insert("e".into(), s(json));
        item.insert("ttl".into(), number(unix_now_secs() + EVENT_TTL_SECS));
        self.put(item, "dashboard event").await
    }

    async fn put(&self, item: Item, what: &str) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.error(format!("PutItem {what}"), e))?;
        Ok(())
    }

    pub(super) async fn feed_read(
        &self,
        after: Option<&str>,
        wait: Duration,
    ) -> StoreResult<FeedRead> {
        let Some(after) = after else {
            let newest = self.events_from(EVENT_PREFIX, false, 1).await?;
            let cursor = newest
                .first()
                .map(|(sk, _)| sk.clone())
                .unwrap_or_else(|| EVENT_PREFIX.to_string());
            return Ok(FeedRead {
                events: Vec::new(),
                cursor,
            });
        };
        if !after.starts_with(EVENT_PREFIX) || after >= EVENTS_END {
            return Err(StoreError::BadCursor(format!(
                "{after:?} is not a feed cursor"
            )));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let events: Vec<(String, DashboardEvent)> = self
                .events_from(after, true, 100)
                .await?
                .into_iter()
                .filter(|(sk, _)| sk.as_str() > after)
                .filter_map(|(sk, item)| {
                    let expired = get_u64(&item, "ttl").is_some_and(|t| t <= unix_now_secs());
                    let json = item.get("e").and_then(|v| v.as_s().ok());
                    match json.map(|j| serde_json::from_str::<DashboardEvent>(j)) {
                        Some(Ok(event)) if !expired => Some((sk, event)),
                        Some(Ok(_)) => None,
                        _ => {
                            tracing::warn!(sk, "skipping an unreadable dashboard event");
                            None
                        }
                    }
                })
                .collect();
            if !events.is_empty() || tokio::time::Instant::now() >= deadline {
                let cursor = events
                    .last()
                    .map(|(sk, _)| sk.clone())
                    .unwrap_or_else(|| after.to_string());
                return Ok(FeedRead { events, cursor });
            }
            tokio::time::sleep(POLL.min(deadline - tokio::time::Instant::now())).await;
        }
    }

    /// Up to `limit` event items from `from` (inclusive) on, oldest first, or newest first.
    async fn events_from(
        &self,
        from: &str,
        forward: bool,
        limit: i32,
    ) -> StoreResult<Vec<(String, Item)>> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :end")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(FEED_PK))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":end", s(EVENTS_END))
            .scan_index_forward(forward)
            .limit(limit)
            .send()
            .await
            .map_err(|e| self.error("Query dashboard feed", e))?;
        Ok(output
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|item| {
                let sk = match item.get("sk") {
                    Some(AttributeValue::S(sk)) => sk.clone(),
                    _ => return None,
                };
                Some((sk, item))
            })
            .collect())
    }
}
