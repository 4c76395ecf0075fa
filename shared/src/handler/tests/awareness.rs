//! Awareness: echoed, stored, owned by the connection that introduced a client, removed on
//! leave.
use super::*;

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
