//! Messages that arrive in pieces, in DynamoDB: one item per piece, one head item per message
//! that counts what arrived, and one item per connection listing its incomplete messages.
//!
//! | pk | sk | attributes |
//! | --- | --- | --- |
//! | `pc#C` | `m#{id}#head` | `count`, `have`, `bytes`, `gen` (which message of that id), `exp_ms`; `done` once complete |
//! | `pc#C` | `m#{id}#p#{index}` | `d` (S, the piece), `gen` |
//! | `pc#C` | `open` | `ids` (M: message id -> expiry ms), `v` (version) |
//!
//! Exactly one caller completes a message: a piece is counted (`ADD have 1`) only after its own
//! item was written under a condition that no piece of that index exists for this `gen`, so
//! `have` reaches `count` once, for the caller whose piece made it so. Message ids are
//! alphanumeric (`protocol::pieces`), so they cannot run into the `#` of the sort keys. Expiry is
//! checked against `exp_ms` (DynamoDB's TTL deletes items up to days late); `ttl` only cleans up.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{get_u64, pause, DynamoDocStore};
use crate::adapters::aws::items::condition_failed;
use crate::adapters::aws::items::{self, key, number, s, Item};
use crate::adapters::unix_now_ms;
use crate::ports::{PieceLimits, PieceOutcome, PieceRefusal, StoreError, StoreResult};
use crate::protocol::pieces::Piece;

/// Attempts at the connection's list of open messages: every first piece of a message of that
/// connection writes it, so pieces of several messages stored at once contend for it.
const OPEN_LIST_ATTEMPTS: usize = 64;

struct Keys {
    pk: String,
    head: String,
    piece_prefix: String,
}

impl Keys {
    fn new(connection_id: &str, message_id: &str) -> Keys {
        Keys {
            pk: format!("pc#{connection_id}"),
            head: format!("m#{message_id}#head"),
            piece_prefix: format!("m#{message_id}#p#"),
        }
    }

    fn piece(&self, index: u32) -> String {
        format!("{}{index:06}", self.piece_prefix)
    }
}

struct Head {
    count: u64,
    generation: String,
    done: bool,
}

fn live_head(item: Option<Item>, now: u64) -> Option<Head> {
    let item = item?;
    if get_u64(&item, "exp_ms")? <= now {
        return None;
    }
    Some(Head {
        count: get_u64(&item, "count")?,
        generation: item.get("gen")?.as_s().ok()?.clone(),
        done: item.contains_key("done"),
    })
}

fn ttl_secs(expires_ms: u64) -> AttributeValue {
    number(expires_ms / 1000 + 1)
}

pub(super) async fn put(
    store: &DynamoDocStore,
    connection_id: &str,
    piece: &Piece<'_>,
    limits: &PieceLimits,
) -> StoreResult<PieceOutcome> {
    let keys = Keys::new(connection_id, piece.message_id);
    let now = unix_now_ms();
    let ttl_ms = u64::try_from(limits.ttl.as_millis()).unwrap_or(u64::MAX / 4);
    let head = live_head(
        store.get(key(&keys.pk, &keys.head), "piece head").await?,
        now,
    );
    let generation = match head {
        Some(head) if head.done => return Ok(PieceOutcome::Duplicate),
        Some(head) if head.count != u64::from(piece.count) => {
            return Ok(PieceOutcome::Refused(PieceRefusal::CountMismatch))
        }
        Some(head) => head.generation,
        None => {
            // A new message: checked before anything is stored, so a refusal leaves no trace.
            if piece.data.len() > limits.max_text_bytes {
                return Ok(PieceOutcome::Refused(PieceRefusal::TooLarge));
            }
            if !open_message(store, &keys.pk, piece.message_id, now, now + ttl_ms, limits).await? {
                return Ok(PieceOutcome::Refused(PieceRefusal::TooManyOpen));
            }
            match start_message(store, &keys, piece, now, now + ttl_ms).await? {
                Ok(generation) => generation,
                // Someone started it at the same moment: go on with theirs.
                Err(Some(head)) if head.done => return Ok(PieceOutcome::Duplicate),
                Err(Some(head)) if head.count != u64::from(piece.count) => {
                    return Ok(PieceOutcome::Refused(PieceRefusal::CountMismatch))
                }
                Err(Some(head)) => head.generation,
                Err(None) => {
                    return Err(StoreError::Backend(format!(
                        "message {:?} of {connection_id:?}: its head vanished while it was started",
                        piece.message_id
                    )))
                }
            }
        }
    };

    // The piece itself, unless this message already has one at this index.
    let mut item = key(&keys.pk, keys.piece(piece.index));
    item.insert("d".into(), s(piece.data));
    item.insert("gen".into(), s(&generation));
    item.insert(super::super::TTL_ATTRIBUTE.into(), ttl_secs(now + ttl_ms));
    let stored = store
        .client
        .put_item()
        .table_name(&store.table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk) OR #gen <> :gen")
        .expression_attribute_names("#gen", "gen")
        .expression_attribute_values(":gen", s(&generation))
        .send()
        .await;
    match stored {
        Ok(_) => {}
        Err(e) if condition_failed(&e) => {
            let existing = store
                .get(key(&keys.pk, keys.piece(piece.index)), "piece")
                .await?;
            let same = existing
                .as_ref()
                .and_then(|item| item.get("d"))
                .and_then(|d| d.as_s().ok())
                .is_some_and(|d| d == piece.data);
            return Ok(if same {
                PieceOutcome::Duplicate
            } else {
                PieceOutcome::Refused(PieceRefusal::Overlap)
            });
        }
        Err(e) => return Err(store.error("PutItem piece", e)),
    }

    // Count it in, within the size limit.
    let len = piece.data.len() as u64;
    let room_left = (limits.max_text_bytes as u64).saturating_sub(len);
    let counted = store
        .client
        .update_item()
        .table_name(&store.table)
        .set_key(Some(key(&keys.pk, &keys.head)))
        .update_expression("ADD #have :one, #bytes :len")
        .condition_expression("#gen = :gen AND attribute_not_exists(#done) AND #bytes <= :left")
        .expression_attribute_names("#have", "have")
        .expression_attribute_names("#bytes", "bytes")
        .expression_attribute_names("#gen", "gen")
        .expression_attribute_names("#done", "done")
        .expression_attribute_values(":one", number(1))
        .expression_attribute_values(":len", number(len))
        .expression_attribute_values(":gen", s(&generation))
        .expression_attribute_values(":left", number(room_left))
        .return_values(ReturnValue::AllNew)
        .send()
        .await;
    let head = match counted {
        Ok(output) => output.attributes.unwrap_or_default(),
        Err(e) if condition_failed(&e) => {
            // Too large, or the message was completed or replaced meanwhile: the piece goes.
            forget_piece(store, &keys, piece.index).await?;
            let current = live_head(
                store.get(key(&keys.pk, &keys.head), "piece head").await?,
                now,
            );
            return Ok(match current {
                Some(head) if head.generation == generation && !head.done => {
                    PieceOutcome::Refused(PieceRefusal::TooLarge)
                }
                _ => PieceOutcome::Duplicate,
            });
        }
        Err(e) => return Err(store.error("UpdateItem piece head", e)),
    };
    match (get_u64(&head, "have"), get_u64(&head, "count")) {
        (Some(have), Some(count)) if have < count => return Ok(PieceOutcome::Waiting),
        (Some(_), Some(_)) => {}
        _ => {
            return Err(StoreError::Corrupt(format!(
                "message {:?} of {connection_id:?}: malformed head",
                piece.message_id
            )))
        }
    }
    complete(store, &keys, piece, &generation, now + ttl_ms).await
}

/// The caller whose piece was the last: marks the message done, assembles it, cleans up.
async fn complete(
    store: &DynamoDocStore,
    keys: &Keys,
    piece: &Piece<'_>,
    generation: &str,
    remember_until_ms: u64,
) -> StoreResult<PieceOutcome> {
    store
        .client
        .update_item()
        .table_name(&store.table)
        .set_key(Some(key(&keys.pk, &keys.head)))
        .update_expression("SET #done = :done, #exp = :exp, #ttl = :ttl")
        .expression_attribute_names("#done", "done")
        .expression_attribute_names("#exp", "exp_ms")
        .expression_attribute_names("#ttl", super::super::TTL_ATTRIBUTE)
        .expression_attribute_values(":done", AttributeValue::Bool(true))
        .expression_attribute_values(":exp", number(remember_until_ms))
        .expression_attribute_values(":ttl", ttl_secs(remember_until_ms))
        .send()
        .await
        .map_err(|e| store.error("UpdateItem piece head (done)", e))?;
    let items = store
        .query_prefix(&keys.pk, &keys.piece_prefix, "pieces")
        .await?;
    let mut parts: Vec<(&str, &str)> = Vec::with_capacity(piece.count as usize);
    let mut done_keys = Vec::with_capacity(items.len());
    for item in &items {
        let (Some(sk), Some(data)) = (
            item.get("sk").and_then(|v| v.as_s().ok()),
            item.get("d").and_then(|v| v.as_s().ok()),
        ) else {
            continue;
        };
        done_keys.push(key(&keys.pk, sk.as_str()));
        if item
            .get("gen")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            == Some(generation)
        {
            parts.push((sk, data));
        }
    }
    if parts.len() != piece.count as usize {
        return Err(StoreError::Corrupt(format!(
            "message {:?}: {} of its {} pieces found at completion",
            piece.message_id,
            parts.len(),
            piece.count
        )));
    }
    // Sort keys hold zero-padded indexes: their order is the pieces' order.
    parts.sort_unstable_by_key(|(sk, _)| *sk);
    let text: String = parts.iter().map(|(_, data)| *data).collect();
    items::delete_items(&store.client, &store.table, done_keys).await?;
    close_message(store, &keys.pk, piece.message_id).await?;
    Ok(PieceOutcome::Complete(text))
}

async fn forget_piece(store: &DynamoDocStore, keys: &Keys, index: u32) -> StoreResult<()> {
    store
        .client
        .delete_item()
        .table_name(&store.table)
        .set_key(Some(key(&keys.pk, keys.piece(index))))
        .send()
        .await
        .map_err(|e| store.error("DeleteItem piece", e))?;
    Ok(())
}

/// Writes the head of a new message: `Ok(generation)`, or `Err(the head someone else wrote)`.
async fn start_message(
    store: &DynamoDocStore,
    keys: &Keys,
    piece: &Piece<'_>,
    now: u64,
    expires_ms: u64,
) -> StoreResult<Result<String, Option<Head>>> {
    let generation = format!("{now}-{:016x}", rand::random::<u64>());
    let mut item = key(&keys.pk, &keys.head);
    item.insert("count".into(), number(piece.count.into()));
    item.insert("have".into(), number(0));
    item.insert("bytes".into(), number(0));
    item.insert("gen".into(), s(&generation));
    item.insert("exp_ms".into(), number(expires_ms));
    item.insert(super::super::TTL_ATTRIBUTE.into(), ttl_secs(expires_ms));
    let put = store
        .client
        .put_item()
        .table_name(&store.table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk) OR #exp <= :now")
        .expression_attribute_names("#exp", "exp_ms")
        .expression_attribute_values(":now", number(now))
        .send()
        .await;
    match put {
        Ok(_) => Ok(Ok(generation)),
        Err(e) if condition_failed(&e) => {
            let head = store.get(key(&keys.pk, &keys.head), "piece head").await?;
            Ok(Err(live_head(head, now)))
        }
        Err(e) => Err(store.error("PutItem piece head", e)),
    }
}

/// The connection's open messages that have not expired, and the list's version.
async fn open_list(
    store: &DynamoDocStore,
    pk: &str,
    now: u64,
) -> StoreResult<(HashMap<String, u64>, Option<u64>)> {
    let item = store.get(key(pk, "open"), "open messages").await?;
    let version = item.as_ref().and_then(|item| get_u64(item, "v"));
    let ids = item
        .as_ref()
        .and_then(|item| item.get("ids"))
        .and_then(|ids| ids.as_m().ok())
        .map(|ids| {
            ids.iter()
                .filter_map(|(id, exp)| Some((id.clone(), exp.as_n().ok()?.parse::<u64>().ok()?)))
                .filter(|(_, exp)| *exp > now)
                .collect()
        })
        .unwrap_or_default();
    Ok((ids, version))
}

/// Adds a message to the connection's open list if there is room: `false` if there is not.
async fn open_message(
    store: &DynamoDocStore,
    pk: &str,
    message_id: &str,
    now: u64,
    expires_ms: u64,
    limits: &PieceLimits,
) -> StoreResult<bool> {
    for attempt in 0..OPEN_LIST_ATTEMPTS {
        let (mut ids, version) = open_list(store, pk, now).await?;
        if !ids.contains_key(message_id) && ids.len() >= limits.max_open_messages {
            return Ok(false);
        }
        ids.insert(message_id.to_string(), expires_ms);
        if write_open_list(store, pk, ids, version, expires_ms).await? {
            return Ok(true);
        }
        pause(attempt).await;
    }
    Err(StoreError::Backend(format!(
        "open messages of {pk:?}: still contended after {OPEN_LIST_ATTEMPTS} attempts"
    )))
}

/// Removes a completed message from the connection's open list.
async fn close_message(store: &DynamoDocStore, pk: &str, message_id: &str) -> StoreResult<()> {
    for attempt in 0..OPEN_LIST_ATTEMPTS {
        let now = unix_now_ms();
        let (mut ids, version) = open_list(store, pk, now).await?;
        if ids.remove(message_id).is_none() {
            return Ok(());
        }
        let expires_ms = ids.values().copied().max().unwrap_or(now);
        if write_open_list(store, pk, ids, version, expires_ms).await? {
            return Ok(());
        }
        pause(attempt).await;
    }
    Err(StoreError::Backend(format!(
        "open messages of {pk:?}: still contended after {OPEN_LIST_ATTEMPTS} attempts"
    )))
}

/// Replaces the open list if its version is still `version`: `false` if someone wrote first.
async fn write_open_list(
    store: &DynamoDocStore,
    pk: &str,
    ids: HashMap<String, u64>,
    version: Option<u64>,
    expires_ms: u64,
) -> StoreResult<bool> {
    let mut item = key(pk, "open");
    item.insert(
        "ids".into(),
        AttributeValue::M(ids.into_iter().map(|(id, exp)| (id, number(exp))).collect()),
    );
    item.insert("v".into(), number(version.unwrap_or(0) + 1));
    item.insert(super::super::TTL_ATTRIBUTE.into(), ttl_secs(expires_ms));
    let put = store
        .client
        .put_item()
        .table_name(&store.table)
        .set_item(Some(item));
    let put = match version {
        Some(v) => put
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "v")
            .expression_attribute_values(":v", number(v)),
        None => put.condition_expression("attribute_not_exists(pk)"),
    };
    match put.send().await {
        Ok(_) => Ok(true),
        Err(e) if condition_failed(&e) => Ok(false),
        Err(e) => Err(store.error("PutItem open messages", e)),
    }
}
