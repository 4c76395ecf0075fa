//! Compaction: on last leave, past the log threshold, and never over a newer snapshot.
use super::*;

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
