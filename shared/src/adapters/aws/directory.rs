//! The room directory in the connection table: each room's activity (connections counted, last
//! activity) and its connection events, written in the same transaction as the membership they
//! count, and the listing of active rooms as Queries on `gs1`.
//!
//! | pk | sk | attributes | in `gs1`? |
//! | --- | --- | --- | --- |
//! | `room#R` | `rooms#{shard}` | `room`, `conns` (N), `last_active_ms` (N), `data` = `{last_active_ms:020}#{R}` while `conns` > 0, `ttl` | while active, under `sk = rooms#{shard}` |
//! | `room#R` | `event#{at_ms:020}#{connectionId}#{kind}` | `kind` (`opened` / `closed`), `conn`, `at_ms`, `sub`, `ttl` (7 days) | no (no `data`) |
//!
//! Listing "active rooms, newest first" is one Query per shard on `gs1` (`sk = rooms#{k}`,
//! descending `data`, `Limit` = page size), merged: the page is the newest `limit` of the
//! union, which holds the global newest `limit`. The next page Queries `data < cursor`. Shards
//! spread the index's write load: every join and departure rewrites its room's `data`, and one
//! index partition takes about 1,000 writes/s (an index key change is 2), so 8 shards carry about
//! 4,000 joins and departures per second. A page costs 8 Queries of at most `limit` small items
//! (0.5 RCU each per 4 KB read, eventually consistent).
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::backend_error;
use super::dynamodb::{DynamoConnectionStore, GSI_NAME, TTL_ATTRIBUTE};
use super::items::{number, s, Item};
use crate::adapters::{cursor_after, directory_key, key_of_cursor, unix_now_secs};
use crate::ports::{
    Membership, RoomActivity, RoomEvent, RoomEventKind, RoomPage, Scope, StoreError, StoreResult,
    MAX_ROOM_PAGE, ROOM_EVENT_TTL_SECS,
};

/// Index partitions the active-room listing is spread over.
pub const DIRECTORY_SHARDS: u32 = 8;
const SHARD_PREFIX: &str = "rooms#";
const EVENT_PREFIX: &str = "event#";

/// The sort key of `room`'s activity item: a stable hash of the name picks the shard.
fn shard_sk(room: &str) -> String {
    // FNV-1a: stable across processes and releases (std's hasher is not).
    let hash = room.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{SHARD_PREFIX}{}", hash % u64::from(DIRECTORY_SHARDS))
}

fn room_pk(room: &str) -> String {
    Scope::Room(room.to_string()).key()
}

/// The count change, last activity and event that go with a room membership's write or delete.
pub(super) fn activity_actions(
    store: &DynamoConnectionStore,
    room: &str,
    membership: &Membership,
    kind: RoomEventKind,
    at_ms: u64,
) -> StoreResult<[TransactWriteItem; 2]> {
    let delta = match kind {
        RoomEventKind::Opened => "1",
        RoomEventKind::Closed => "-1",
    };
    let expires = at_ms / 1000 + ROOM_EVENT_TTL_SECS;
    let update = Update::builder()
        .table_name(store.table())
        .key("pk", s(room_pk(room)))
        .key("sk", s(shard_sk(room)))
        .update_expression(
            "SET #room = :room, last_active_ms = :at, #data = :data, #ttl = :ttl ADD conns :delta",
        )
        .expression_attribute_names("#room", "room")
        .expression_attribute_names("#data", "data")
        .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
        .expression_attribute_values(":room", s(room))
        .expression_attribute_values(":at", number(at_ms))
        .expression_attribute_values(":data", s(directory_key(at_ms, room)))
        .expression_attribute_values(":ttl", number(expires))
        .expression_attribute_values(":delta", AttributeValue::N(delta.into()))
        .build()
        .map_err(|e| StoreError::Backend(format!("build Update: {e}")))?;
    let mut event = HashMap::from([
        ("pk".to_string(), s(room_pk(room))),
        (
            "sk".to_string(),
            s(format!(
                "{EVENT_PREFIX}{at_ms:020}#{}#{}",
                membership.connection_id,
                kind.as_str()
            )),
        ),
        ("kind".to_string(), s(kind.as_str())),
        ("conn".to_string(), s(membership.connection_id.clone())),
        ("at_ms".to_string(), number(at_ms)),
        (TTL_ATTRIBUTE.to_string(), number(expires)),
    ]);
    if let Some(sub) = membership.credential.as_ref().and_then(|c| c.sub.clone()) {
        event.insert("sub".to_string(), s(sub));
    }
    let put = Put::builder()
        .table_name(store.table())
        .set_item(Some(event))
        .build()
        .map_err(|e| StoreError::Backend(format!("build Put: {e}")))?;
    Ok([
        TransactWriteItem::builder().update(update).build(),
        TransactWriteItem::builder().put(put).build(),
    ])
}

/// A membership's own write in a directory transaction: created only if absent, so a refresh is
/// not counted twice.
pub(super) fn put_if_absent(
    store: &DynamoConnectionStore,
    item: Item,
) -> StoreResult<TransactWriteItem> {
    let put = Put::builder()
        .table_name(store.table())
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(sk)")
        .build()
        .map_err(|e| StoreError::Backend(format!("build Put: {e}")))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// A membership's delete in a directory transaction: only if present, so it is uncounted once
/// whoever else removes it.
pub(super) fn delete_if_present(
    store: &DynamoConnectionStore,
    key: Item,
) -> StoreResult<TransactWriteItem> {
    let delete = Delete::builder()
        .table_name(store.table())
        .set_key(Some(key))
        .condition_expression("attribute_exists(sk)")
        .build()
        .map_err(|e| StoreError::Backend(format!("build Delete: {e}")))?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

/// Runs a directory transaction. `Ok(false)`: a condition failed (the membership already
/// existed, or was already gone), and nothing was written.
pub(super) async fn transact(
    store: &DynamoConnectionStore,
    what: &str,
    actions: Vec<TransactWriteItem>,
) -> StoreResult<bool> {
    match store
        .client()
        .transact_write_items()
        .set_transact_items(Some(actions))
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if super::items::transaction_condition_failed(&e) => Ok(false),
        Err(e) => Err(backend_error(
            format!("TransactWriteItems {what} in table {}", store.table()),
            e,
        )),
    }
}

/// After a departure: takes the room out of the listing if no connection is counted any more
/// (a join racing this one has added to `conns`, so the condition fails and it stays listed).
pub(super) async fn unlist_if_empty(store: &DynamoConnectionStore, room: &str) -> StoreResult<()> {
    let result = store
        .client()
        .update_item()
        .table_name(store.table())
        .key("pk", s(room_pk(room)))
        .key("sk", s(shard_sk(room)))
        .update_expression("REMOVE #data")
        .condition_expression("conns <= :zero")
        .expression_attribute_names("#data", "data")
        .expression_attribute_values(":zero", number(0))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if super::items::condition_failed(&e) => Ok(()),
        Err(e) => Err(backend_error(
            format!(
                "UpdateItem room {room:?} activity in table {}",
                store.table()
            ),
            e,
        )),
    }
}

/// Edits in an active room: one UpdateItem, only while the room is listed (`data` present), so
/// a late write cannot list a room nobody is in.
pub(super) async fn touch_room(
    store: &DynamoConnectionStore,
    room: &str,
    at_ms: u64,
) -> StoreResult<()> {
    let result = store
        .client()
        .update_item()
        .table_name(store.table())
        .key("pk", s(room_pk(room)))
        .key("sk", s(shard_sk(room)))
        .update_expression("SET last_active_ms = :at, #data = :data")
        .condition_expression("attribute_exists(#data) AND last_active_ms < :at")
        .expression_attribute_names("#data", "data")
        .expression_attribute_values(":at", number(at_ms))
        .expression_attribute_values(":data", s(directory_key(at_ms, room)))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if super::items::condition_failed(&e) => Ok(()),
        Err(e) => Err(backend_error(
            format!(
                "UpdateItem room {room:?} activity in table {}",
                store.table()
            ),
            e,
        )),
    }
}

fn activity_from_item(item: &Item) -> Result<(Option<String>, RoomActivity), String> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        None => Ok(None),
        Some(other) => Err(format!("attribute {name} is not a string: {other:?}")),
    };
    let signed = |name: &str| match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse::<i64>().map_err(|e| format!("{name} {n:?}: {e}")),
        None => Ok(0),
        Some(other) => Err(format!("attribute {name} is not a number: {other:?}")),
    };
    let room = text("room")?.ok_or("attribute room is missing")?;
    Ok((
        text("data")?,
        RoomActivity {
            room,
            // Never below zero: a departure whose join predates the directory subtracts one.
            connections: signed("conns")?.max(0) as u64,
            last_active_ms: signed("last_active_ms")?.max(0) as u64,
        },
    ))
}

pub(super) async fn active_rooms(
    store: &DynamoConnectionStore,
    limit: usize,
    after: Option<&str>,
) -> StoreResult<RoomPage> {
    let limit = limit.clamp(1, MAX_ROOM_PAGE);
    let below = after.map(key_of_cursor).transpose()?;
    let queries = (0..DIRECTORY_SHARDS).map(|shard| {
        let mut query = store
            .client()
            .query()
            .table_name(store.table())
            .index_name(GSI_NAME)
            .scan_index_forward(false)
            .limit(limit as i32)
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":sk", s(format!("{SHARD_PREFIX}{shard}")));
        query = match &below {
            Some(below) => query
                .key_condition_expression("#sk = :sk AND #data < :below")
                .expression_attribute_names("#data", "data")
                .expression_attribute_values(":below", s(below.clone())),
            None => query.key_condition_expression("#sk = :sk"),
        };
        async move {
            query.send().await.map_err(|e| {
                backend_error(
                    format!(
                        "Query active rooms (shard {shard}) in table {}",
                        store.table()
                    ),
                    e,
                )
            })
        }
    });
    let pages = futures::future::try_join_all(queries).await?;
    let mut more = false;
    let mut keyed = Vec::new();
    for page in pages {
        more |= page.last_evaluated_key.is_some_and(|k| !k.is_empty());
        for item in page.items.unwrap_or_default() {
            match activity_from_item(&item) {
                // The index is eventually consistent: a room whose last connection just left
                // can still show, with nothing counted.
                Ok((Some(key), activity)) if activity.connections > 0 => {
                    keyed.push((key, activity))
                }
                Ok(_) => {}
                Err(why) => {
                    tracing::warn!(table = store.table(), %why, "skipping malformed room activity record")
                }
            }
        }
    }
    keyed.sort_by(|a, b| b.0.cmp(&a.0));
    more |= keyed.len() > limit;
    keyed.truncate(limit);
    let next = if more {
        keyed.last().map(|(key, _)| cursor_after(key))
    } else {
        None
    };
    Ok(RoomPage {
        rooms: keyed.into_iter().map(|(_, a)| a).collect(),
        next,
    })
}

pub(super) async fn room_activity(
    store: &DynamoConnectionStore,
    room: &str,
) -> StoreResult<Option<RoomActivity>> {
    let output = store
        .client()
        .get_item()
        .table_name(store.table())
        .key("pk", s(room_pk(room)))
        .key("sk", s(shard_sk(room)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| {
            backend_error(
                format!("GetItem room {room:?} activity in table {}", store.table()),
                e,
            )
        })?;
    let Some(item) = output.item else {
        return Ok(None);
    };
    let (_, activity) = activity_from_item(&item).map_err(|why| {
        StoreError::Corrupt(format!(
            "room {room:?} activity in table {}: {why}",
            store.table()
        ))
    })?;
    Ok(Some(activity))
}

fn event_from_item(item: &Item) -> Result<RoomEvent, String> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        other => Err(format!("attribute {name} is not a string: {other:?}")),
    };
    let at_ms = match item.get("at_ms") {
        Some(AttributeValue::N(n)) => n.parse::<u64>().map_err(|e| format!("at_ms {n:?}: {e}"))?,
        other => return Err(format!("attribute at_ms is not a number: {other:?}")),
    };
    let kind = text("kind")?;
    Ok(RoomEvent {
        at_ms,
        connection_id: text("conn")?,
        kind: RoomEventKind::parse(&kind).ok_or(format!("unknown event kind {kind:?}"))?,
        sub: text("sub").ok(),
    })
}

pub(super) async fn room_events(
    store: &DynamoConnectionStore,
    room: &str,
    limit: usize,
) -> StoreResult<Vec<RoomEvent>> {
    let output = store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression("#pk = :pk AND begins_with(#sk, :events)")
        .expression_attribute_names("#pk", "pk")
        .expression_attribute_names("#sk", "sk")
        .expression_attribute_values(":pk", s(room_pk(room)))
        .expression_attribute_values(":events", s(EVENT_PREFIX))
        .scan_index_forward(false)
        // Consistent, like every table Query of this store: an event just written is listed.
        .consistent_read(true)
        .limit(limit.clamp(1, 1000) as i32)
        .send()
        .await
        .map_err(|e| {
            backend_error(
                format!("Query room {room:?} events in table {}", store.table()),
                e,
            )
        })?;
    let now = unix_now_secs();
    let mut events = Vec::new();
    for item in output.items.unwrap_or_default() {
        // DynamoDB's TTL sweep is late (moto never sweeps): expiry is checked on read.
        let expired = matches!(item.get(TTL_ATTRIBUTE), Some(AttributeValue::N(n)) if n.parse::<u64>().is_ok_and(|t| t <= now));
        if expired {
            continue;
        }
        match event_from_item(&item) {
            Ok(event) => events.push(event),
            Err(why) => {
                tracing::warn!(table = store.table(), %why, "skipping malformed room event")
            }
        }
    }
    Ok(events)
}
