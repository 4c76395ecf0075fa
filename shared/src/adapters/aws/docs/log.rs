//! A room's update log in DynamoDB: dense positions taken by conditional puts after reading the
//! tail, sizes kept as running sums on the entries, trims that leave a tombstone at their last
//! position. See the module comment of `docs` for why this order is safe.
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

use super::{blob, get_bytes, get_u64, pause, room_pk, DynamoDocStore};
use crate::adapters::aws::items::{self, key, number, s, Item};
use crate::adapters::aws::items::{condition_failed, transaction_condition_failed};
use crate::doc::split::split_update_v1;
use crate::ports::{Appended, LogPosition, LogRead, StoreError, StoreResult};

const LOG_PREFIX: &str = "log#";
/// The largest update one entry holds: DynamoDB items are at most 400 KB, attribute names and
/// the other attributes included. A larger update is cut by the splitter into valid updates.
const MAX_ENTRY_BYTES: usize = 350_000;
/// What one TransactWriteItems may carry (DynamoDB: 100 actions, 4 MB in all).
const MAX_TRANSACTION_ITEMS: usize = 100;
const MAX_TRANSACTION_BYTES: usize = 4_000_000 - 100_000;
/// Appends racing for a room's next position: each attempt lets one writer through, so this
/// bounds the writers that can append to one room at the same moment without an error. A room
/// that busy belongs on Redis (README, "Profiles").
const APPEND_ATTEMPTS: usize = 40;

fn sort_key(seq: u64) -> String {
    // Zero-padded so that string order is number order.
    format!("{LOG_PREFIX}{seq:020}")
}

/// One end of the log, as an append needs it.
#[derive(Clone, Copy, Default)]
struct End {
    seq: u64,
    /// Update bytes appended through this entry since the room began.
    cumulative_bytes: u64,
    /// This entry's own update bytes (0 for a tombstone).
    len: u64,
    tombstone: bool,
}

impl End {
    fn from_item(item: &Item) -> Option<End> {
        let seq = item
            .get("sk")?
            .as_s()
            .ok()?
            .strip_prefix(LOG_PREFIX)?
            .parse()
            .ok()?;
        let tombstone = item.get("t").is_some();
        Some(End {
            seq,
            cumulative_bytes: get_u64(item, "cb")?,
            len: if tombstone { 0 } else { get_u64(item, "n")? },
            tombstone,
        })
    }

    /// What the log holds after this end, if it is the first item: `(entries, bytes)` before it.
    fn floor(&self) -> (u64, u64) {
        if self.tombstone {
            (self.seq, self.cumulative_bytes)
        } else {
            (self.seq - 1, self.cumulative_bytes - self.len)
        }
    }
}

/// The first or (`newest`) the last item of the log.
async fn end(store: &DynamoDocStore, pk: &str, newest: bool) -> StoreResult<Option<End>> {
    let output = store
        .client
        .query()
        .table_name(&store.table)
        .consistent_read(true)
        .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
        .expression_attribute_names("#pk", "pk")
        .expression_attribute_names("#sk", "sk")
        .expression_attribute_names("#cb", "cb")
        .expression_attribute_names("#n", "n")
        .expression_attribute_names("#t", "t")
        .expression_attribute_values(":pk", s(pk))
        .expression_attribute_values(":prefix", s(LOG_PREFIX))
        .projection_expression("#sk, #cb, #n, #t")
        .scan_index_forward(!newest)
        .limit(1)
        .send()
        .await
        .map_err(|e| store.error("Query log end", e))?;
    match output.items.unwrap_or_default().first() {
        None => Ok(None),
        Some(item) => End::from_item(item)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt(format!("log of {pk:?}: malformed entry"))),
    }
}

/// The entry for `update` right after `previous`.
fn entry(pk: &str, previous: &End, update: &[u8]) -> (Item, End) {
    let next = End {
        seq: previous.seq + 1,
        cumulative_bytes: previous.cumulative_bytes + update.len() as u64,
        len: update.len() as u64,
        tombstone: false,
    };
    let mut item = key(pk, sort_key(next.seq));
    item.insert("u".into(), blob(update));
    item.insert("cb".into(), number(next.cumulative_bytes));
    item.insert("n".into(), number(next.len));
    (item, next)
}

pub(super) async fn append(
    store: &DynamoDocStore,
    room: &str,
    update: &[u8],
) -> StoreResult<Appended> {
    let pk = room_pk(room);
    let pieces = if update.len() > MAX_ENTRY_BYTES {
        split_update_v1(update, MAX_ENTRY_BYTES).map_err(|e| {
            StoreError::Backend(format!(
                "a {}-byte update does not fit DynamoDB items: {e}",
                update.len()
            ))
        })?
    } else {
        vec![update.to_vec()]
    };
    let mut rest: &[Vec<u8>] = &pieces;
    let mut written = None;
    let mut floor = (0, 0);
    let mut attempt = 0;
    while !rest.is_empty() {
        // Both ends at once: the newest for the next position, the first for the log's size
        // since the last trim (exact unless a trim is deleting entries right now, and then too
        // high, never too low: compaction only comes sooner).
        let (tail, first) =
            futures::future::join(end(store, &pk, true), end(store, &pk, false)).await;
        let tail = tail?.unwrap_or_default();
        floor = first?.map_or((0, 0), |first| first.floor());
        // As many pieces as one write can take.
        let mut take = 0;
        let mut bytes = 0;
        while take < rest.len()
            && take < MAX_TRANSACTION_ITEMS
            && (take == 0 || bytes + rest[take].len() <= MAX_TRANSACTION_BYTES)
        {
            bytes += rest[take].len();
            take += 1;
        }
        let mut previous = tail;
        let mut items = Vec::with_capacity(take);
        for piece in &rest[..take] {
            let (item, next) = entry(&pk, &previous, piece);
            items.push(item);
            previous = next;
        }
        match write_entries(store, items).await {
            Ok(()) => {
                rest = &rest[take..];
                written = Some(previous);
                attempt = 0;
            }
            Err(Written::Raced) if attempt + 1 < APPEND_ATTEMPTS => {
                attempt += 1;
                pause(attempt).await;
            }
            Err(Written::Raced) => {
                return Err(StoreError::Backend(format!(
                    "append to room {room:?}: {APPEND_ATTEMPTS} writers in a row took the next position first"
                )))
            }
            Err(Written::Failed(e)) => return Err(e),
        }
    }
    let last = written.ok_or_else(|| StoreError::Backend("append of no pieces".into()))?;
    let (floor_seq, floor_bytes) = floor;
    Ok(Appended {
        position: LogPosition(last.seq.to_string()),
        entries: usize::try_from(last.seq.saturating_sub(floor_seq)).unwrap_or(usize::MAX),
        bytes: usize::try_from(last.cumulative_bytes.saturating_sub(floor_bytes))
            .unwrap_or(usize::MAX),
        // Reading the roster here would be a second request on every update, which is what
        // the roster version saves: this profile reads the members on every update instead.
        roster: None,
    })
}

enum Written {
    /// Another writer took one of the positions first: nothing was written.
    Raced,
    Failed(StoreError),
}

/// Writes log entries at positions nobody holds yet, all or none.
async fn write_entries(store: &DynamoDocStore, mut items: Vec<Item>) -> Result<(), Written> {
    const FREE: &str = "attribute_not_exists(pk)";
    if items.len() == 1 {
        let put = store
            .client
            .put_item()
            .table_name(&store.table)
            .set_item(items.pop())
            .condition_expression(FREE);
        return match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(Written::Raced),
            Err(e) => Err(Written::Failed(store.error("PutItem log entry", e))),
        };
    }
    let mut actions = Vec::with_capacity(items.len());
    for item in items {
        let put = Put::builder()
            .table_name(&store.table)
            .set_item(Some(item))
            .condition_expression(FREE)
            .build()
            .map_err(|e| Written::Failed(StoreError::Backend(format!("build Put: {e}"))))?;
        actions.push(TransactWriteItem::builder().put(put).build());
    }
    let count = actions.len();
    match store
        .client
        .transact_write_items()
        .set_transact_items(Some(actions))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if transaction_condition_failed(&e) => Err(Written::Raced),
        Err(e) => Err(Written::Failed(
            store.error(format!("TransactWriteItems ({count} log entries)"), e),
        )),
    }
}

pub(super) async fn read(store: &DynamoDocStore, room: &str) -> StoreResult<LogRead> {
    let pk = room_pk(room);
    let items = store.query_prefix(&pk, LOG_PREFIX, "log").await?;
    let mut read = LogRead::default();
    for item in &items {
        if item.get("t").is_some() {
            continue;
        }
        match (End::from_item(item), get_bytes(item, "u")) {
            (Some(tail), Some(update)) => {
                read.updates.push(update.to_vec());
                read.last = Some(LogPosition(tail.seq.to_string()));
            }
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "log of room {room:?}: malformed entry {:?}",
                    item.get("sk")
                )))
            }
        }
    }
    Ok(read)
}

pub(super) async fn trim(
    store: &DynamoDocStore,
    room: &str,
    upto: &LogPosition,
) -> StoreResult<()> {
    let seq: u64 = upto
        .0
        .parse()
        .map_err(|_| StoreError::Backend(format!("{upto:?} is not a DynamoDB log position")))?;
    let pk = room_pk(room);
    // The tombstone first: from here on no writer can take a position at or before it.
    let tombstone = store
        .client
        .update_item()
        .table_name(&store.table)
        .set_key(Some(key(&pk, sort_key(seq))))
        .update_expression("SET #t = :t REMOVE #u")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_names("#t", "t")
        .expression_attribute_names("#u", "u")
        .expression_attribute_values(":t", aws_sdk_dynamodb::types::AttributeValue::Bool(true));
    match tombstone.send().await {
        Ok(_) => {}
        // Gone: a later trim got past it, and removed everything before it too.
        Err(e) if condition_failed(&e) => return Ok(()),
        Err(e) => return Err(store.error("UpdateItem log tombstone", e)),
    }
    let query = store
        .client
        .query()
        .table_name(&store.table)
        .consistent_read(true)
        .key_condition_expression("#pk = :pk AND #sk BETWEEN :first AND :last")
        .expression_attribute_names("#pk", "pk")
        .expression_attribute_names("#sk", "sk")
        .expression_attribute_values(":pk", s(&pk))
        .expression_attribute_values(":first", s(sort_key(0)))
        .expression_attribute_values(":last", s(sort_key(seq.saturating_sub(1))))
        .projection_expression("#pk, #sk");
    if seq == 0 {
        return Ok(());
    }
    let keys = items::query_all(&store.table, None, "log entries to trim", query).await?;
    items::delete_items(&store.client, &store.table, keys).await
}
