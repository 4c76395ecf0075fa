//! The Redis doc store against the `DocStore` conformance suite and the promises only Redis makes,
//! on a real redis-server:
//!
//! ```sh
//! eval "$(bash scripts/local-redis.sh start)"   # sets YLAMBDA_REDIS_URL
//! cargo test -p ylambda-shared --test conformance_redis
//! bash scripts/local-redis.sh stop
//! ```
//!
//! Without `YLAMBDA_REDIS_URL` each test prints a skip line and passes, except that
//! `redis_is_configured_in_ci` fails when `CI` is set, so CI cannot skip them silently.
//! `flushall_makes_the_epoch_report_lost_data` wipes the whole server: point the URL only at a
//! throwaway server such as the script's.
mod turn_counter;

use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::RwLock;
use ylambda_shared::adapters::RedisDocStore;
use ylambda_shared::conformance::backends::{
    configured_redis_url, in_ci, redis_url, say, REDIS_URL_VAR,
};
use ylambda_shared::conformance::{self, unique};
use ylambda_shared::ports::{
    AwarenessEntry, Channel, ChannelEvent, DocStore, LogPosition, RelayListener, StoreError,
};

use turn_counter::{proxied, TurnCounter};

/// Tests hold this shared; the FLUSHALL test holds it exclusively, so it never wipes the keys of a
/// test running beside it in this binary.
static SERVER: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

async fn store(test: &str) -> Option<RedisDocStore> {
    let url = redis_url(test)?;
    Some(
        RedisDocStore::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{REDIS_URL_VAR} is set but Redis is unreachable: {e}")),
    )
}

/// A plain connection for looking behind the adapter (raw keys, FLUSHALL).
async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[test]
fn redis_is_configured_in_ci() {
    assert!(
        !in_ci() || configured_redis_url().is_some(),
        "CI is set but {REDIS_URL_VAR} is not: the Redis adapter tests would be skipped. \
         Run `eval \"$(bash scripts/local-redis.sh start)\"` before the tests."
    );
}

#[tokio::test]
async fn redis_doc_store_conforms() {
    let Some(store) = store("redis_doc_store_conforms").await else {
        return;
    };
    let _shared = SERVER.read().await;
    conformance::doc_store_suite(&store).await;
}

#[tokio::test]
async fn redis_rate_counters_conform() {
    let Some(store) = store("redis_rate_counters_conform").await else {
        return;
    };
    let _shared = SERVER.read().await;
    conformance::rate_counter_suite(&store).await;
}

#[tokio::test]
async fn redis_piece_store_conforms() {
    let Some(store) = store("redis_piece_store_conforms").await else {
        return;
    };
    let _shared = SERVER.read().await;
    conformance::piece_store_suite(&store).await;
}

#[tokio::test]
async fn connect_errors_name_the_url_without_its_password() {
    // Port 1 on loopback refuses at once; no server is needed.
    let err = RedisDocStore::connect("redis://app:hunter2@127.0.0.1:1/0")
        .await
        .expect_err("nothing listens on port 1");
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(text.contains("app:***@"), "{text}");
    assert!(!text.contains("hunter2"), "password leaked: {text}");

    let err = RedisDocStore::connect("http://:hunter2@127.0.0.1:1")
        .await
        .expect_err("not a Redis URL");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn rediss_urls_speak_tls() {
    // A server that answers the TLS ClientHello with plain-text garbage: the handshake must fail
    // with an error (not a panic for want of a rustls crypto provider, not a plain-text session).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hellos = Arc::new(Mutex::new(Vec::<u8>::new()));
    let seen = hellos.clone();
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            if let Ok(n) = socket.read(&mut buf).await {
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            let _ = socket.write_all(b"-ERR not TLS\r\n").await;
        }
    });
    let err = RedisDocStore::connect(&format!("rediss://app:hunter2@{addr}"))
        .await
        .expect_err("the handshake cannot succeed");
    server.abort();
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "password leaked: {text}");
    let first = hellos.lock().unwrap().first().copied();
    assert_eq!(
        first,
        Some(0x16),
        "the client did not start a TLS handshake"
    );
}

#[tokio::test]
async fn updates_and_messages_are_binary_safe() {
    let Some(store) = store("updates_and_messages_are_binary_safe").await else {
        return;
    };
    let _shared = SERVER.read().await;
    let room = unique("binary");
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let updates: Vec<Vec<u8>> = vec![
        every_byte.clone(),
        vec![0],
        vec![
            0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c, 0xbc,
        ],
        b"\r\n*3\r\n$4\r\nPING\r\n".to_vec(), // RESP framing inside the payload
        vec![],
        every_byte.iter().rev().copied().collect(),
    ];
    let (listener, mut events) = store.relay_listener();
    let channel = Channel::Room(room.clone());
    listener.listen(&channel).await.unwrap();
    let mut total = 0;
    for (i, update) in updates.iter().enumerate() {
        let appended = store.append(&room, update, update).await.unwrap();
        total += update.len();
        assert_eq!((appended.entries, appended.bytes), (i + 1, total));
    }
    let log = store.read_log(&room).await.unwrap();
    assert_eq!(
        log.updates, updates,
        "updates must round-trip byte for byte"
    );
    for update in &updates {
        assert_eq!(
            conformance::next_event(&mut events, "each relay").await,
            ChannelEvent::Message {
                channel: channel.clone(),
                payload: update.clone()
            }
        );
    }

    let entry = AwarenessEntry {
        connection_id: "conn\u{0}id ✓".into(),
        clients: vec![(u64::MAX, u32::MAX), (0, 0)],
        update: every_byte.clone(),
    };
    store.put_awareness(&room, entry.clone()).await.unwrap();
    assert_eq!(store.awareness(&room).await.unwrap(), vec![entry.clone()]);
    assert_eq!(
        store
            .remove_awareness(&room, &entry.connection_id)
            .await
            .unwrap(),
        Some(entry)
    );
}

#[tokio::test]
async fn odd_room_names_do_not_collide() {
    let Some(store) = store("odd_room_names_do_not_collide").await else {
        return;
    };
    let _shared = SERVER.read().await;
    let run = unique("");
    let rooms: Vec<String> = vec![
        run.clone(),
        format!("{run}}}"),
        format!("{{{run}}}"),
        format!("{{{run}"),
        format!("}}{run}"),
        format!("{run}:log"),
        format!("{run}}}:log"),
        format!("{run}:bytes"),
        format!("{run} with spaces"),
        format!("ünïcødé ✓ {run}"),
        format!("%7D{run}"),
        format!("%{run}"),
        format!("{run}%25"),
        format!("{run}%"),
        format!("a{{b}}c{run}"),
    ];
    for (i, room) in rooms.iter().enumerate() {
        store
            .append(room, format!("update-{i}").as_bytes(), b"relay")
            .await
            .unwrap();
        store
            .put_awareness(
                room,
                AwarenessEntry {
                    connection_id: "c".into(),
                    clients: vec![(i as u64, 0)],
                    update: vec![i as u8],
                },
            )
            .await
            .unwrap();
        assert!(!store.ensure_epoch(room).await.unwrap(), "{room:?} epoch");
    }
    for (i, room) in rooms.iter().enumerate() {
        let log = store.read_log(room).await.unwrap();
        assert_eq!(
            log.updates,
            vec![format!("update-{i}").into_bytes()],
            "room {room:?} shares its log"
        );
        let awareness = store.awareness(room).await.unwrap();
        assert_eq!(awareness.len(), 1, "room {room:?} shares its awareness");
        assert_eq!(awareness[0].clients, vec![(i as u64, 0)]);
        let token = store.try_lock(room, 10_000).await.unwrap();
        assert!(token.is_some(), "room {room:?} shares its lock");
    }
    // Every key of a room carries the same hash tag (one cluster slot) and nothing else.
    let mut conn = raw(&configured_redis_url().unwrap()).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("yl:{{{run}}}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    keys.sort();
    let tag = format!("yl:{{{run}}}");
    assert_eq!(
        keys,
        ["awareness", "bytes", "compact", "epoch", "log"]
            .map(|k| format!("{tag}:{k}"))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn redis_relay_listener_conforms() {
    let Some(store) = store("redis_relay_listener_conforms").await else {
        return;
    };
    let _shared = SERVER.read().await;
    let (listener, mut events) = store.relay_listener();
    conformance::relay_listener_suite(&store, &listener, &mut events).await;
}

/// A listener whose connection is killed comes back by itself, subscribed to what it listened
/// to, and says it missed messages (what `ylambda serve` resyncs its rooms on).
#[tokio::test]
async fn a_relay_listener_reconnects_and_says_it_resumed() {
    let Some(store) = store("a_relay_listener_reconnects_and_says_it_resumed").await else {
        return;
    };
    // Exclusive: it kills every pub/sub connection of the server.
    let _exclusive = SERVER.write().await;
    let (listener, mut events) = store.relay_listener();
    let room = Channel::Room(unique("resume"));
    listener.listen(&room).await.unwrap();
    let mut conn = raw(&configured_redis_url().unwrap()).await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        killed >= 1,
        "the listener's pub/sub connection was not found"
    );
    assert_eq!(
        conformance::next_event(&mut events, "Resumed after the reconnect").await,
        ChannelEvent::Resumed
    );
    assert!(listener.connected());
    store.publish(&room, b"after").await.unwrap();
    assert_eq!(
        conformance::next_event(&mut events, "a publish after the reconnect").await,
        ChannelEvent::Message {
            channel: room.clone(),
            payload: b"after".to_vec()
        }
    );
}

#[tokio::test]
async fn append_is_one_pipelined_transaction() {
    let Some(url) = redis_url("append_is_one_pipelined_transaction") else {
        return;
    };
    let _shared = SERVER.read().await;
    let Some((upstream, proxied_url)) = proxied(&url) else {
        say("SKIPPED append_is_one_pipelined_transaction: needs a plain redis:// URL");
        return;
    };
    let proxy = TurnCounter::start(&upstream).await;
    let store = RedisDocStore::connect(&proxy.url(&proxied_url))
        .await
        .unwrap();
    let room = unique("round-trip");
    store.append(&room, b"warm-up", b"r").await.unwrap();

    let before = proxy.turns();
    let appended = store.append(&room, b"counted", b"relay").await.unwrap();
    let turns = proxy.turns_since(before);
    assert_eq!(appended.entries, 2);
    assert_eq!(
        turns.len(),
        1,
        "append took {} request/response turns: {turns:?}",
        turns.len()
    );
    let sent = String::from_utf8_lossy(&turns[0]).into_owned();
    let order: Vec<usize> = ["MULTI", "XADD", "INCRBY", "XLEN", "PUBLISH", "EXEC"]
        .iter()
        .map(|c| {
            sent.find(&format!("\r\n{c}\r\n"))
                .unwrap_or_else(|| panic!("{c} not in the pipeline: {sent:?}"))
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "append must be MULTI, XADD, INCRBY, XLEN, PUBLISH, EXEC in that order: {sent:?}"
    );
}

#[tokio::test]
async fn locks_expire_by_themselves() {
    let Some(store) = store("locks_expire_by_themselves").await else {
        return;
    };
    let _shared = SERVER.read().await;
    let room = unique("lock");
    let start = Instant::now();
    let first = store.try_lock(&room, 1_500).await.unwrap();
    assert!(first.is_some());
    assert!(
        store.try_lock(&room, 1_500).await.unwrap().is_none(),
        "lock is exclusive before it expires"
    );
    let deadline = start + Duration::from_secs(10);
    let second = loop {
        if let Some(token) = store.try_lock(&room, 10_000).await.unwrap() {
            break token;
        }
        assert!(Instant::now() < deadline, "lock never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        start.elapsed() >= Duration::from_millis(1_000),
        "lock expired early, after {:?}",
        start.elapsed()
    );
    assert_ne!(first, Some(second.clone()), "tokens are unique");
    store.unlock(&room, &second).await.unwrap();
    assert!(store.try_lock(&room, 1_000).await.unwrap().is_some());
}

#[tokio::test]
async fn flushall_makes_the_epoch_report_lost_data() {
    let Some(store) = store("flushall_makes_the_epoch_report_lost_data").await else {
        return;
    };
    let _exclusive = SERVER.write().await;
    let room = unique("epoch");
    assert!(!store.ensure_epoch(&room).await.unwrap());
    assert!(store.ensure_epoch(&room).await.unwrap());
    store.append(&room, b"u", b"r").await.unwrap();

    let mut conn = raw(&configured_redis_url().unwrap()).await;
    let () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();

    assert!(
        !store.ensure_epoch(&room).await.unwrap(),
        "after a flush the epoch must read as absent: that is how data loss is detected"
    );
    assert!(store.read_log(&room).await.unwrap().updates.is_empty());
    assert!(store.ensure_epoch(&room).await.unwrap());
    let appended = store.append(&room, b"again", b"r").await.unwrap();
    assert_eq!((appended.entries, appended.bytes), (1, 5));
}

#[tokio::test]
async fn trim_keeps_the_byte_count_and_rejects_bad_positions() {
    let Some(store) = store("trim_keeps_the_byte_count_and_rejects_bad_positions").await else {
        return;
    };
    let _shared = SERVER.read().await;
    let room = unique("trim");
    // Trimming an empty room is a no-op.
    store
        .trim_log(&room, &LogPosition("1-0".into()))
        .await
        .unwrap();
    let a = store.append(&room, b"aaaa", b"").await.unwrap();
    store.append(&room, b"bb", b"").await.unwrap();
    // A position before every entry removes nothing.
    store
        .trim_log(&room, &LogPosition("0-1".into()))
        .await
        .unwrap();
    assert_eq!(store.read_log(&room).await.unwrap().updates.len(), 2);
    store.trim_log(&room, &a.position).await.unwrap();
    let c = store.append(&room, b"c", b"").await.unwrap();
    assert_eq!((c.entries, c.bytes), (2, 3), "counter follows the trim");
    for bad in ["", "12", "x-1", "1-2-3", "-1-0"] {
        assert!(
            matches!(
                store.trim_log(&room, &LogPosition(bad.into())).await,
                Err(StoreError::Corrupt(_))
            ),
            "position {bad:?} accepted"
        );
    }
    store.trim_log(&room, &c.position).await.unwrap();
    let empty = store.read_log(&room).await.unwrap();
    assert!(empty.updates.is_empty() && empty.last.is_none());
    let d = store.append(&room, b"dd", b"").await.unwrap();
    assert_eq!((d.entries, d.bytes), (1, 2));
}

#[tokio::test]
async fn corrupt_entries_are_reported_not_trusted() {
    let Some(store) = store("corrupt_entries_are_reported_not_trusted").await else {
        return;
    };
    let _shared = SERVER.read().await;
    let mut conn = raw(&configured_redis_url().unwrap()).await;
    let room = unique("corrupt");
    let awareness_key = format!("yl:{{{room}}}:awareness");
    let good = AwarenessEntry {
        connection_id: "good".into(),
        clients: vec![(1, 1)],
        update: b"ok".to_vec(),
    };
    store.put_awareness(&room, good.clone()).await.unwrap();
    for (field, garbage) in [("bad", &b"\x01\xff\xff"[..]), ("v9", &b"\x09"[..])] {
        let _: i64 = redis::cmd("HSET")
            .arg(&awareness_key)
            .arg(field)
            .arg(garbage)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    assert_eq!(
        store.awareness(&room).await.unwrap(),
        vec![good],
        "undecodable entries are skipped, not fatal for the room"
    );
    assert!(matches!(
        store.remove_awareness(&room, "bad").await,
        Err(StoreError::Corrupt(_))
    ));
    let left: i64 = redis::cmd("HEXISTS")
        .arg(&awareness_key)
        .arg("bad")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "a corrupt entry is removed all the same");
    let healed = AwarenessEntry {
        connection_id: "v9".into(),
        clients: vec![(9, 0)],
        update: b"fresh".to_vec(),
    };
    store.put_awareness(&room, healed.clone()).await.unwrap();
    assert_eq!(store.awareness(&room).await.unwrap().len(), 2);
    assert_eq!(
        store.remove_awareness(&room, "v9").await.unwrap(),
        Some(healed),
        "a put replaces an undecodable entry"
    );

    // A stream entry without the update field, or a key of the wrong type.
    let _: String = redis::cmd("XADD")
        .arg(format!("yl:{{{room}}}:log"))
        .arg("*")
        .arg("not-u")
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(matches!(
        store.read_log(&room).await,
        Err(StoreError::Corrupt(_))
    ));
    let wrong = unique("wrongtype");
    let () = redis::cmd("SET")
        .arg(format!("yl:{{{wrong}}}:log"))
        .arg("string")
        .query_async(&mut conn)
        .await
        .unwrap();
    let appended = store.append(&wrong, b"u", b"r").await;
    assert!(
        matches!(appended, Err(StoreError::Corrupt(_))),
        "a log key of the wrong type: {appended:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_awareness_puts_keep_every_client_id() {
    let Some(store) = store("concurrent_awareness_puts_keep_every_client_id").await else {
        return;
    };
    let _shared = SERVER.read().await;
    let room = unique("awareness-race");
    for round in 0..5u64 {
        let puts = (0..5u64).map(|i| {
            let store = store.clone();
            let room = room.clone();
            tokio::spawn(async move {
                store
                    .put_awareness(
                        &room,
                        AwarenessEntry {
                            connection_id: "conn".into(),
                            clients: vec![(round * 10 + i, 1)],
                            update: vec![i as u8],
                        },
                    )
                    .await
            })
        });
        for put in futures::future::join_all(puts).await {
            put.unwrap().unwrap();
        }
    }
    let entries = store.awareness(&room).await.unwrap();
    assert_eq!(entries.len(), 1);
    let mut ids: Vec<u64> = entries[0].clients.iter().map(|(id, _)| *id).collect();
    ids.sort();
    let expected: Vec<u64> = (0..5)
        .flat_map(|round| (0..5).map(move |i| round * 10 + i))
        .collect();
    assert_eq!(ids, expected, "a concurrent put lost a client id");
}
