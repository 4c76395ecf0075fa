//! y-webrtc signaling: subscribe, publish, ping, unsubscribe, disconnect.
use super::*;

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
