//! `ylambda serve` (direct mode) in-process against real WebSocket clients: binary y-websocket in
//! the room the path names, relay across two instances on one backend with no message twice and
//! no echo, signaling across instances, idle rooms unloaded, health, drain, access control.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use ylambda::serve::{DirectServer, ServeError, ServeHandle};
use ylambda::ShutdownReport;
use ylambda_shared::adapters::{
    FsSnapshotStore, MemoryConnectionStore, MemoryDocStore, RedisDocStore,
};
use ylambda_shared::backends::{DirectBackend, Stores};
use ylambda_shared::config::Config;
use ylambda_shared::ports::{ChannelEvent, DocStore, RelayListener};
use ylambda_shared::protocol::relay::{encode_relay, RelayKind};
use ylambda_shared::protocol::ywebsocket::{self, Incoming};
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, Text, Transact, Update};

struct Instance {
    addr: std::net::SocketAddr,
    handle: ServeHandle,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<ShutdownReport, ServeError>>,
}

impl Instance {
    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    async fn shutdown(mut self) -> ShutdownReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.expect("join").expect("serve")
    }
}

/// One backend (embedded stores) shared by the instances started on it, as Redis and DynamoDB
/// are shared by instances in production.
struct Backend {
    stores: Stores,
    docs: Docs,
    _dir: tempfile::TempDir,
    config: Config,
}

/// The doc store the instances share, which makes their relay listeners.
#[derive(Clone)]
enum Docs {
    Memory(Arc<MemoryDocStore>),
    Redis(Arc<RedisDocStore>),
}

impl Docs {
    fn store(&self) -> Arc<dyn DocStore> {
        match self {
            Docs::Memory(docs) => docs.clone(),
            Docs::Redis(docs) => docs.clone(),
        }
    }

    fn listener(
        &self,
    ) -> (
        Arc<dyn RelayListener>,
        tokio::sync::mpsc::Receiver<ChannelEvent>,
    ) {
        match self {
            Docs::Memory(docs) => {
                let (listener, events) = docs.relay_listener();
                (Arc::new(listener), events)
            }
            Docs::Redis(docs) => {
                let (listener, events) = docs.relay_listener();
                (Arc::new(listener), events)
            }
        }
    }
}

impl Backend {
    fn new(adjust: impl FnOnce(&mut Config)) -> Backend {
        Self::on(Docs::Memory(Arc::new(MemoryDocStore::new())), adjust)
    }

    fn on(docs: Docs, adjust: impl FnOnce(&mut Config)) -> Backend {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        adjust(&mut config);
        Backend {
            stores: Stores {
                connections: Arc::new(MemoryConnectionStore::new()),
                docs: docs.store(),
                snapshots: Arc::new(FsSnapshotStore::new(dir.path()).expect("snapshots")),
            },
            docs,
            _dir: dir,
            config,
        }
    }

    async fn instance(&self) -> Instance {
        let (listener, events) = self.docs.listener();
        let backend = DirectBackend {
            stores: self.stores.clone(),
            listener,
            events,
        };
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let server = DirectServer::new(self.config.clone(), tcp, backend)
            .await
            .expect("server");
        let addr = server.local_addr().expect("addr");
        let handle = server.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        Instance {
            addr,
            handle,
            stop: Some(stop),
            task,
        }
    }
}

/// A stock binary client: connects to `/{room}` and sends its (empty) sync step 1.
async fn client(instance: &Instance, room: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(instance.url(&format!("/{room}")))
        .await
        .expect("connect");
    ws.send(Message::binary(ywebsocket::encode_sync_step1(&[0])))
        .await
        .expect("send");
    // Sync step 2, then the server's sync step 1.
    let mut got_step1 = false;
    while !got_step1 {
        if let Message::Binary(bytes) = next_data(&mut ws).await {
            got_step1 = ywebsocket::decode_messages(&bytes)
                .expect("decodes")
                .iter()
                .any(|m| matches!(m, Incoming::SyncStep1(_)));
        }
    }
    ws
}

/// Every update a client receives within `window`.
async fn updates_within(ws: &mut Ws, window: Duration) -> Vec<Vec<u8>> {
    let mut updates = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Binary(bytes) = message {
            for m in ywebsocket::decode_messages(&bytes).expect("decodes") {
                if let Incoming::Update(u) | Incoming::SyncStep2(u) = m {
                    updates.push(u);
                }
            }
        }
    }
    updates
}

fn text_update(text: &str) -> Vec<u8> {
    let doc = Doc::new();
    let t = doc.get_or_insert_text("text");
    let mut txn = doc.transact_mut();
    t.insert(&mut txn, 0, text);
    txn.encode_update_v1()
}

fn text_of(updates: &[Vec<u8>]) -> String {
    let doc = Doc::new();
    let t = doc.get_or_insert_text("text");
    let mut txn = doc.transact_mut();
    for u in updates {
        txn.apply_update(Update::decode_v1(u).expect("update"))
            .expect("apply");
    }
    t.get_string(&txn)
}

#[tokio::test]
async fn updates_cross_instances_once_and_never_echo() {
    let backend = Backend::new(|_| {});
    let (one, two) = (backend.instance().await, backend.instance().await);
    let room = room("relay");
    let mut a = client(&one, &room).await;
    let mut b = client(&two, &room).await;
    let mut c = client(&two, &room).await;
    let update = text_update("hello");
    a.send(Message::binary(ywebsocket::encode_update(&update)))
        .await
        .unwrap();
    let window = Duration::from_millis(500);
    let (at_a, at_b, at_c) = tokio::join!(
        updates_within(&mut a, window),
        updates_within(&mut b, window),
        updates_within(&mut c, window)
    );
    assert_eq!(at_b, vec![update.clone()], "the other instance's client");
    assert_eq!(
        at_c,
        vec![update.clone()],
        "a second client on that instance"
    );
    assert!(at_a.is_empty(), "the sender got its own update back");
    // A late joiner on either instance gets it from the log.
    let mut late = tokio_tungstenite::connect_async(one.url(&format!("/{room}")))
        .await
        .unwrap()
        .0;
    late.send(Message::binary(ywebsocket::encode_sync_step1(&[0])))
        .await
        .unwrap();
    let got = updates_within(&mut late, window).await;
    assert_eq!(text_of(&got), "hello");
}

#[tokio::test]
async fn idle_rooms_are_unloaded_when_their_last_client_leaves() {
    let backend = Backend::new(|_| {});
    let server = backend.instance().await;
    let mut clients = Vec::new();
    for i in 0..20 {
        clients.push(client(&server, &room(&format!("unload-{i}"))).await);
    }
    assert_eq!(server.handle.channels_and_tracked_connections(), (20, 20));
    assert_eq!(server.handle.connections(), 20);
    for mut ws in clients {
        ws.close(None).await.unwrap();
        let _ = wait_close(&mut ws).await;
    }
    let handle = server.handle.clone();
    wait_for("every room unloaded", || {
        let handle = handle.clone();
        async move {
            (handle.connections() == 0 && handle.channels_and_tracked_connections() == (0, 0))
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn signaling_reaches_subscribers_on_every_instance() {
    let backend = Backend::new(|_| {});
    let (one, two) = (backend.instance().await, backend.instance().await);
    let topic = room("topic");
    let mut peers = Vec::new();
    for instance in [&one, &two] {
        let (mut ws, _) = tokio_tungstenite::connect_async(instance.url("/"))
            .await
            .unwrap();
        send_text(
            &mut ws,
            &format!(r#"{{"type":"subscribe","topics":["{topic}"]}}"#),
        )
        .await;
        // A ping answered means the subscribe before it was handled.
        send_text(&mut ws, r#"{"type":"ping"}"#).await;
        assert_eq!(
            next_data(&mut ws).await,
            Message::text(r#"{"type":"pong"}"#)
        );
        peers.push(ws);
    }
    send_text(
        &mut peers[0],
        &format!(r#"{{"type":"publish","topic":"{topic}","from":"p1"}}"#),
    )
    .await;
    for ws in &mut peers {
        let Message::Text(text) = next_data(ws).await else {
            panic!("signaling is text")
        };
        let json: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(json["type"], "publish");
        assert_eq!(json["from"], "p1");
        assert_eq!(json["clients"], 2, "both subscribers counted");
    }
}

#[tokio::test]
async fn health_readiness_and_a_drain_that_closes_with_1001_and_keeps_the_document() {
    let backend = Backend::new(|_| {});
    let server = backend.instance().await;
    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        let response = http
            .get(format!("http://{}{path}", server.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let room = room("drain");
    let mut ws = client(&server, &room).await;
    ws.send(Message::binary(ywebsocket::encode_update(&text_update(
        "kept",
    ))))
    .await
    .unwrap();
    // Handled in order: a sync step 1 answered means the update before it was applied.
    ws.send(Message::binary(ywebsocket::encode_sync_step1(&[0])))
        .await
        .unwrap();
    let got = updates_within(&mut ws, Duration::from_millis(300)).await;
    assert_eq!(text_of(&got), "kept");

    let closing = tokio::spawn(async move { wait_close(&mut ws).await });
    let report = server.shutdown().await;
    let frame = closing.await.unwrap().expect("a close frame");
    assert_eq!(u16::from(frame.code), 1001);
    assert_eq!(report.connections_closed, 1);
    assert_eq!(report.rooms_compacted, 1);
    // The snapshot survives the instance: a new one on the same data has the text.
    let again = backend.instance().await;
    let mut late = tokio_tungstenite::connect_async(again.url(&format!("/{room}")))
        .await
        .unwrap()
        .0;
    late.send(Message::binary(ywebsocket::encode_sync_step1(&[0])))
        .await
        .unwrap();
    assert_eq!(
        text_of(&updates_within(&mut late, Duration::from_millis(300)).await),
        "kept"
    );
}

#[tokio::test]
async fn a_token_is_required_when_access_control_is_on() {
    use ylambda_shared::auth::{mint_hs256, Claims};
    let secret = "serve-test-secret-of-enough-length-0123456789";
    let backend =
        Backend::new(|c| c.auth_secret = Some(ylambda_shared::config::Secret(secret.into())));
    let server = backend.instance().await;
    let room = room("auth");
    let refused = tokio_tungstenite::connect_async(server.url(&format!("/{room}"))).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let token = mint_hs256(
        secret.as_bytes(),
        &Claims {
            exp: ylambda_shared::adapters::unix_now_secs() + 60,
            room: Some(room.clone()),
            rooms: None,
            access: None,
            sub: None,
            admin: None,
        },
    )
    .unwrap();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(server.url(&format!("/{room}?token={token}")))
            .await
            .expect("a valid token is admitted");
    ws.send(Message::binary(ywebsocket::encode_sync_step1(&[0])))
        .await
        .unwrap();
    assert!(matches!(next_data(&mut ws).await, Message::Binary(_)));
}

#[tokio::test]
async fn text_that_is_not_signaling_is_refused_with_1003() {
    let backend = Backend::new(|_| {});
    let server = backend.instance().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url(&format!("/{}", room("text"))))
        .await
        .unwrap();
    send_text(&mut ws, "AAEC").await;
    assert_eq!(close_code(&mut ws).await, 1003);
}

/// Redis drops the instance's subscription, and a writer elsewhere (a Lambda, say) appends an
/// update right then, while the instance is not listening: the instance resyncs its rooms once it
/// listens again, so its client still gets the update, with the server's sync step 1.
#[tokio::test]
async fn an_instance_that_missed_relay_messages_resyncs_its_rooms() {
    let Some(url) = ylambda_shared::conformance::backends::redis_url(
        "an_instance_that_missed_relay_messages_resyncs_its_rooms",
    ) else {
        return;
    };
    let docs = Arc::new(RedisDocStore::connect(&url).await.expect("redis"));
    let backend = Backend::on(Docs::Redis(docs.clone()), |_| {});
    let server = backend.instance().await;
    let room = room("resync");
    let mut ws = client(&server, &room).await;
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= 1, "the instance's subscription was not found");
    // Within the listener's first reconnect pause (100 ms): published to nobody.
    let update = text_update("missed");
    let relay = encode_relay(RelayKind::Doc, None, &ywebsocket::encode_update(&update));
    docs.append(&room, &update, &relay).await.unwrap();

    let mut updates = Vec::new();
    let mut server_step1 = false;
    let deadline = tokio::time::Instant::now() + SOON;
    while !(server_step1 && text_of(&updates) == "missed") {
        let message = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the resync within 10 s")
            .expect("open")
            .expect("read");
        if let Message::Binary(bytes) = message {
            for m in ywebsocket::decode_messages(&bytes).expect("decodes") {
                match m {
                    Incoming::Update(u) | Incoming::SyncStep2(u) => updates.push(u),
                    Incoming::SyncStep1(_) => server_step1 = true,
                    _ => {}
                }
            }
        }
    }
}
