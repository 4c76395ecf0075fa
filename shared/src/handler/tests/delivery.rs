//! Delivery: retries after an append, the per-process room cache, and connections found gone.
use super::*;

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

/// Invariant 21: while the room's roster version is unchanged, relaying an update reuses the
/// member list this process read under it; a join or a departure makes the next relay read again.
#[tokio::test]
async fn room_members_are_read_again_only_after_they_change() {
    let h = harness();
    h.join("a", "r").await;
    h.join("b", "r").await;
    let alice = Client::new(1);
    let reads = || *h.connections.member_reads.lock().unwrap();
    let edit = |at: u32, s: &str| ywebsocket::encode_update(&alice.insert(at, s));

    h.send("a", &edit(0, "1")).await.unwrap();
    let after_first = reads();
    h.send("a", &edit(1, "2")).await.unwrap();
    h.send("a", &edit(2, "3")).await.unwrap();
    assert_eq!(
        reads(),
        after_first,
        "an unchanged roster is not read again"
    );
    assert_eq!(h.take("b").len(), 3, "b got every update");

    // A join: the next update is read against the new roster and reaches the newcomer.
    h.join("c", "r").await;
    let before_join_relay = reads();
    h.send("a", &edit(3, "4")).await.unwrap();
    assert_eq!(
        reads(),
        before_join_relay + 1,
        "the roster changed: read again"
    );
    assert_eq!(h.take("c").len(), 1, "the newcomer got the update");
    assert_eq!(h.take("b").len(), 1);

    // A departure: the leaver is not posted to, and nothing is posted to a gone connection.
    h.handler.on_disconnect("b").await.unwrap();
    h.take("c"); // b's departure announced, if it had awareness (it had none)
    h.send("a", &edit(4, "5")).await.unwrap();
    assert_eq!(h.take("c").len(), 1);
    assert!(
        h.take("b").is_empty(),
        "nothing posted to the connection that left"
    );
}

/// Without a roster version from the doc store (the DynamoDB profile), every relay reads the
/// members: a store that cannot say whether they changed is never trusted to be unchanged.
#[tokio::test]
async fn without_roster_versions_every_relay_reads_the_members() {
    let h = harness();
    h.join("a", "r").await;
    h.join("b", "r").await;
    // The embedded store keeps versions; a flush (as a Redis failover would) loses the room's.
    h.docs.flush().unwrap();
    let alice = Client::new(1);
    let before = *h.connections.member_reads.lock().unwrap();
    for i in 0..3 {
        h.send("a", &ywebsocket::encode_update(&alice.insert(i, "x")))
            .await
            .unwrap();
    }
    assert_eq!(*h.connections.member_reads.lock().unwrap(), before + 3);
    assert_eq!(h.take("b").len(), 3);
}

/// A member that joined a minute ago: past the window in which a 410 may only mean that its
/// `$connect` is still running.
async fn join_a_minute_ago(h: &Harness, id: &str, room: &str) {
    h.join(id, room).await;
    let mut m = h
        .members(room)
        .await
        .into_iter()
        .find(|m| m.connection_id == id)
        .unwrap();
    m.joined_at_ms -= 60_000;
    h.connections.join(m).await.unwrap();
}

/// Invariant 9: API Gateway answers 410 to a post to a connection whose `$connect` has not
/// returned yet, while its membership is already stored. That 410 must not remove it: it
/// would be left in no room, and its first message closed as from a stranger.
#[tokio::test]
async fn a_410_from_a_connection_still_in_its_connect_does_not_remove_it() {
    let h = harness();
    h.join("a", "r").await;
    h.join("joining", "r").await; // its $connect wrote the membership and has not returned
    h.fanout.gone.lock().unwrap().insert("joining".into());
    let alice = Client::new(1);
    h.send("a", &ywebsocket::encode_update(&alice.insert(0, "x")))
        .await
        .unwrap();
    assert_eq!(h.member_ids("r").await, vec!["a", "joining"]);
    // Its $connect returns; its sync finds the update it missed, and later ones reach it.
    h.fanout.gone.lock().unwrap().clear();
    let joiner = Client::new(2);
    h.send("joining", &joiner.sync_step1()).await.unwrap();
    joiner.receive(&h.take("joining"));
    h.send("a", &ywebsocket::encode_update(&alice.insert(1, "y")))
        .await
        .unwrap();
    joiner.receive(&h.take("joining"));
    assert_eq!(joiner.text(), "xy");
}

#[tokio::test]
async fn gone_connections_are_cleaned_up_during_broadcast() {
    let h = harness();
    h.join("a", "r").await;
    join_a_minute_ago(&h, "ghost", "r").await;
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
    for id in ["a", "b"] {
        h.join(id, "r").await;
    }
    for id in ["ghost1", "ghost2"] {
        join_a_minute_ago(&h, id, "r").await;
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
