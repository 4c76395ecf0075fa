//! DynamoDB adapter of the [`DocStore`] port, in the connections' single table: the `dynamodb`
//! profile, which needs no Redis and no VPC, so an idle deployment costs nothing but storage.
//!
//! | pk | sk | attributes | expiry |
//! | --- | --- | --- | --- |
//! | `doc#R` | `log#{seq, 20 digits}` | `u` (B, the update), `n` (N, its bytes), `cb` (N, bytes through this entry since the room began) | none: compaction trims the log |
//! | `doc#R` | `log#{seq}` after a trim | `t` (BOOL), `cb`: a tombstone that keeps the position, no update | deleted by the next trim |
//! | `doc#R` | `aw#{C}` | `e` (B, the encoded [`AwarenessEntry`]), `v` (N, version) | `ttl`: 3 h after the last write |
//! | `doc#R` | `lock` | `token` (S), `exp_ms` (N) | `exp_ms`; `ttl` a minute later |
//! | `doc#R` | `epoch` | (none) | none (ARCHITECTURE.md invariant 6) |
//! | `pc#C` | `open`, `m#{id}#head`, `m#{id}#p#{index}` | see `pieces` | `ttl`: the piece TTL |
//! | `rate#C` | `w#{window}` | `n` (N) | `ttl`: a minute |
//!
//! No item has a `data` attribute, so none of them enters the `gs1` index. Every read that a
//! decision depends on is strongly consistent, and every item of one room shares one partition
//! key, so a room's log is read as one consistent Query.
//!
//! The update log (`log`): DynamoDB has no atomic append, so an append reads the log's tail
//! (a Query for one item) and writes the next position with a conditional put that fails if a
//! concurrent writer took it first (then it reads the tail again). Positions are dense, so an entry
//! at or before a position a reader saw was there when it read: trimming up to a read position
//! never removes an entry that was not read. A trim leaves its last position as a tombstone, so
//! positions never go back and no writer can reuse one a trim is deleting. An append's reported
//! size comes from the log's two ends (the running sums on the newest entry and on the first).
//!
//! There is no relay channel: the Lambdas deliver by posting to connections, and the long-lived
//! listeners of a direct server need Redis. `publish` does nothing and `append` ignores `relay`.
mod feed;
mod log;
mod pieces;

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;

use super::backend_error;
use super::items::{self, condition_failed, key, number, s, Item};
use crate::adapters::awareness_codec::{decode_awareness, encode_awareness};
use crate::adapters::{unix_now_ms, unix_now_secs};
use crate::ports::{
    Appended, AwarenessEntry, Channel, DashboardEvent, DocStore, FeedRead, LockToken, LogPosition,
    LogRead, PieceLimits, PieceOutcome, StoreError, StoreResult,
};
use crate::protocol::pieces::Piece;

/// How long an awareness entry lives after its last write: past API Gateway's 2 h connection
/// limit, so only entries of connections that are certainly gone expire.
const AWARENESS_TTL_SECS: u64 = 3 * 60 * 60;
/// Lifetime of a rate counter: longer than any rate window the handler uses.
const RATE_COUNTER_TTL_SECS: u64 = 60;
/// Optimistic `put_awareness` attempts: only writes for the same connection conflict.
const AWARENESS_CAS_ATTEMPTS: usize = 8;

pub struct DynamoDocStore {
    client: Client,
    table: String,
}

impl DynamoDocStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDocStore {
            client,
            table: table.into(),
        }
    }

    fn error<E: std::error::Error + 'static>(
        &self,
        what: impl std::fmt::Display,
        e: E,
    ) -> StoreError {
        backend_error(format!("{what} in table {}", self.table), e)
    }

    /// One item by key, strongly consistent.
    async fn get(&self, key: Item, what: &str) -> StoreResult<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(format!("GetItem {what}"), e))?;
        Ok(output.item)
    }

    /// Every item of partition `pk` whose sort key starts with `prefix`, strongly consistent.
    async fn query_prefix(&self, pk: &str, prefix: &str, what: &str) -> StoreResult<Vec<Item>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix));
        items::query_all(&self.table, None, what, query).await
    }
}

fn room_pk(room: &str) -> String {
    format!("doc#{room}")
}

const AWARENESS_PREFIX: &str = "aw#";

fn blob(bytes: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(bytes))
}

/// A number attribute, if present and well formed.
fn get_u64(item: &Item, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn get_bytes<'a>(item: &'a Item, name: &str) -> Option<&'a [u8]> {
    item.get(name)?.as_b().ok().map(Blob::as_ref)
}

/// Jittered pause before retrying after a lost race.
async fn pause(attempt: usize) {
    let cap_ms = (5u64 << attempt.min(6)).min(200);
    tokio::time::sleep(Duration::from_millis(rand::random_range(0..=cap_ms))).await;
}

#[async_trait]
impl DocStore for DynamoDocStore {
    async fn append(&self, room: &str, update: &[u8], _relay: &[u8]) -> StoreResult<Appended> {
        log::append(self, room, update).await
    }

    async fn read_log(&self, room: &str) -> StoreResult<LogRead> {
        log::read(self, room).await
    }

    async fn trim_log(&self, room: &str, upto: &LogPosition) -> StoreResult<()> {
        log::trim(self, room, upto).await
    }

    async fn put_awareness(&self, room: &str, entry: AwarenessEntry) -> StoreResult<()> {
        let pk = room_pk(room);
        let sk = format!("{AWARENESS_PREFIX}{}", entry.connection_id);
        for attempt in 0..AWARENESS_CAS_ATTEMPTS {
            let stored = self.get(key(&pk, &sk), "awareness entry").await?;
            let version = stored.as_ref().and_then(|item| get_u64(item, "v"));
            let merged = match stored.as_ref().and_then(|item| get_bytes(item, "e")) {
                Some(raw) => match decode_awareness(&entry.connection_id, raw) {
                    Ok(old) => old.merge(entry.clone()),
                    Err(why) => {
                        tracing::warn!(room, %why, "replacing a corrupt awareness entry");
                        entry.clone()
                    }
                },
                None => entry.clone(),
            };
            let mut item = key(&pk, &sk);
            item.insert("e".into(), blob(&encode_awareness(&merged)));
            item.insert("v".into(), number(version.unwrap_or(0) + 1));
            item.insert(
                super::TTL_ATTRIBUTE.into(),
                number(unix_now_secs() + AWARENESS_TTL_SECS),
            );
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item));
            let put = match version {
                Some(v) => put
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#v", "v")
                    .expression_attribute_values(":v", number(v)),
                None => put.condition_expression("attribute_not_exists(pk)"),
            };
            match put.send().await {
                Ok(_) => return Ok(()),
                Err(e) if condition_failed(&e) => pause(attempt).await,
                Err(e) => return Err(self.error("PutItem awareness entry", e)),
            }
        }
        Err(StoreError::Backend(format!(
            "awareness entry of {:?} in room {room:?}: still contended after {AWARENESS_CAS_ATTEMPTS} attempts",
            entry.connection_id
        )))
    }

    async fn awareness(&self, room: &str) -> StoreResult<Vec<AwarenessEntry>> {
        let items = self
            .query_prefix(&room_pk(room), AWARENESS_PREFIX, "awareness")
            .await?;
        let mut entries = Vec::with_capacity(items.len());
        for item in &items {
            let connection_id = item
                .get("sk")
                .and_then(|sk| sk.as_s().ok())
                .and_then(|sk| sk.strip_prefix(AWARENESS_PREFIX));
            let decoded = match (connection_id, get_bytes(item, "e")) {
                (Some(id), Some(raw)) => decode_awareness(id, raw),
                _ => Err("no connection id or entry".to_string()),
            };
            match decoded {
                Ok(entry) => entries.push(entry),
                Err(why) => tracing::warn!(room, %why, "skipping a corrupt awareness entry"),
            }
        }
        Ok(entries)
    }

    async fn remove_awareness(
        &self,
        room: &str,
        connection_id: &str,
    ) -> StoreResult<Option<AwarenessEntry>> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(
                room_pk(room),
                format!("{AWARENESS_PREFIX}{connection_id}"),
            )))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| self.error("DeleteItem awareness entry", e))?;
        let Some(raw) = output
            .attributes
            .as_ref()
            .and_then(|item| get_bytes(item, "e"))
        else {
            return Ok(None);
        };
        decode_awareness(connection_id, raw)
            .map(Some)
            .map_err(StoreError::Corrupt)
    }

    async fn publish(&self, _channel: &Channel, _message: &[u8]) -> StoreResult<()> {
        // No channel (see the module comment): the Lambdas post to each connection themselves.
        Ok(())
    }

    async fn try_lock(&self, room: &str, ttl_ms: u64) -> StoreResult<Option<LockToken>> {
        let token = format!("{:032x}", rand::random::<u128>());
        let now = unix_now_ms();
        let mut item = key(room_pk(room), "lock");
        item.insert("token".into(), s(&token));
        item.insert("exp_ms".into(), number(now + ttl_ms));
        item.insert(
            super::TTL_ATTRIBUTE.into(),
            number((now + ttl_ms) / 1000 + 60),
        );
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #exp < :now")
            .expression_attribute_names("#exp", "exp_ms")
            .expression_attribute_values(":now", number(now));
        match put.send().await {
            Ok(_) => Ok(Some(LockToken(token))),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(self.error("PutItem compaction lock", e)),
        }
    }

    async fn unlock(&self, room: &str, token: &LockToken) -> StoreResult<()> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(room_pk(room), "lock")))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":token", s(&token.0));
        match delete.send().await {
            // Someone else's lock now (ours expired): not ours to release.
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(self.error("DeleteItem compaction lock", e)),
            Ok(_) => Ok(()),
        }
    }

    async fn ensure_epoch(&self, room: &str) -> StoreResult<bool> {
        // A read first: reads cost a fifth of writes, and the epoch is almost always there.
        if self
            .get(key(room_pk(room), "epoch"), "epoch")
            .await?
            .is_some()
        {
            return Ok(true);
        }
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(key(room_pk(room), "epoch")))
            .condition_expression("attribute_not_exists(pk)");
        match put.send().await {
            Ok(_) => Ok(false),
            Err(e) if condition_failed(&e) => Ok(true),
            Err(e) => Err(self.error("PutItem epoch", e)),
        }
    }

    async fn put_piece(
        &self,
        connection_id: &str,
        piece: &Piece<'_>,
        limits: &PieceLimits,
    ) -> StoreResult<PieceOutcome> {
        pieces::put(self, connection_id, piece, limits).await
    }

    async fn count_message(&self, connection_id: &str, window: u64) -> StoreResult<u64> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                format!("rate#{connection_id}"),
                format!("w#{window}"),
            )))
            .update_expression("ADD #n :one SET #ttl = :ttl")
            .expression_attribute_names("#n", "n")
            .expression_attribute_names("#ttl", super::TTL_ATTRIBUTE)
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":ttl", number(unix_now_secs() + RATE_COUNTER_TTL_SECS))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| self.error("UpdateItem rate counter", e))?;
        output
            .attributes
            .as_ref()
            .and_then(|item| get_u64(item, "n"))
            .ok_or_else(|| {
                StoreError::Corrupt(format!("rate counter of {connection_id:?}: no count"))
            })
    }

    /// Nothing to do: `append` reports no roster version here (see `log::append`).
    async fn mark_roster_changed(&self, _room: &str) -> StoreResult<()> {
        Ok(())
    }

    async fn watched(&self) -> StoreResult<bool> {
        self.feed_watched().await
    }

    async fn keep_watching(&self, for_ms: u64) -> StoreResult<()> {
        self.feed_keep_watching(for_ms).await
    }

    async fn emit(&self, event: &DashboardEvent) -> StoreResult<()> {
        self.feed_emit(event).await
    }

    async fn read_feed(&self, after: Option<&str>, wait: Duration) -> StoreResult<FeedRead> {
        self.feed_read(after, wait).await
    }
}
