//! Handler tests over the embedded adapters and a recording fanout.
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

/// Records every post; knows which connections are gone; checks invariant 1 by noting how long
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

    /// The ids of a room's members, sorted.
    async fn member_ids(&self, room: &str) -> Vec<String> {
        let members = self
            .handler
            .ports
            .connections
            .members(&Scope::Room(room.into()))
            .await
            .unwrap();
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

#[tokio::test]
async fn connect_validates_the_room_and_accepts_doc_alias() {
    let h = harness();
    let q = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
    assert!(h
        .handler
        .on_connect("a", ENDPOINT, &q("room", ""))
        .await
        .is_err());
    let long = "x".repeat(MAX_ROOM_NAME_BYTES + 1);
    assert!(h
        .handler
        .on_connect("a", ENDPOINT, &q("room", &long))
        .await
        .is_err());
    assert!(h
        .handler
        .on_connect("a", ENDPOINT, &q("room", "a\u{7}b"))
        .await
        .is_err());
    h.handler
        .on_connect("a", ENDPOINT, &q("doc", "notes"))
        .await
        .unwrap();
    let members = h
        .handler
        .ports
        .connections
        .members(&Scope::Room("notes".into()))
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert!(!members[0].readonly);
    // No room: a signaling connection, nothing stored until it subscribes.
    h.handler
        .on_connect("s", ENDPOINT, &HashMap::new())
        .await
        .unwrap();
    assert!(h
        .handler
        .ports
        .connections
        .memberships_of("s")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn sync_step1_on_an_empty_room_answers_step2_then_step1() {
    let h = harness();
    h.join("a", "r").await;
    h.send("a", &Client::new(1).sync_step1()).await.unwrap();
    let replies = h.take("a");
    assert!(matches!(replies[0], Incoming::SyncStep2(_)), "{replies:?}");
    assert!(matches!(replies[1], Incoming::SyncStep1(_)), "{replies:?}");
    assert_eq!(replies.len(), 2);
}

#[tokio::test]
async fn updates_are_logged_before_fan_out_and_reach_others_only() {
    let h = harness();
    *h.fanout.docs.lock().unwrap() = Some((h.docs.clone(), "r".into()));
    h.join("a", "r").await;
    h.join("b", "r").await;
    let alice = Client::new(1);
    let update = alice.insert(0, "hello");
    h.send("a", &ywebsocket::encode_update(&update))
        .await
        .unwrap();
    // Invariant 1: when b was posted the update, it was already in the log.
    assert_eq!(*h.fanout.log_len_at_post.lock().unwrap(), vec![1]);
    assert!(
        h.take("a").is_empty(),
        "the sender must not get its own update back"
    );
    let to_b = h.take("b");
    assert_eq!(to_b, vec![Incoming::Update(update)]);
}

#[tokio::test]
async fn a_later_joiner_reads_everything_and_the_server_asks_for_its_state() {
    let h = harness();
    h.join("a", "r").await;
    let alice = Client::new(1);
    h.send("a", &ywebsocket::encode_update(&alice.insert(0, "abc")))
        .await
        .unwrap();
    h.send("a", &ywebsocket::encode_update(&alice.insert(3, "def")))
        .await
        .unwrap();
    h.join("b", "r").await;
    let bob = Client::new(2);
    h.send("b", &bob.sync_step1()).await.unwrap();
    let replies = h.take("b");
    bob.receive(&replies);
    assert_eq!(bob.text(), "abcdef");
    // The server's own sync step 1 lets the client send what the server lacks.
    let Some(Incoming::SyncStep1(server_sv)) =
        replies.iter().find(|m| matches!(m, Incoming::SyncStep1(_)))
    else {
        panic!("no server sync step 1 in {replies:?}");
    };
    let offline = Client::new(3);
    offline.insert(0, "zzz");
    let missing = offline.doc.transact().encode_state_as_update_v1(server_sv);
    h.join("c", "r").await;
    h.send("c", &ywebsocket::encode_sync_step2(&missing))
        .await
        .unwrap();
    let state = h.handler.read_state("r").await.unwrap();
    let check = Client::new(9);
    check.apply(&state);
    assert!(check.text().contains("zzz") && check.text().contains("abcdef"));
}

#[tokio::test]
async fn empty_sync_step2_is_not_logged() {
    let h = harness();
    h.join("a", "r").await;
    h.send("a", &ywebsocket::encode_sync_step2(&[0, 0]))
        .await
        .unwrap();
    assert!(h.docs.read_log("r").await.unwrap().updates.is_empty());
}

#[tokio::test]
async fn readonly_connections_get_state_but_their_updates_are_dropped() {
    let h = harness();
    h.join("a", "r").await;
    let mut q = room_query("r");
    q.insert("readonly".into(), "1".into());
    h.handler.on_connect("viewer", ENDPOINT, &q).await.unwrap();
    let alice = Client::new(1);
    h.send("a", &ywebsocket::encode_update(&alice.insert(0, "doc")))
        .await
        .unwrap();
    let viewer = Client::new(2);
    viewer.receive(&h.take("viewer"));
    assert_eq!(
        viewer.text(),
        "doc",
        "read-only connections still receive updates"
    );
    h.send("viewer", &ywebsocket::encode_update(&viewer.insert(0, "X")))
        .await
        .unwrap();
    assert!(h.take("a").is_empty(), "a read-only update reached a peer");
    assert_eq!(h.docs.read_log("r").await.unwrap().updates.len(), 1);
}

#[tokio::test]
async fn awareness_is_echoed_stored_and_removed_on_disconnect() {
    let h = harness();
    h.join("a", "r").await;
    h.join("b", "r").await;
    // Real clients open with sync step 1.
    for id in ["a", "b"] {
        h.send(id, &Client::new(50).sync_step1()).await.unwrap();
        h.take(id);
    }
    let msg = awareness_message(77, 3, r#"{"user":{"name":"ann"}}"#);
    h.send("a", &msg).await.unwrap();
    // Sent to the whole room, the sender included.
    for id in ["a", "b"] {
        let got = h.take(id);
        assert_eq!(got.len(), 1, "{id}: {got:?}");
        let Incoming::Awareness { update, .. } = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(update.clients.values().next().unwrap().clock, 3);
    }
    // A joiner gets stored awareness after sync.
    h.join("c", "r").await;
    h.send("c", &Client::new(5).sync_step1()).await.unwrap();
    let to_c = h.take("c");
    assert!(
        matches!(to_c.last(), Some(Incoming::Awareness { .. })),
        "{to_c:?}"
    );
    // Query-awareness is answered with the stored states.
    h.send("c", &[3]).await.unwrap();
    assert_eq!(h.take("c").len(), 1);

    h.handler.on_disconnect("a").await.unwrap();
    for id in ["b", "c"] {
        let got = h.take(id);
        let Some(Incoming::Awareness { update, .. }) = got.first() else {
            panic!("{id}: {got:?}")
        };
        let (client, entry) = update.clients.iter().next().unwrap();
        assert_eq!(client.get(), 77);
        assert_eq!(entry.clock, 3, "removal keeps the last clock");
        assert_eq!(&*entry.json, "null");
    }
    assert!(h.take("a").is_empty());
    assert_eq!(h.docs.awareness("r").await.unwrap().len(), 0);
}

#[tokio::test]
async fn forwarded_awareness_is_neither_adopted_nor_relayed_again() {
    let h = harness();
    for id in ["alice", "bob", "carol"] {
        h.join(id, "r").await;
        h.send(id, &Client::new(50).sync_step1()).await.unwrap();
        h.take(id);
    }
    let alice_state = awareness_message(1, 4, r#"{"user":"alice"}"#);
    h.send("alice", &alice_state).await.unwrap();
    h.send("bob", &awareness_message(2, 1, r#"{"user":"bob"}"#))
        .await
        .unwrap();
    for id in ["alice", "bob", "carol"] {
        assert_eq!(h.take(id).len(), 2, "{id} gets both states once");
    }
    // Bob's y-websocket client re-sends Alice's state it just received: nothing happens.
    h.send("bob", &alice_state).await.unwrap();
    for id in ["alice", "bob", "carol"] {
        assert!(h.take(id).is_empty(), "{id} got a forwarded echo");
    }
    // Alice's own newer state still goes through.
    h.send("alice", &awareness_message(1, 5, r#"{"user":"alice2"}"#))
        .await
        .unwrap();
    assert_eq!(h.take("carol").len(), 1);
    // When Bob leaves, only Bob's client is removed.
    h.handler.on_disconnect("bob").await.unwrap();
    let got = h.take("carol");
    let Some(Incoming::Awareness { update, .. }) = got.first() else {
        panic!("{got:?}")
    };
    let removed: Vec<u64> = update.clients.keys().map(|c| c.get()).collect();
    assert_eq!(removed, vec![2]);
    // A late joiner gets exactly Alice's latest state, once.
    h.join("dave", "r").await;
    h.send("dave", &Client::new(60).sync_step1()).await.unwrap();
    let states: Vec<_> = h
        .take("dave")
        .into_iter()
        .filter_map(|m| match m {
            Incoming::Awareness { update, .. } => Some(ywebsocket::awareness_states(&update)),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(states.len(), 1, "{states:?}");
    assert_eq!(states[0].clock, 5);
}

#[tokio::test]
async fn bad_frames_close_the_connection_and_apply_nothing() {
    let h = harness();
    h.join("a", "r").await;
    h.join("bad", "r").await;
    let alice = Client::new(1);
    h.send("a", &ywebsocket::encode_update(&alice.insert(0, "safe")))
        .await
        .unwrap();
    h.take("bad");
    let good = Client::new(2).insert(0, "partial");
    let mut mixed = ywebsocket::encode_update(&good);
    mixed.extend(ywebsocket::encode_update(b"\x01\x02\x03 not an update"));
    let bad_inputs: Vec<String> = vec![
        "!!! not base64".into(),
        encode_frame(&[0x80, 0x80]),
        encode_frame(&ywebsocket::encode_update(&[0xff, 0xff, 0xff, 0x01])),
        encode_frame(&mixed),
        encode_frame(&[]),
    ];
    for (i, body) in bad_inputs.iter().enumerate() {
        let result = h.handler.on_message("bad", ENDPOINT, body).await;
        assert!(
            matches!(result, Err(HandlerError::BadRequest(_))),
            "input {i}: {result:?}"
        );
    }
    assert_eq!(h.fanout.closed.lock().unwrap().len(), bad_inputs.len());
    assert!(h.take("a").is_empty(), "part of a bad frame reached a peer");
    let state = h.handler.read_state("r").await.unwrap();
    let check = Client::new(9);
    check.apply(&state);
    assert_eq!(check.text(), "safe");
}

#[tokio::test(start_paused = true)]
async fn a_message_from_a_connection_without_a_room_is_refused() {
    let h = harness();
    h.handler
        .on_connect("s", ENDPOINT, &HashMap::new())
        .await
        .unwrap();
    let r = h.send("s", &Client::new(1).sync_step1()).await;
    assert!(matches!(r, Err(HandlerError::BadRequest(_))));
}

#[tokio::test]
async fn last_leave_compacts_into_the_snapshot() {
    let h = harness();
    h.join("a", "r").await;
    let alice = Client::new(1);
    for s in ["one ", "two ", "three"] {
        let at = alice.text().len() as u32;
        h.send("a", &ywebsocket::encode_update(&alice.insert(at, s)))
            .await
            .unwrap();
    }
    h.handler.on_disconnect("a").await.unwrap();
    assert!(
        h.docs.read_log("r").await.unwrap().updates.is_empty(),
        "log trimmed"
    );
    let snap = h
        .snapshots
        .get("r")
        .await
        .unwrap()
        .expect("snapshot written");
    let check = Client::new(9);
    check.apply(&snap.snapshot.update);
    assert_eq!(check.text(), "one two three");
    let meta = h
        .connections
        .room_meta("r")
        .await
        .unwrap()
        .expect("room record written");
    assert_eq!(meta.updates, 3);
    assert_eq!(meta.snapshots, 1);
    assert_eq!(meta.snapshot_version, snap.version);
    assert_eq!(meta.snapshot_bytes, snap.snapshot.update.len() as u64);
    assert!(meta.created_ms > 0 && meta.created_ms == meta.last_active_ms);
    // A new session reads it back.
    h.join("b", "r").await;
    let bob = Client::new(2);
    h.send("b", &bob.sync_step1()).await.unwrap();
    bob.receive(&h.take("b"));
    assert_eq!(bob.text(), "one two three");
}

#[tokio::test]
async fn the_log_is_compacted_past_its_threshold() {
    let h = harness_with(Config {
        compact_log_entries: 3,
        ..Config::default()
    });
    h.join("a", "r").await;
    let alice = Client::new(1);
    for i in 0..10u32 {
        h.send("a", &ywebsocket::encode_update(&alice.insert(i, "x")))
            .await
            .unwrap();
    }
    assert!(h.docs.read_log("r").await.unwrap().updates.len() <= 3);
    let state = h.handler.read_state("r").await.unwrap();
    let check = Client::new(9);
    check.apply(&state);
    assert_eq!(check.text(), "xxxxxxxxxx");
}

#[tokio::test]
async fn compaction_with_a_stale_snapshot_version_writes_and_trims_nothing() {
    let h = harness();
    h.join("a", "r").await;
    let alice = Client::new(1);
    h.send("a", &ywebsocket::encode_update(&alice.insert(0, "first")))
        .await
        .unwrap();
    assert!(matches!(
        h.handler.compact("r").await.unwrap(),
        Compaction::Written { .. }
    ));
    h.send("a", &ywebsocket::encode_update(&alice.insert(5, " second")))
        .await
        .unwrap();
    // Another compactor holds the lock: this one backs off.
    let token = h.docs.try_lock("r", 60_000).await.unwrap().unwrap();
    assert_eq!(h.handler.compact("r").await.unwrap(), Compaction::Busy);
    h.docs.unlock("r", &token).await.unwrap();
    assert_eq!(
        h.docs.read_log("r").await.unwrap().updates.len(),
        1,
        "nothing trimmed while busy"
    );
    assert!(matches!(
        h.handler.compact("r").await.unwrap(),
        Compaction::Written { entries: 1, .. }
    ));
    assert_eq!(
        h.handler.compact("r").await.unwrap(),
        Compaction::NothingToDo
    );
}

#[tokio::test]
async fn an_appended_update_is_relayed_despite_transient_member_read_failures() {
    let h = harness();
    h.join("a", "r").await;
    h.join("b", "r").await;
    *h.connections.failing_member_reads.lock().unwrap() = 2;
    let update = Client::new(1).insert(0, "kept");
    h.send("a", &ywebsocket::encode_update(&update))
        .await
        .unwrap();
    assert_eq!(h.take("b"), vec![Incoming::Update(update)]);
    assert_eq!(*h.connections.failing_member_reads.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_member_read_that_keeps_failing_is_reported_with_the_update_still_logged() {
    let h = harness();
    h.join("a", "r").await;
    h.join("b", "r").await;
    *h.connections.failing_member_reads.lock().unwrap() = 100;
    let update = Client::new(1).insert(0, "durable");
    let result = h.send("a", &ywebsocket::encode_update(&update)).await;
    assert!(matches!(result, Err(HandlerError::Store(_))), "{result:?}");
    assert!(h.take("b").is_empty());
    // Nothing is lost: the update is in the log, and b gets it when it syncs.
    assert_eq!(h.docs.read_log("r").await.unwrap().updates.len(), 1);
    *h.connections.failing_member_reads.lock().unwrap() = 0;
    let bob = Client::new(2);
    h.send("b", &bob.sync_step1()).await.unwrap();
    bob.receive(&h.take("b"));
    assert_eq!(bob.text(), "durable");
}

#[tokio::test]
async fn failed_update_posts_are_retried_and_other_broadcasts_are_not() {
    let h = harness();
    h.join("a", "r").await;
    h.join("b", "r").await;
    h.fanout.failing.lock().unwrap().insert("b".into(), 2);
    let update = Client::new(1).insert(0, "again");
    h.send("a", &ywebsocket::encode_update(&update))
        .await
        .unwrap();
    assert_eq!(h.take("b"), vec![Incoming::Update(update)]);
    // Awareness is superseded by the next message: one failed post is not repeated.
    h.fanout.failing.lock().unwrap().insert("b".into(), 1);
    h.send("a", &awareness_message(1, 1, "{}")).await.unwrap();
    assert!(h.take("b").is_empty());
    assert_eq!(h.take("a").len(), 1, "the sender still hears its awareness");
}

#[tokio::test]
async fn a_connections_room_is_looked_up_once_then_remembered_until_it_leaves() {
    let h = harness();
    h.join("a", "r").await;
    h.join("b", "r").await;
    let alice = Client::new(1);
    h.send("a", &alice.sync_step1()).await.unwrap();
    h.take("b"); // the server's sync step 1 (the room had no live data yet)
    h.send("a", &ywebsocket::encode_update(&alice.insert(0, "x")))
        .await
        .unwrap();
    h.send("a", &ywebsocket::encode_update(&alice.insert(1, "y")))
        .await
        .unwrap();
    assert_eq!(*h.connections.index_reads.lock().unwrap(), 1);
    assert_eq!(h.take("b").len(), 2, "b got both updates");
    // After $disconnect the connection is forgotten: a late frame is looked up and refused.
    h.handler.on_disconnect("a").await.unwrap();
    let reads_after_disconnect = *h.connections.index_reads.lock().unwrap();
    let late = h
        .send("a", &ywebsocket::encode_update(&alice.insert(2, "z")))
        .await;
    assert!(matches!(late, Err(HandlerError::BadRequest(_))), "{late:?}");
    assert!(*h.connections.index_reads.lock().unwrap() > reads_after_disconnect);
}

#[tokio::test]
async fn gone_connections_are_cleaned_up_during_broadcast() {
    let h = harness();
    h.join("a", "r").await;
    h.join("ghost", "r").await;
    h.fanout.gone.lock().unwrap().insert("ghost".into());
    h.send(
        "a",
        &ywebsocket::encode_update(&Client::new(1).insert(0, "x")),
    )
    .await
    .unwrap();
    assert_eq!(h.member_ids("r").await, vec!["a"]);
}

#[tokio::test]
async fn a_gone_connections_awareness_is_removed_for_the_room_and_more_gone_ones_are_found() {
    let h = harness();
    for id in ["a", "b", "ghost1", "ghost2"] {
        h.join(id, "r").await;
    }
    h.send("ghost1", &awareness_message(71, 1, r#"{"u":1}"#))
        .await
        .unwrap();
    h.send("ghost2", &awareness_message(72, 1, r#"{"u":2}"#))
        .await
        .unwrap();
    for id in ["a", "b", "ghost1", "ghost2"] {
        h.take(id);
    }
    h.fanout
        .gone
        .lock()
        .unwrap()
        .extend(["ghost1".to_string(), "ghost2".to_string()]);
    // An update from a finds both ghosts gone; announcing ghost1's departure meets ghost2 (or
    // the other way round): each is removed once and both removals reach b.
    h.send(
        "a",
        &ywebsocket::encode_update(&Client::new(1).insert(0, "x")),
    )
    .await
    .unwrap();
    let removed_at_b: Vec<u64> = h
        .take("b")
        .into_iter()
        .filter_map(|m| match m {
            Incoming::Awareness { update, .. } => Some(ywebsocket::awareness_states(&update)),
            _ => None,
        })
        .flatten()
        .filter(|state| state.is_removal())
        .map(|state| state.client)
        .collect();
    let mut removed_at_b = removed_at_b;
    removed_at_b.sort();
    assert_eq!(removed_at_b, vec![71, 72]);
    assert!(h.docs.awareness("r").await.unwrap().is_empty());
    assert_eq!(h.member_ids("r").await, vec!["a", "b"]);
}

#[tokio::test]
async fn a_room_whose_last_connection_is_found_gone_is_compacted() {
    let h = harness();
    h.join("a", "r").await;
    h.join("ghost", "r").await;
    let alice = Client::new(1);
    h.send("a", &ywebsocket::encode_update(&alice.insert(0, "kept")))
        .await
        .unwrap();
    // a leaves; its $disconnect posts nothing to the ghost (no awareness), so the ghost is found
    // gone by the server's sync step 1 reply it is sent next.
    h.handler.on_disconnect("a").await.unwrap();
    h.fanout.gone.lock().unwrap().insert("ghost".into());
    h.send("ghost", &Client::new(2).sync_step1()).await.unwrap();
    let snapshot = h.snapshots.get("r").await.unwrap().expect("compacted");
    let check = Client::new(9);
    check.apply(&snapshot.snapshot.update);
    assert_eq!(check.text(), "kept");
    assert!(h.docs.read_log("r").await.unwrap().updates.is_empty());
}

#[tokio::test]
async fn large_state_is_sent_in_pieces_that_fit_the_limit() {
    let limit = 4096;
    let h = harness_with(Config {
        max_message_bytes: limit,
        ..Config::default()
    });
    h.join("a", "r").await;
    let alice = Client::new(1);
    for i in 0..150u32 {
        let chunk = format!("{i:03}:{}", "lorem ipsum ".repeat(8));
        let update = alice.insert(0, &chunk);
        h.send("a", &ywebsocket::encode_update(&update))
            .await
            .unwrap();
    }
    assert!(alice.text().len() > 3 * limit);
    h.join("b", "r").await;
    let bob = Client::new(2);
    h.send("b", &bob.sync_step1()).await.unwrap();
    let texts = h.take_text("b");
    assert!(texts.len() > 2, "state should need several messages");
    for t in &texts {
        assert!(
            t.len() <= limit,
            "a frame of {} bytes exceeds {limit}",
            t.len()
        );
        bob.receive(&decode_messages(&decode_frame(t).unwrap()).unwrap());
    }
    assert_eq!(bob.text(), alice.text());
}

#[tokio::test]
async fn lost_live_data_makes_the_server_ask_every_connection_to_resend() {
    let h = harness();
    h.join("a", "r").await;
    h.join("b", "r").await;
    let alice = Client::new(1);
    h.send("a", &alice.sync_step1()).await.unwrap();
    h.send(
        "a",
        &ywebsocket::encode_update(&alice.insert(0, "precious")),
    )
    .await
    .unwrap();
    h.take("a");
    h.take("b");
    h.docs.flush().unwrap(); // Redis failover / FLUSHALL
    h.join("c", "r").await;
    h.send("c", &Client::new(3).sync_step1()).await.unwrap();
    let to_a = h.take("a");
    let Some(Incoming::SyncStep1(sv)) = to_a.first() else {
        panic!("a was not asked: {to_a:?}")
    };
    // a answers with what the server lacks, and the document is whole again.
    let missing = alice.doc.transact().encode_state_as_update_v1(sv);
    h.send("a", &ywebsocket::encode_sync_step2(&missing))
        .await
        .unwrap();
    let state = h.handler.read_state("r").await.unwrap();
    let check = Client::new(9);
    check.apply(&state);
    assert_eq!(check.text(), "precious");
    assert!(matches!(h.take("b").first(), Some(Incoming::SyncStep1(_))));
    assert_eq!(StateVector::decode_v1(&sv.encode_v1()).unwrap(), sv.clone());
}

#[tokio::test]
async fn signaling_subscribe_publish_ping_unsubscribe_and_disconnect() {
    let h = harness();
    for id in ["p", "q"] {
        h.handler
            .on_connect(id, ENDPOINT, &HashMap::new())
            .await
            .unwrap();
        h.handler
            .on_message(id, ENDPOINT, r#"{"type":"subscribe","topics":["t1","t2"]}"#)
            .await
            .unwrap();
    }
    h.handler
        .on_message(
            "p",
            ENDPOINT,
            r#"{"type":"publish","topic":"t1","data":{"from":"p"}}"#,
        )
        .await
        .unwrap();
    for id in ["p", "q"] {
        let got = h.take_text(id);
        assert_eq!(got.len(), 1, "{id} (sender included)");
        let v: serde_json::Value = serde_json::from_str(&got[0]).unwrap();
        assert_eq!(v["clients"], 2);
        assert_eq!(v["data"]["from"], "p");
    }
    h.handler
        .on_message("p", ENDPOINT, r#"{"type":"ping"}"#)
        .await
        .unwrap();
    assert_eq!(h.take_text("p"), vec![r#"{"type":"pong"}"#.to_string()]);
    // Publish to a topic nobody is in: harmless.
    h.handler
        .on_message(
            "p",
            ENDPOINT,
            r#"{"type":"publish","topic":"nobody","data":{}}"#,
        )
        .await
        .unwrap();
    h.handler
        .on_message("q", ENDPOINT, r#"{"type":"unsubscribe","topics":["t1"]}"#)
        .await
        .unwrap();
    h.handler
        .on_message(
            "p",
            ENDPOINT,
            r#"{"type":"publish","topic":"t1","data":{}}"#,
        )
        .await
        .unwrap();
    assert!(h.take_text("q").is_empty());
    assert_eq!(h.take_text("p").len(), 1);
    h.handler.on_disconnect("q").await.unwrap();
    let t2 = h
        .handler
        .ports
        .connections
        .members(&Scope::Topic("t2".into()))
        .await
        .unwrap();
    assert_eq!(
        t2.len(),
        1,
        "disconnect removes every topic of the connection"
    );
    // Bad JSON closes the connection; unknown types are ignored.
    assert!(h.handler.on_message("p", ENDPOINT, "{oops").await.is_err());
    assert_eq!(h.fanout.closed.lock().unwrap().as_slice(), ["p"]);
    h.handler
        .on_message("p", ENDPOINT, r#"{"type":"future"}"#)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_hundred_subscribers_all_get_a_publish() {
    let h = harness();
    for i in 0..100 {
        h.handler
            .on_message(
                &format!("c{i}"),
                ENDPOINT,
                r#"{"type":"subscribe","topics":["big"]}"#,
            )
            .await
            .unwrap();
    }
    h.handler
        .on_message(
            "c0",
            ENDPOINT,
            r#"{"type":"publish","topic":"big","data":{}}"#,
        )
        .await
        .unwrap();
    let posts = h.fanout.posts.lock().unwrap();
    assert_eq!(posts.len(), 100);
    assert!(posts.iter().all(|(_, t)| t.contains(r#""clients":100"#)));
}
