//! Handler tests over the embedded adapters and a recording fanout: the harness here, the tests
//! in one file per flow.
mod auth;
mod awareness;
mod compaction;
mod dashboard;
mod delivery;
mod doc_sync;
mod limits;
mod pieces;
mod signaling;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

use super::*;
use crate::adapters::{FsSnapshotStore, MemoryConnectionStore, MemoryDocStore};
use crate::codec::{write_var_buf, write_var_uint};
use crate::ports::{DocStore, FanoutError, RoomMeta, SnapshotStore};
use crate::protocol::transport::{decode_frame, encode_frame};
use crate::protocol::ywebsocket::{self, decode_messages, Incoming};

const ENDPOINT: &str = "https://test.invalid/local";

/// Records every post; knows which connections are gone; checks ARCHITECTURE.md invariant 1 by noting how long
/// the room's log was at the moment of each post.
#[derive(Default)]
struct RecordingFanout {
    posts: Mutex<Vec<(String, String)>>,
    closed: Mutex<Vec<String>>,
    gone: Mutex<HashSet<String>>,
    /// Connection id -> how many more posts to it fail (not 410) before one succeeds.
    failing: Mutex<HashMap<String, usize>>,
    docs: Mutex<Option<(Arc<MemoryDocStore>, String)>>,
    log_len_at_post: Mutex<Vec<usize>>,
}

#[async_trait]
impl Fanout for RecordingFanout {
    async fn post(&self, _endpoint: &str, id: &str, text: &str) -> Result<(), FanoutError> {
        if self.gone.lock().unwrap().contains(id) {
            return Err(FanoutError::Gone(id.to_string()));
        }
        if let Some(left) = self.failing.lock().unwrap().get_mut(id) {
            if *left > 0 {
                *left -= 1;
                return Err(FanoutError::Failed("connection reset".into()));
            }
        }
        let watched = self.docs.lock().unwrap().clone();
        if let Some((docs, room)) = watched {
            let len = docs.read_log(&room).await.unwrap().updates.len();
            self.log_len_at_post.lock().unwrap().push(len);
        }
        self.posts
            .lock()
            .unwrap()
            .push((id.to_string(), text.to_string()));
        Ok(())
    }

    async fn close(&self, _endpoint: &str, id: &str) -> Result<(), FanoutError> {
        self.closed.lock().unwrap().push(id.to_string());
        Ok(())
    }
}

/// The embedded connection store, made to fail the next `members` reads on demand.
#[derive(Default)]
struct FlakyConnections {
    inner: MemoryConnectionStore,
    failing_member_reads: Mutex<usize>,
    /// `members` calls, failed ones included.
    member_reads: Mutex<usize>,
    index_reads: Mutex<usize>,
}

#[async_trait]
impl ConnectionStore for FlakyConnections {
    async fn join(&self, membership: Membership) -> crate::ports::StoreResult<()> {
        self.inner.join(membership).await
    }
    async fn leave(&self, scope: &Scope, id: &str) -> crate::ports::StoreResult<()> {
        self.inner.leave(scope, id).await
    }
    async fn members(&self, scope: &Scope) -> crate::ports::StoreResult<Vec<Membership>> {
        *self.member_reads.lock().unwrap() += 1;
        {
            let mut failing = self.failing_member_reads.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return Err(StoreError::Backend("throttled".into()));
            }
        }
        self.inner.members(scope).await
    }
    async fn memberships_of(&self, id: &str) -> crate::ports::StoreResult<Vec<Membership>> {
        *self.index_reads.lock().unwrap() += 1;
        self.inner.memberships_of(id).await
    }
    async fn remove_connection(&self, id: &str) -> crate::ports::StoreResult<Vec<Membership>> {
        self.inner.remove_connection(id).await
    }
    async fn record_snapshot(
        &self,
        room: &str,
        record: &crate::ports::SnapshotRecord,
    ) -> crate::ports::StoreResult<()> {
        self.inner.record_snapshot(room, record).await
    }
    async fn room_meta(&self, room: &str) -> crate::ports::StoreResult<Option<RoomMeta>> {
        self.inner.room_meta(room).await
    }
    async fn active_rooms(
        &self,
        limit: usize,
        after: Option<&str>,
    ) -> crate::ports::StoreResult<crate::ports::RoomPage> {
        self.inner.active_rooms(limit, after).await
    }
    async fn touch_room(&self, room: &str, at_ms: u64) -> crate::ports::StoreResult<()> {
        self.inner.touch_room(room, at_ms).await
    }
    async fn room_activity(
        &self,
        room: &str,
    ) -> crate::ports::StoreResult<Option<crate::ports::RoomActivity>> {
        self.inner.room_activity(room).await
    }
    async fn room_events(
        &self,
        room: &str,
        limit: usize,
    ) -> crate::ports::StoreResult<Vec<crate::ports::RoomEvent>> {
        self.inner.room_events(room, limit).await
    }
}

struct Harness {
    handler: Handler,
    fanout: Arc<RecordingFanout>,
    connections: Arc<FlakyConnections>,
    docs: Arc<MemoryDocStore>,
    snapshots: Arc<FsSnapshotStore>,
    _dir: tempfile::TempDir,
}

fn harness_with(config: Config) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let fanout = Arc::new(RecordingFanout::default());
    let connections = Arc::new(FlakyConnections::default());
    let docs = Arc::new(MemoryDocStore::new());
    let snapshots = Arc::new(FsSnapshotStore::new(dir.path()).unwrap());
    let handler = Handler::new(
        Ports {
            connections: connections.clone(),
            docs: docs.clone(),
            snapshots: snapshots.clone(),
            fanout: fanout.clone(),
        },
        config,
    );
    Harness {
        handler,
        fanout,
        connections,
        docs,
        snapshots,
        _dir: dir,
    }
}

fn harness() -> Harness {
    harness_with(Config::default())
}

fn room_query(room: &str) -> HashMap<String, String> {
    HashMap::from([("room".to_string(), room.to_string())])
}

impl Harness {
    async fn join(&self, id: &str, room: &str) {
        self.handler
            .on_connect(id, ENDPOINT, &room_query(room))
            .await
            .unwrap();
    }

    async fn send(&self, id: &str, message: &[u8]) -> HandlerResult<()> {
        self.handler
            .on_message(id, ENDPOINT, &encode_frame(message))
            .await
    }

    /// A room's memberships, as the connection store lists them.
    async fn members(&self, room: &str) -> Vec<Membership> {
        self.handler
            .ports
            .connections
            .members(&Scope::Room(room.into()))
            .await
            .unwrap()
    }

    /// The ids of a room's members, sorted.
    async fn member_ids(&self, room: &str) -> Vec<String> {
        let members = self.members(room).await;
        let mut ids: Vec<String> = members.into_iter().map(|m| m.connection_id).collect();
        ids.sort();
        ids
    }

    /// Every message posted to `id` since the last call, decoded.
    fn take(&self, id: &str) -> Vec<Incoming> {
        let mut posts = self.fanout.posts.lock().unwrap();
        let (mine, rest): (Vec<_>, Vec<_>) = posts.drain(..).partition(|(to, _)| to == id);
        *posts = rest;
        mine.into_iter()
            .flat_map(|(_, text)| decode_messages(&decode_frame(&text).unwrap()).unwrap())
            .collect()
    }

    fn take_text(&self, id: &str) -> Vec<String> {
        let mut posts = self.fanout.posts.lock().unwrap();
        let (mine, rest): (Vec<_>, Vec<_>) = posts.drain(..).partition(|(to, _)| to == id);
        *posts = rest;
        mine.into_iter().map(|(_, t)| t).collect()
    }
}

/// A client document that produces updates.
struct Client {
    doc: Doc,
}

impl Client {
    fn new(id: u64) -> Self {
        Client {
            doc: Doc::with_client_id(id),
        }
    }

    fn insert(&self, at: u32, s: &str) -> Vec<u8> {
        let text = self.doc.get_or_insert_text("t");
        let mut txn = self.doc.transact_mut();
        text.insert(&mut txn, at, s);
        txn.encode_update_v1()
    }

    fn text(&self) -> String {
        let text = self.doc.get_or_insert_text("t");
        let s = text.get_string(&self.doc.transact());
        s
    }

    fn apply(&self, update: &[u8]) {
        self.doc
            .transact_mut()
            .apply_update(Update::decode_v1(update).unwrap())
            .unwrap();
    }

    fn sync_step1(&self) -> Vec<u8> {
        ywebsocket::encode_sync_step1(&self.doc.transact().state_vector().encode_v1())
    }

    /// Applies every sync step 2 / update among `messages`.
    fn receive(&self, messages: &[Incoming]) {
        for m in messages {
            if let Incoming::SyncStep2(u) | Incoming::Update(u) = m {
                self.apply(u);
            }
        }
    }
}

fn awareness_message(client: u64, clock: u32, state: &str) -> Vec<u8> {
    let mut update = Vec::new();
    update.push(1); // one client
    write_var_uint(&mut update, client);
    write_var_uint(&mut update, u64::from(clock));
    write_var_buf(&mut update, state.as_bytes());
    ywebsocket::encode_awareness(&update)
}
