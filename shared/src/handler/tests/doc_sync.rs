//! The y-websocket flows: `$connect`, sync steps, updates, read-only, bad input, large state,
//! lost live data.
use super::*;

#[tokio::test]
async fn connect_validates_the_room_and_accepts_doc_alias() {
    let h = harness();
    let q = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
    assert!(h
        .handler
        .on_connect("a", ENDPOINT, &q("room", ""))
        .await
        .is_err());
    let long = "x".repeat(h.handler.config().limits.max_room_name_bytes + 1);
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
    let members = h.members("notes").await;
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
