//! Dashboard events: none at all while nobody watches, every kind once a viewer does.
use std::time::Duration;

use super::*;
use crate::ports::DashboardEvent;

fn kinds(read: &crate::ports::FeedRead) -> Vec<&'static str> {
    read.events
        .iter()
        .map(|(_, e)| match e {
            DashboardEvent::Opened { .. } => "opened",
            DashboardEvent::Closed { .. } => "closed",
            DashboardEvent::Updates { .. } => "updates",
            DashboardEvent::Compacted { .. } => "compacted",
        })
        .collect()
}

/// Joins, an update, and both leaving (the last leave compacts).
async fn session(h: &Harness, room: &str) {
    h.join("a", room).await;
    h.join("b", room).await;
    let update = Client::new(1).insert(0, "hi");
    h.send("a", &ywebsocket::encode_update(&update))
        .await
        .unwrap();
    h.handler.on_disconnect("b").await.unwrap();
    h.handler.on_disconnect("a").await.unwrap();
}

#[tokio::test]
async fn nothing_is_reported_while_nobody_watches_and_everything_once_someone_does() {
    let h = harness();
    let start = h.docs.read_feed(None, Duration::ZERO).await.unwrap();
    session(&h, "quiet").await;
    let read = h
        .docs
        .read_feed(Some(&start.cursor), Duration::ZERO)
        .await
        .unwrap();
    assert!(
        read.events.is_empty(),
        "reported with nobody watching: {read:?}"
    );

    h.handler.keep_watching(60_000).await.unwrap();
    session(&h, "watched").await;
    let read = h
        .docs
        .read_feed(Some(&start.cursor), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        kinds(&read),
        vec![
            "opened",
            "opened",
            "updates",
            "closed",
            "closed",
            "compacted"
        ],
        "{read:?}"
    );
    assert!(read.events.iter().all(|(_, e)| match e {
        DashboardEvent::Opened { room, .. }
        | DashboardEvent::Closed { room, .. }
        | DashboardEvent::Updates { room, .. }
        | DashboardEvent::Compacted { room, .. } => room == "watched",
    }));
}

#[tokio::test]
async fn a_process_notices_a_viewer_within_its_check_interval() {
    let h = harness_with(Config {
        dashboard_check: Duration::from_millis(50),
        ..Config::default()
    });
    let start = h.docs.read_feed(None, Duration::ZERO).await.unwrap();
    h.join("a", "r").await; // reads the flag: nobody
                            // Another process (the SSE endpoint) starts watching, straight in the store.
    h.docs.keep_watching(60_000).await.unwrap();
    h.join("b", "r").await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    h.join("c", "r").await;
    let read = h
        .docs
        .read_feed(Some(&start.cursor), Duration::ZERO)
        .await
        .unwrap();
    let opened: Vec<&str> = read
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            DashboardEvent::Opened { connection_id, .. } => Some(connection_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(opened, vec!["c"], "b came within the interval, c after it");
}
