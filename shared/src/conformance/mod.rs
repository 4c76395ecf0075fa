//! Port conformance suites: every adapter of a port (embedded, AWS, Redis) must pass the same one.
//! Each suite uses names unique to the run, so suites can share a real backend.
//! Failures panic with a message naming the broken promise (these are test helpers).
pub mod backends;
mod pieces;
mod relay;

pub use pieces::piece_store_suite;
pub use relay::{next_event, relay_listener_suite};

use crate::ports::{
    AwarenessEntry, Channel, ConnectionStore, Credential, DocStore, LogPosition, Membership,
    PutOutcome, RoomActivity, RoomEventKind, RoomMeta, Scope, Snapshot, SnapshotRecord,
    SnapshotStore, StoreError,
};

// Helpers for every test that needs names, memberships or expiry times (the suites below, the
// adapters' own integration tests, the handler's unit tests).

/// A name no other test or run uses, so tests can share a real backend.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// A membership of `connection_id` in `scope` on a real-looking API Gateway endpoint.
pub fn membership(scope: &Scope, connection_id: &str, expires_at: u64) -> Membership {
    Membership {
        scope: scope.clone(),
        connection_id: connection_id.to_string(),
        endpoint: "https://abc.execute-api.us-east-1.amazonaws.com/prod".into(),
        readonly: false,
        joined_at_ms: 1_700_000_000_000,
        expires_at,
        credential: None,
    }
}

/// An expiry time (epoch seconds) an hour from now.
pub fn in_an_hour() -> u64 {
    crate::adapters::unix_now_secs() + 3600
}

fn ids(members: &[Membership]) -> Vec<String> {
    let mut ids: Vec<String> = members.iter().map(|m| m.connection_id.clone()).collect();
    ids.sort();
    ids
}

pub async fn connection_store_suite(store: &dyn ConnectionStore) {
    let room = Scope::Room(unique("room"));
    let topic = Scope::Topic(room.name().to_string()); // same name, other key space
    let (a, b) = (unique("conn-a"), unique("conn-b"));

    assert!(
        store.members(&room).await.unwrap().is_empty(),
        "new room has members"
    );
    store
        .join(membership(&room, &a, in_an_hour()))
        .await
        .unwrap();
    let mut readonly = membership(&room, &b, in_an_hour());
    readonly.readonly = true;
    // A token's credential round-trips with the record (sub, exp and patterns).
    readonly.credential = Some(Credential {
        sub: Some("user-7".into()),
        token_expires_at: in_an_hour() - 60,
        rooms: vec![room.name().to_string(), "team-a/*".into()],
    });
    store.join(readonly.clone()).await.unwrap();
    // A signaling connection's own record, with a credential that has no `sub`.
    let peer = Scope::Peer(b.clone());
    let mut peer_record = membership(&peer, &b, in_an_hour());
    peer_record.credential = Some(Credential {
        sub: None,
        token_expires_at: in_an_hour(),
        rooms: vec!["*".into()],
    });
    store.join(peer_record.clone()).await.unwrap();
    assert_eq!(
        store.members(&peer).await.unwrap(),
        vec![peer_record.clone()],
        "a peer record round-trips"
    );
    store.leave(&peer, &b).await.unwrap();
    store
        .join(membership(&topic, &a, in_an_hour()))
        .await
        .unwrap();
    // Joining twice is idempotent.
    store
        .join(membership(&room, &a, in_an_hour()))
        .await
        .unwrap();

    let members = store.members(&room).await.unwrap();
    assert_eq!(ids(&members), {
        let mut v = vec![a.clone(), b.clone()];
        v.sort();
        v
    });
    let stored_b = members.iter().find(|m| m.connection_id == b).unwrap();
    assert_eq!(stored_b, &readonly, "membership attributes must round-trip");
    assert_eq!(
        ids(&store.members(&topic).await.unwrap()),
        vec![a.clone()],
        "room and topic of one name must not mix"
    );

    let mut of_a: Vec<Scope> = store
        .memberships_of(&a)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.scope)
        .collect();
    of_a.sort();
    let mut expected = vec![room.clone(), topic.clone()];
    expected.sort();
    assert_eq!(
        of_a, expected,
        "memberships_of must find every scope of a connection"
    );

    store.leave(&topic, &a).await.unwrap();
    store.leave(&topic, &a).await.unwrap(); // leaving twice is fine
    assert!(store.members(&topic).await.unwrap().is_empty());

    let removed = store.remove_connection(&a).await.unwrap();
    assert_eq!(
        removed.len(),
        1,
        "remove_connection returns what it removed"
    );
    assert_eq!(ids(&store.members(&room).await.unwrap()), vec![b.clone()]);
    assert!(store.memberships_of(&a).await.unwrap().is_empty());
    assert!(store.remove_connection(&a).await.unwrap().is_empty());

    // Expired records (their $disconnect never ran) are invisible even before the backend's TTL
    // sweep deletes them.
    let stale = unique("conn-stale");
    store
        .join(membership(
            &room,
            &stale,
            crate::adapters::unix_now_secs().saturating_sub(10),
        ))
        .await
        .unwrap();
    assert!(
        !ids(&store.members(&room).await.unwrap()).contains(&stale),
        "expired member listed"
    );
    assert!(
        store.memberships_of(&stale).await.unwrap().is_empty(),
        "expired membership listed"
    );
    store.remove_connection(&stale).await.unwrap();
    store.remove_connection(&b).await.unwrap();

    // Many members in one scope (pagination in paged backends).
    let big = Scope::Topic(unique("big"));
    let many: Vec<String> = (0..150).map(|i| format!("{}-{i}", unique("m"))).collect();
    for id in &many {
        store
            .join(membership(&big, id, in_an_hour()))
            .await
            .unwrap();
    }
    assert_eq!(
        store.members(&big).await.unwrap().len(),
        150,
        "all members of a large scope"
    );
    for id in &many {
        store.remove_connection(id).await.unwrap();
    }
    assert!(store.members(&big).await.unwrap().is_empty());

    room_directory_suite(store).await;
    room_activity_suite(store).await;
}

/// Every page of the active-room listing, in order, `limit` at a time.
async fn all_active_rooms(store: &dyn ConnectionStore, limit: usize) -> Vec<RoomActivity> {
    let mut rooms = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.active_rooms(limit, after.as_deref()).await.unwrap();
        assert!(page.rooms.len() <= limit, "a page holds at most its limit");
        rooms.extend(page.rooms);
        match page.next {
            Some(next) => after = Some(next),
            None => return rooms,
        }
    }
}

/// Room activity: joins and departures are counted once each, with their events, and the
/// active rooms list newest first, page by page, without the rooms nobody is in.
async fn room_activity_suite(store: &dyn ConnectionStore) {
    // Later than anything else in a shared backend, so these rooms lead the listing.
    let base = crate::adapters::unix_now_ms() + 1_000_000_000 + rand::random::<u32>() as u64;
    let (x, y, z) = (unique("act-x"), unique("act-y"), unique("act-z"));
    let (a, b, c, d) = (unique("a"), unique("b"), unique("c"), unique("d"));
    let join = |room: &str, id: &str, at: u64, sub: Option<&str>| {
        let mut m = membership(&Scope::Room(room.to_string()), id, in_an_hour());
        m.joined_at_ms = at;
        m.credential = sub.map(|sub| Credential {
            sub: Some(sub.into()),
            token_expires_at: in_an_hour(),
            rooms: Vec::new(),
        });
        m
    };
    assert_eq!(
        store.room_activity(&x).await.unwrap(),
        None,
        "a new room has activity"
    );
    store.join(join(&z, &d, base + 1, None)).await.unwrap();
    store.join(join(&x, &a, base + 2, None)).await.unwrap();
    store
        .join(join(&x, &b, base + 3, Some("user-b")))
        .await
        .unwrap();
    store.join(join(&y, &c, base + 4, None)).await.unwrap();
    // A refreshed membership is not a second connection, and not a new event.
    store.join(join(&x, &a, base + 2, None)).await.unwrap();
    // Topic memberships are not room activity.
    store
        .join(membership(&Scope::Topic(x.clone()), &c, in_an_hour()))
        .await
        .unwrap();
    assert_eq!(
        store.room_activity(&x).await.unwrap(),
        Some(RoomActivity {
            room: x.clone(),
            connections: 2,
            last_active_ms: base + 3
        }),
        "two joins counted once each"
    );
    let events = store.room_events(&x, 10).await.unwrap();
    let summary: Vec<(String, RoomEventKind, Option<String>)> = events
        .iter()
        .map(|e| (e.connection_id.clone(), e.kind, e.sub.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (b.clone(), RoomEventKind::Opened, Some("user-b".into())),
            (a.clone(), RoomEventKind::Opened, None)
        ],
        "events newest first (by time), with the token's sub"
    );
    assert_eq!(events[0].at_ms, base + 3);
    assert_eq!(
        store.room_events(&x, 1).await.unwrap().len(),
        1,
        "events limited"
    );

    // Edits move an active room's last activity forward, never back.
    store.touch_room(&z, base + 5).await.unwrap();
    store.touch_room(&z, base).await.unwrap();
    assert_eq!(
        store
            .room_activity(&z)
            .await
            .unwrap()
            .map(|a| a.last_active_ms),
        Some(base + 5),
        "an edit is activity"
    );
    store.touch_room(&z, base + 1).await.unwrap();

    // Pages of 2 (the listing may hold other rooms of a shared backend, all older).
    for limit in [1, 2, 100] {
        let listed = all_active_rooms(store, limit).await;
        let ours: Vec<(String, u64)> = listed
            .iter()
            .filter(|r| [&x, &y, &z].contains(&&r.room))
            .map(|r| (r.room.clone(), r.connections))
            .collect();
        assert_eq!(
            ours,
            vec![(z.clone(), 1), (y.clone(), 1), (x.clone(), 2)],
            "active rooms newest first, each once, with their counts (pages of {limit})"
        );
        assert!(
            listed
                .windows(2)
                .all(|w| w[0].last_active_ms >= w[1].last_active_ms),
            "the listing is ordered by last activity (pages of {limit})"
        );
    }
    assert!(
        matches!(
            store.active_rooms(10, Some("not-a-cursor")).await,
            Err(StoreError::BadCursor(_))
        ),
        "a forged cursor is refused"
    );

    // Departures: counted once, whoever removes the record, and an empty room is not listed.
    store.remove_connection(&a).await.unwrap();
    store.remove_connection(&a).await.unwrap();
    let after_a = store.room_activity(&x).await.unwrap().unwrap();
    assert_eq!(after_a.connections, 1, "a departure uncounted once");
    assert!(
        store
            .room_events(&x, 10)
            .await
            .unwrap()
            .iter()
            .any(|e| e.connection_id == a && e.kind == RoomEventKind::Closed),
        "a departure is an event"
    );
    store.leave(&Scope::Room(x.clone()), &b).await.unwrap();
    store.leave(&Scope::Room(x.clone()), &b).await.unwrap();
    assert_eq!(
        store.room_activity(&x).await.unwrap().unwrap().connections,
        0
    );
    store.remove_connection(&c).await.unwrap();
    store.remove_connection(&d).await.unwrap();
    store.touch_room(&x, base + 10).await.unwrap();
    let listed = all_active_rooms(store, 100).await;
    assert!(
        !listed.iter().any(|r| [&x, &y, &z].contains(&&r.room)),
        "rooms nobody is in are not listed, even after a late edit"
    );
    assert_eq!(
        store.room_events(&x, 10).await.unwrap().len(),
        4,
        "two opened, two closed"
    );
}

/// The room directory record: created once, counts add up, and it never shows as a member.
async fn room_directory_suite(store: &dyn ConnectionStore) {
    let name = unique("meta-room");
    let room = Scope::Room(name.clone());
    assert_eq!(
        store.room_meta(&name).await.unwrap(),
        None,
        "new room has a record"
    );
    let c = unique("conn-c");
    store
        .join(membership(&room, &c, in_an_hour()))
        .await
        .unwrap();
    let first = SnapshotRecord {
        at_ms: 1_000,
        updates_merged: 5,
        version: "v1".into(),
        bytes: 100,
    };
    let second = SnapshotRecord {
        at_ms: 2_000,
        updates_merged: 3,
        version: "\"etag-2\"".into(),
        bytes: 150,
    };
    store.record_snapshot(&name, &first).await.unwrap();
    store.record_snapshot(&name, &second).await.unwrap();
    assert_eq!(
        store.room_meta(&name).await.unwrap(),
        Some(RoomMeta {
            created_ms: 1_000,
            last_active_ms: 2_000,
            updates: 8,
            snapshots: 2,
            snapshot_version: "\"etag-2\"".into(),
            snapshot_bytes: 150,
        }),
        "room record after two snapshots"
    );
    assert_eq!(
        ids(&store.members(&room).await.unwrap()),
        vec![c.clone()],
        "the room record must not be listed as a member"
    );
    assert_eq!(store.memberships_of(&c).await.unwrap().len(), 1);
    assert_eq!(store.remove_connection(&c).await.unwrap().len(), 1);
    assert!(
        store.room_meta(&name).await.unwrap().is_some(),
        "the room record outlives the room's connections"
    );
}

/// Rate counters: per connection and per window, shared by every caller of the store.
pub async fn rate_counter_suite(store: &dyn DocStore) {
    let (a, b) = (unique("conn-a"), unique("conn-b"));
    let window = crate::adapters::unix_now_secs();
    for expected in 1..=3 {
        assert_eq!(store.count_message(&a, window).await.unwrap(), expected);
    }
    assert_eq!(
        store.count_message(&b, window).await.unwrap(),
        1,
        "connections are counted apart"
    );
    assert_eq!(
        store.count_message(&a, window + 1).await.unwrap(),
        1,
        "a new window starts from zero"
    );
    // Concurrent callers (several Lambda instances) lose no count.
    let c = unique("conn-c");
    let counts = futures::future::join_all((0..20).map(|_| store.count_message(&c, window))).await;
    let mut counts: Vec<u64> = counts.into_iter().map(|r| r.unwrap()).collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=20).collect::<Vec<u64>>());
}

pub async fn doc_store_suite(store: &dyn DocStore) {
    let room = unique("room");
    let other = unique("room");
    assert_eq!(store.read_log(&room).await.unwrap().updates.len(), 0);

    let first = store.append(&room, b"u1", b"r1").await.unwrap();
    assert_eq!((first.entries, first.bytes), (1, 2));
    store.append(&other, b"x", b"x").await.unwrap();
    let second = store.append(&room, b"u22", b"r2").await.unwrap();
    assert_eq!((second.entries, second.bytes), (2, 5));
    assert_ne!(first.position, second.position);

    let log = store.read_log(&room).await.unwrap();
    assert_eq!(
        log.updates,
        vec![b"u1".to_vec(), b"u22".to_vec()],
        "log keeps order, rooms isolated"
    );
    assert_eq!(log.last.as_ref(), Some(&second.position));
    assert_eq!(log.byte_len(), 5);

    // Trim up to what was read: a later append survives.
    let third = store.append(&room, b"u3", b"r3").await.unwrap();
    store.trim_log(&room, &second.position).await.unwrap();
    let log = store.read_log(&room).await.unwrap();
    assert_eq!(
        log.updates,
        vec![b"u3".to_vec()],
        "trim removes exactly up to the position"
    );
    assert_eq!(log.last, Some(third.position.clone()));
    let after = store.append(&room, b"u4", b"r4").await.unwrap();
    assert_eq!(after.entries, 2, "append counts the trimmed log");
    assert_eq!(after.bytes, 4);
    assert!(
        store
            .trim_log(&room, &LogPosition("not-a-position".into()))
            .await
            .is_err()
            || store.read_log(&room).await.unwrap().updates.len() == 2,
        "a bad position must fail or be harmless"
    );

    // Awareness: latest update per connection, client ids merged.
    let entry = |conn: &str, clients: Vec<(u64, u32)>, update: &[u8]| AwarenessEntry {
        connection_id: conn.to_string(),
        clients,
        update: update.to_vec(),
    };
    store
        .put_awareness(&room, entry("c1", vec![(10, 1)], b"a1"))
        .await
        .unwrap();
    store
        .put_awareness(&room, entry("c1", vec![(10, 2), (11, 0)], b"a2"))
        .await
        .unwrap();
    store
        .put_awareness(&room, entry("c2", vec![(20, 5)], b"b1"))
        .await
        .unwrap();
    let mut all = store.awareness(&room).await.unwrap();
    all.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[0].update,
        b"a2".to_vec(),
        "latest awareness update wins"
    );
    let mut clients = all[0].clients.clone();
    clients.sort();
    assert_eq!(
        clients,
        vec![(10, 2), (11, 0)],
        "client ids merged, newest clock kept"
    );
    assert!(store.awareness(&other).await.unwrap().is_empty());
    let removed = store.remove_awareness(&room, "c1").await.unwrap();
    assert_eq!(removed.map(|e| e.update), Some(b"a2".to_vec()));
    assert_eq!(store.remove_awareness(&room, "c1").await.unwrap(), None);
    assert_eq!(store.awareness(&room).await.unwrap().len(), 1);

    store
        .publish(&Channel::Room(room.clone()), b"hello")
        .await
        .unwrap();

    // Lock: exclusive until released or expired; a stale token cannot release a new holder.
    let token = store
        .try_lock(&room, 10_000)
        .await
        .unwrap()
        .expect("free lock");
    assert!(
        store.try_lock(&room, 10_000).await.unwrap().is_none(),
        "lock is exclusive"
    );
    assert!(
        store.try_lock(&other, 10_000).await.unwrap().is_some(),
        "locks are per room"
    );
    store.unlock(&room, &token).await.unwrap();
    let short = store
        .try_lock(&room, 50)
        .await
        .unwrap()
        .expect("released lock is free");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let newer = loop {
        if let Some(t) = store.try_lock(&room, 10_000).await.unwrap() {
            break t;
        }
        assert!(std::time::Instant::now() < deadline, "lock never expired");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    store.unlock(&room, &short).await.unwrap();
    assert!(
        store.try_lock(&room, 10_000).await.unwrap().is_none(),
        "stale token released a newer lock"
    );
    store.unlock(&room, &newer).await.unwrap();

    // Epoch: absent first, present after.
    let fresh = unique("room");
    assert!(!store.ensure_epoch(&fresh).await.unwrap());
    assert!(store.ensure_epoch(&fresh).await.unwrap());

    roster_versions(store).await;
    concurrent_appends(store).await;
    trims_racing_appends(store).await;
    dashboard_feed(store).await;
    racing_compactions_take_one_lock(store).await;
}

/// Invariant 21: a store either reports no roster versions at all, or reports, on every append,
/// the version the room's latest `mark_roster_changed` set: the same until the next mark, a
/// different one after it, and per room.
async fn roster_versions(store: &dyn DocStore) {
    let room = unique("room-roster");
    let other = unique("room-roster");
    let before = store.append(&room, b"a", b"a").await.unwrap().roster;
    store.mark_roster_changed(&room).await.unwrap();
    let first = store.append(&room, b"b", b"b").await.unwrap().roster;
    let Some(first) = first else {
        // A store without versions: the members are read on every append, which is always right.
        assert_eq!(before, None, "a store without versions reports none, ever");
        store.mark_roster_changed(&room).await.unwrap();
        assert_eq!(store.append(&room, b"c", b"c").await.unwrap().roster, None);
        return;
    };
    assert_eq!(before, None, "no version before the room's first mark");
    let again = store.append(&room, b"c", b"c").await.unwrap().roster;
    assert_eq!(again, Some(first), "unchanged until the next mark");
    store.mark_roster_changed(&other).await.unwrap();
    let after_other = store.append(&room, b"d", b"d").await.unwrap().roster;
    assert_eq!(
        after_other,
        Some(first),
        "another room's mark changes nothing here"
    );
    store.mark_roster_changed(&room).await.unwrap();
    let second = store.append(&room, b"e", b"e").await.unwrap().roster;
    assert!(
        second.is_some() && second != Some(first),
        "a mark gives a new version: {first:?} then {second:?}"
    );
}

/// Writers appending to one room at once (Lambda instances): every update is kept, once, each at
/// its own position, and the reported sizes count them all.
async fn concurrent_appends(store: &dyn DocStore) {
    let room = unique("room-race");
    let updates: Vec<Vec<u8>> = (0..20).map(|i| format!("w{i:02}").into_bytes()).collect();
    let appended =
        futures::future::join_all(updates.iter().map(|u| store.append(&room, u, u))).await;
    let appended: Vec<_> = appended.into_iter().map(|r| r.expect("append")).collect();
    let positions: std::collections::HashSet<_> = appended.iter().map(|a| &a.position).collect();
    assert_eq!(positions.len(), 20, "two appends got one position");
    assert_eq!(
        appended.iter().map(|a| a.entries).max(),
        Some(20),
        "the last append counts every entry"
    );
    let mut read = store.read_log(&room).await.unwrap().updates;
    read.sort();
    assert_eq!(read, updates, "every concurrent append is in the log, once");
}

/// Compactions trimming what they read while writers keep appending: an entry is either read by
/// a compaction before its trim or still in the log after it, never lost.
async fn trims_racing_appends(store: &dyn DocStore) {
    let room = unique("room-trim");
    let updates: Vec<Vec<u8>> = (0..30).map(|i| format!("t{i:02}").into_bytes()).collect();
    let writers = async {
        for chunk in updates.chunks(5) {
            let batch = futures::future::join_all(chunk.iter().map(|u| store.append(&room, u, u)));
            for result in batch.await {
                result.expect("append");
            }
        }
    };
    let compactions = async {
        let mut compacted = Vec::new();
        for _ in 0..6 {
            let read = store.read_log(&room).await.unwrap();
            if let Some(last) = &read.last {
                store.trim_log(&room, last).await.unwrap();
                compacted.extend(read.updates);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        compacted
    };
    let ((), mut seen) = futures::future::join(writers, compactions).await;
    seen.extend(store.read_log(&room).await.unwrap().updates);
    seen.sort();
    assert_eq!(
        seen, updates,
        "an update was lost or doubled by a trim racing appends"
    );
}

/// Compactions of one room starting at once (its last two connections leaving on two Lambda
/// instances): exactly one gets the room's lock, in every round.
async fn racing_compactions_take_one_lock(store: &dyn DocStore) {
    let room = unique("room-lock");
    for round in 0..3 {
        let tries = futures::future::join_all((0..8).map(|_| store.try_lock(&room, 10_000))).await;
        let tokens: Vec<_> = tries
            .into_iter()
            .filter_map(|t| t.expect("try_lock"))
            .collect();
        assert_eq!(tokens.len(), 1, "round {round}: {} holders", tokens.len());
        store.unlock(&room, &tokens[0]).await.unwrap();
    }
}

pub async fn snapshot_store_suite(store: &dyn SnapshotStore) {
    let room = unique("room/with:odd chars ✓");
    assert!(store.get(&room).await.unwrap().is_none());
    let first = Snapshot {
        update: vec![1, 2, 3],
        covers: Some(LogPosition("7".into())),
    };
    let PutOutcome::Written { version: v1 } = store.put(&room, &first, None).await.unwrap() else {
        panic!("first write must succeed");
    };
    let got = store.get(&room).await.unwrap().expect("written snapshot");
    assert_eq!(got.snapshot, first);
    assert_eq!(got.version, v1);
    assert_eq!(
        store.put(&room, &first, None).await.unwrap(),
        PutOutcome::Conflict,
        "create-only write over an existing snapshot"
    );

    let second = Snapshot {
        update: vec![9; 200_000],
        covers: None,
    };
    let PutOutcome::Written { version: v2 } = store.put(&room, &second, Some(&v1)).await.unwrap()
    else {
        panic!("write with the current version must succeed");
    };
    assert_ne!(v1, v2);
    // A racing writer that read v1 must not replace v2.
    assert_eq!(
        store.put(&room, &first, Some(&v1)).await.unwrap(),
        PutOutcome::Conflict
    );
    let got = store.get(&room).await.unwrap().unwrap();
    assert_eq!(
        got.snapshot, second,
        "a conflicting write changed the snapshot"
    );

    // Rooms whose names differ only in case or by path characters are distinct.
    let upper = room.to_uppercase();
    assert!(store.get(&upper).await.unwrap().is_none());
    let sneaky = format!("../{room}");
    assert!(store.get(&sneaky).await.unwrap().is_none());
}

/// The dashboard feed: a watch flag that expires, events read in order past a cursor, a reader
/// woken by a new event, and forged cursors refused. Other tests may share the feed (one Redis),
/// so only this test's events (its own room) are looked at.
async fn dashboard_feed(store: &dyn DocStore) {
    use crate::ports::DashboardEvent;
    use std::time::Duration;

    store.keep_watching(60_000).await.unwrap();
    assert!(
        store.watched().await.unwrap(),
        "watched while the flag lives"
    );
    store.keep_watching(1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!store.watched().await.unwrap(), "the watch flag expires");

    let room = unique("feed");
    let start = store.read_feed(None, Duration::ZERO).await.unwrap();
    assert!(start.events.is_empty(), "a new reader starts at the end");
    let event = |n: u64| DashboardEvent::Updates {
        room: room.clone(),
        count: n,
        ms: 1000,
        at_ms: n,
    };
    for n in 1..=3 {
        store.emit(&event(n)).await.unwrap();
    }
    let ours = |read: &crate::ports::FeedRead| -> Vec<DashboardEvent> {
        read.events
            .iter()
            .map(|(_, e)| e.clone())
            .filter(|e| matches!(e, DashboardEvent::Updates { room: r, .. } if *r == room))
            .collect()
    };
    let mut seen = Vec::new();
    let mut cursor = start.cursor.clone();
    for _ in 0..20 {
        let read = store
            .read_feed(Some(&cursor), Duration::from_secs(2))
            .await
            .unwrap();
        seen.extend(ours(&read));
        cursor = read.cursor;
        if seen.len() >= 3 {
            break;
        }
    }
    assert_eq!(
        seen,
        vec![event(1), event(2), event(3)],
        "events in order, once"
    );
    let again = store
        .read_feed(Some(&cursor), Duration::from_millis(50))
        .await
        .unwrap();
    assert!(ours(&again).is_empty(), "nothing read twice");

    // A waiting reader is handed the next event.
    let waiting = store.read_feed(Some(&again.cursor), Duration::from_secs(10));
    let later = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        store.emit(&event(4)).await.unwrap();
    };
    let (read, ()) = tokio::join!(waiting, later);
    let mut read = read.unwrap();
    let mut cursor = read.cursor.clone();
    while ours(&read).is_empty() {
        read = store
            .read_feed(Some(&cursor), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!read.events.is_empty(), "the waiting reader got nothing");
        cursor = read.cursor.clone();
    }
    assert_eq!(ours(&read), vec![event(4)]);

    for forged in ["", "not a cursor", "x#1"] {
        assert!(
            matches!(
                store.read_feed(Some(forged), Duration::ZERO).await,
                Err(crate::ports::StoreError::BadCursor(_))
            ),
            "cursor {forged:?} accepted"
        );
    }
}
