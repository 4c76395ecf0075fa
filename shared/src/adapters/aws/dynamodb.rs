//! DynamoDB connection store: the single table of ARCHITECTURE.md ("DynamoDB").
//!
//! | pk | sk | data | endpoint | readonly | ttl | sub, token_exp, grants |
//! | --- | --- | --- | --- | --- | --- | --- |
//! | `room#R` / `topic#T` / `peer#C` ([`Scope::key`]) | `conn#{connectionId}` | joined-at ms, 20 digits | S | BOOL | N, epoch s | S, N, L of S: only with a token |
//!
//! | `room#R` | `meta` | (none) | `created_ms`, `last_active_ms`, `updates`, `snapshots`, `snapshot_version`, `snapshot_bytes` |
//!
//! `members` is one strongly consistent Query on the table; `memberships_of` and
//! `remove_connection` one Query on the `gs1` index (hash `sk`, range `data`). Never a Scan.
//! A room membership is written and deleted in one transaction with its room's activity and
//! connection event (`directory.rs`).
//! The room directory record has no `data` attribute, so it stays out of `gs1`: indexed, every
//! room's record would share the one index partition `meta` and make it hot.
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::backend_error;
use super::directory;
use super::items::{self, number, s, Item};
use crate::adapters::{unix_now_ms, unix_now_secs};
use crate::ports::{
    ConnectionStore, Credential, Membership, RoomActivity, RoomEvent, RoomEventKind, RoomMeta,
    RoomPage, Scope, SnapshotRecord, StoreError, StoreResult,
};

/// The index that finds a connection's memberships (`$disconnect`, 410 clean-up).
pub const GSI_NAME: &str = "gs1";
/// The attribute DynamoDB's TTL sweep reads (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "ttl";

const CONN_PREFIX: &str = "conn#";
/// Sort key of a room's directory record.
const META_SK: &str = "meta";

pub struct DynamoConnectionStore {
    client: Client,
    table: String,
    /// `Limit` per Query page; `None` lets DynamoDB fill 1 MB pages. Only tests set it, to make
    /// pagination happen with a handful of items.
    page_limit: Option<i32>,
}

impl DynamoConnectionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoConnectionStore {
            client,
            table: table.into(),
            page_limit: None,
        }
    }

    /// Caps every Query page at `n` items (at least 1), so pagination is exercised with few items.
    pub fn with_page_limit(mut self, n: u32) -> Self {
        self.page_limit = Some(n.clamp(1, i32::MAX as u32) as i32);
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    /// Deletes a room membership with its activity count and event, once: `false` if it was
    /// already gone (another departure got there first).
    async fn delete_room_membership(
        &self,
        room: &str,
        membership: &Membership,
        key: Item,
    ) -> StoreResult<bool> {
        let [count, event] = directory::activity_actions(
            self,
            room,
            membership,
            RoomEventKind::Closed,
            unix_now_ms(),
        )?;
        let delete = directory::delete_if_present(self, key)?;
        let deleted = directory::transact(self, "leave room", vec![delete, count, event]).await?;
        if deleted {
            directory::unlist_if_empty(self, room).await?;
        }
        Ok(deleted)
    }

    async fn query_all(
        &self,
        what: &str,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> StoreResult<Vec<Item>> {
        items::query_all(&self.table, self.page_limit, what, query).await
    }

    /// Every item of a connection, expired or not, from the `gs1` index. An index read is
    /// eventually consistent (GSIs offer nothing else): a membership written a moment ago may be
    /// missing; its TTL and the 410 clean-up catch it later.
    async fn items_of(&self, connection_id: &str) -> StoreResult<Vec<Item>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI_NAME)
            .key_condition_expression("#sk = :sk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":sk", s(format!("{CONN_PREFIX}{connection_id}")));
        self.query_all(
            &format!("memberships of connection {connection_id:?}"),
            query,
        )
        .await
    }

    async fn delete_items(&self, keys: Vec<Item>) -> StoreResult<()> {
        items::delete_items(&self.client, &self.table, keys).await
    }
}

fn to_item(m: &Membership) -> Item {
    let mut item = HashMap::from([
        ("pk".to_string(), s(m.scope.key())),
        (
            "sk".to_string(),
            s(format!("{CONN_PREFIX}{}", m.connection_id)),
        ),
        // Zero-padded so the index's string range key sorts by time; 20 digits hold any u64.
        ("data".to_string(), s(format!("{:020}", m.joined_at_ms))),
        ("endpoint".to_string(), s(m.endpoint.clone())),
        ("readonly".to_string(), AttributeValue::Bool(m.readonly)),
        (TTL_ATTRIBUTE.to_string(), number(m.expires_at)),
    ]);
    if let Some(credential) = &m.credential {
        if let Some(sub) = &credential.sub {
            item.insert("sub".to_string(), s(sub.clone()));
        }
        item.insert("token_exp".to_string(), number(credential.token_expires_at));
        let grants = credential.rooms.iter().map(|r| s(r.clone())).collect();
        item.insert("grants".to_string(), AttributeValue::L(grants));
    }
    item
}

/// The credential attributes of an item, present only on records written with a token.
fn credential(item: &Item) -> Result<Option<Credential>, String> {
    if !item.contains_key("token_exp") {
        return Ok(None);
    }
    let sub = match item.get("sub") {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        None => None,
        Some(other) => return Err(format!("attribute sub is not a string: {other:?}")),
    };
    let rooms = match item.get("grants") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::S(r) => Ok(r.clone()),
                other => Err(format!("grants entry is not a string: {other:?}")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
        Some(other) => return Err(format!("attribute grants is not a list: {other:?}")),
    };
    Ok(Some(Credential {
        sub,
        token_expires_at: unsigned(item, "token_exp")?,
        rooms,
    }))
}

/// A string attribute of an item.
fn text<'a>(item: &'a Item, name: &str) -> Result<&'a str, String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.as_str()),
        Some(other) => Err(format!("attribute {name} is not a string: {other:?}")),
        None => Err(format!("attribute {name} is missing")),
    }
}

/// A non-negative integer attribute of an item.
fn unsigned(item: &Item, name: &str) -> Result<u64, String> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse::<u64>().map_err(|e| format!("{name} {n:?}: {e}")),
        Some(other) => Err(format!("attribute {name} is not a number: {other:?}")),
        None => Err(format!("attribute {name} is missing")),
    }
}

fn from_item(item: &Item) -> Result<Membership, String> {
    let text = |name: &str| text(item, name);
    let pk = text("pk")?;
    let scope = Scope::from_key(pk).ok_or_else(|| format!("pk {pk:?} is not a scope key"))?;
    let sk = text("sk")?;
    let connection_id = sk
        .strip_prefix(CONN_PREFIX)
        .ok_or_else(|| format!("sk {sk:?} is not a connection key"))?;
    let data = text("data")?;
    let joined_at_ms = data
        .parse::<u64>()
        .map_err(|e| format!("data {data:?}: {e}"))?;
    let readonly = match item.get("readonly") {
        Some(AttributeValue::Bool(b)) => *b,
        None => false,
        Some(other) => return Err(format!("attribute readonly is not a BOOL: {other:?}")),
    };
    let expires_at = unsigned(item, TTL_ATTRIBUTE)?;
    Ok(Membership {
        scope,
        connection_id: connection_id.to_string(),
        endpoint: text("endpoint")?.to_string(),
        readonly,
        joined_at_ms,
        expires_at,
        credential: credential(item)?,
    })
}

/// The unexpired memberships among `items`. DynamoDB's TTL sweep deletes expired items lazily
/// (up to days later) and moto never does, so expiry is checked on every read. An item that does
/// not parse is logged and skipped: one bad record must not stop a whole room's broadcasts.
fn live_memberships(items: &[Item], table: &str) -> Vec<Membership> {
    let now = unix_now_secs();
    items
        .iter()
        .filter_map(|item| match from_item(item) {
            Ok(m) => Some(m),
            Err(why) => {
                tracing::warn!(table, %why, "skipping malformed connection record");
                None
            }
        })
        .filter(|m| m.expires_at > now)
        .collect()
}

#[async_trait]
impl ConnectionStore for DynamoConnectionStore {
    async fn join(&self, membership: Membership) -> StoreResult<()> {
        if let Scope::Room(room) = &membership.scope {
            // A new membership is counted in the same transaction that writes it.
            let [count, event] = directory::activity_actions(
                self,
                room,
                &membership,
                RoomEventKind::Opened,
                membership.joined_at_ms,
            )?;
            let put = directory::put_if_absent(self, to_item(&membership))?;
            if directory::transact(self, "join room", vec![put, count, event]).await? {
                return Ok(());
            }
            // It exists: refreshed below, not counted again.
        }
        // A plain PutItem: joining again replaces the record, which refreshes `ttl`.
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&membership)))
            .send()
            .await
            .map_err(|e| {
                backend_error(
                    format!(
                        "PutItem {} of connection {:?} in table {}",
                        membership.scope, membership.connection_id, self.table
                    ),
                    e,
                )
            })?;
        Ok(())
    }

    async fn leave(&self, scope: &Scope, connection_id: &str) -> StoreResult<()> {
        if let Scope::Room(room) = scope {
            let key = items::key(scope.key(), format!("{CONN_PREFIX}{connection_id}"));
            let membership = Membership {
                scope: scope.clone(),
                connection_id: connection_id.to_string(),
                endpoint: String::new(),
                readonly: false,
                joined_at_ms: 0,
                expires_at: 0,
                credential: None,
            };
            self.delete_room_membership(room, &membership, key).await?;
            return Ok(());
        }
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(scope.key()))
            .key("sk", s(format!("{CONN_PREFIX}{connection_id}")))
            .send()
            .await
            .map_err(|e| {
                backend_error(
                    format!(
                        "DeleteItem {scope} of connection {connection_id:?} in table {}",
                        self.table
                    ),
                    e,
                )
            })?;
        Ok(())
    }

    async fn members(&self, scope: &Scope) -> StoreResult<Vec<Membership>> {
        // ConsistentRead: an eventually consistent read can miss a connection that joined a
        // moment ago and already read its initial state; it would never get this update
        // (ARCHITECTURE.md invariant 2).
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :conn)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(scope.key()))
            .expression_attribute_values(":conn", s(CONN_PREFIX));
        let items = self
            .query_all(&format!("members of {scope}"), query)
            .await?;
        Ok(live_memberships(&items, &self.table))
    }

    async fn memberships_of(&self, connection_id: &str) -> StoreResult<Vec<Membership>> {
        let items = self.items_of(connection_id).await?;
        Ok(live_memberships(&items, &self.table))
    }

    async fn remove_connection(&self, connection_id: &str) -> StoreResult<Vec<Membership>> {
        let items = self.items_of(connection_id).await?;
        let mut keys = Vec::with_capacity(items.len());
        let mut removed = Vec::with_capacity(items.len());
        for item in &items {
            // Expired and malformed records are deleted too: this is their clean-up.
            let key = match (item.get("pk"), item.get("sk")) {
                (Some(pk), Some(sk)) => HashMap::from([
                    ("pk".to_string(), pk.clone()),
                    ("sk".to_string(), sk.clone()),
                ]),
                _ => continue,
            };
            match from_item(item) {
                Ok(m) => {
                    if let Scope::Room(room) = &m.scope {
                        // With its count and event, in a transaction of its own (a connection
                        // is in one room; topics and peer records go in the batch).
                        self.delete_room_membership(room, &m, key).await?;
                    } else {
                        keys.push(key);
                    }
                    removed.push(m);
                }
                Err(why) => {
                    keys.push(key);
                    tracing::warn!(table = %self.table, %why, "deleting malformed connection record")
                }
            }
        }
        self.delete_items(keys).await?;
        Ok(removed)
    }

    async fn record_snapshot(&self, room: &str, record: &SnapshotRecord) -> StoreResult<()> {
        // One UpdateItem: creates the record or folds this snapshot into it, atomically.
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(Scope::Room(room.to_string()).key()))
            .key("sk", s(META_SK))
            .update_expression(
                "SET created_ms = if_not_exists(created_ms, :at), last_active_ms = :at, \
                 snapshot_version = :version, snapshot_bytes = :bytes \
                 ADD updates :merged, snapshots :one",
            )
            .expression_attribute_values(":at", number(record.at_ms))
            .expression_attribute_values(":version", s(record.version.clone()))
            .expression_attribute_values(":bytes", number(record.bytes))
            .expression_attribute_values(":merged", number(record.updates_merged))
            .expression_attribute_values(":one", number(1))
            .send()
            .await
            .map_err(|e| {
                backend_error(
                    format!("UpdateItem room {room:?} meta in table {}", self.table),
                    e,
                )
            })?;
        Ok(())
    }

    async fn room_meta(&self, room: &str) -> StoreResult<Option<RoomMeta>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(Scope::Room(room.to_string()).key()))
            .key("sk", s(META_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                backend_error(
                    format!("GetItem room {room:?} meta in table {}", self.table),
                    e,
                )
            })?;
        output
            .item
            .map(|item| {
                room_meta_from_item(&item).map_err(|why| {
                    StoreError::Corrupt(format!(
                        "room {room:?} meta in table {}: {why}",
                        self.table
                    ))
                })
            })
            .transpose()
    }

    async fn active_rooms(&self, limit: usize, after: Option<&str>) -> StoreResult<RoomPage> {
        directory::active_rooms(self, limit, after).await
    }

    async fn touch_room(&self, room: &str, at_ms: u64) -> StoreResult<()> {
        directory::touch_room(self, room, at_ms).await
    }

    async fn room_activity(&self, room: &str) -> StoreResult<Option<RoomActivity>> {
        directory::room_activity(self, room).await
    }

    async fn room_events(&self, room: &str, limit: usize) -> StoreResult<Vec<RoomEvent>> {
        directory::room_events(self, room, limit).await
    }
}

fn room_meta_from_item(item: &Item) -> Result<RoomMeta, String> {
    Ok(RoomMeta {
        created_ms: unsigned(item, "created_ms")?,
        last_active_ms: unsigned(item, "last_active_ms")?,
        updates: unsigned(item, "updates")?,
        snapshots: unsigned(item, "snapshots")?,
        snapshot_version: text(item, "snapshot_version")?.to_string(),
        snapshot_bytes: unsigned(item, "snapshot_bytes")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership() -> Membership {
        Membership {
            readonly: true,
            joined_at_ms: 1_700_000_000_123,
            ..crate::conformance::membership(&Scope::Room("r#1".into()), "Ab+c/d=", 1_700_007_800)
        }
    }

    #[test]
    fn items_round_trip() {
        let m = membership();
        let item = to_item(&m);
        assert_eq!(item.get("pk"), Some(&s("room#r#1")));
        assert_eq!(item.get("sk"), Some(&s("conn#Ab+c/d=")));
        assert_eq!(item.get("data"), Some(&s("00000001700000000123")));
        assert_eq!(
            item.get("ttl"),
            Some(&AttributeValue::N("1700007800".into()))
        );
        assert_eq!(from_item(&item), Ok(m));
    }

    #[test]
    fn malformed_items_are_reported() {
        let mut item = to_item(&membership());
        item.remove("ttl");
        assert!(from_item(&item).unwrap_err().contains("ttl"));
        let mut item = to_item(&membership());
        item.insert("sk".into(), s("meta"));
        assert!(from_item(&item).is_err());
    }
}
