//! Abuse limits: messages per connection, connections per room, topics per connection, each
//! breaking one closing (or refusing) the connection with its reason.
use crate::config::AbuseLimits;

use super::*;

fn limited(limits: AbuseLimits) -> Harness {
    harness_with(Config {
        limits,
        ..Config::default()
    })
}

#[tokio::test]
async fn a_connection_past_its_message_rate_is_closed_and_told_why() {
    let h = limited(AbuseLimits {
        max_messages_per_sec: 1,
        ..AbuseLimits::default()
    });
    h.join("flood", "r").await;
    h.join("calm", "r").await;
    let client = Client::new(1);
    let window = h.handler.config().limits.messages_per_window();
    for _ in 0..window {
        h.send("flood", &client.sync_step1()).await.unwrap();
    }
    let result = h.send("flood", &client.sync_step1()).await;
    assert!(
        matches!(&result, Err(HandlerError::PolicyViolation(r)) if r.contains("messages")),
        "{result:?}"
    );
    assert_eq!(*h.fanout.closed.lock().unwrap(), vec!["flood".to_string()]);
    let told = h.take("flood");
    assert!(
        matches!(told.last(), Some(Incoming::Auth(Some(reason))) if reason.contains("messages")),
        "{told:?}"
    );
    // Counted per connection: another in the same room is still served.
    h.send("calm", &client.sync_step1()).await.unwrap();
    assert!(!h.take("calm").is_empty());
}

#[tokio::test]
async fn a_full_room_refuses_the_next_connection() {
    let h = limited(AbuseLimits {
        max_connections_per_room: 2,
        ..AbuseLimits::default()
    });
    h.join("a", "r").await;
    h.join("b", "r").await;
    let result = h.handler.on_connect("c", ENDPOINT, &room_query("r")).await;
    assert!(
        matches!(&result, Err(HandlerError::Refused { status: 403, reason }) if reason.contains("full")),
        "{result:?}"
    );
    assert_eq!(
        h.member_ids("r").await,
        vec!["a".to_string(), "b".to_string()]
    );
    h.join("c", "other-room").await;
}

#[tokio::test]
async fn a_signaling_connection_is_limited_in_topics() {
    let h = limited(AbuseLimits {
        max_topics_per_connection: 2,
        ..AbuseLimits::default()
    });
    h.handler
        .on_connect("s", ENDPOINT, &HashMap::new())
        .await
        .unwrap();
    let subscribe = |topics: &str| format!(r#"{{"type":"subscribe","topics":[{topics}]}}"#);
    h.handler
        .on_message("s", ENDPOINT, &subscribe(r#""t1","t2""#))
        .await
        .unwrap();
    // Subscribing again to a topic it has is not one more.
    h.handler
        .on_message("s", ENDPOINT, &subscribe(r#""t2""#))
        .await
        .unwrap();
    let result = h
        .handler
        .on_message("s", ENDPOINT, &subscribe(r#""t3""#))
        .await;
    assert!(
        matches!(&result, Err(HandlerError::PolicyViolation(r)) if r.contains("topics")),
        "{result:?}"
    );
    let topics = |t: &str| Scope::Topic(t.into());
    assert!(h
        .handler
        .ports
        .connections
        .members(&topics("t3"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn room_and_topic_names_past_the_configured_length_are_refused() {
    let h = limited(AbuseLimits {
        max_room_name_bytes: 8,
        ..AbuseLimits::default()
    });
    let result = h
        .handler
        .on_connect("a", ENDPOINT, &room_query("ninechars"))
        .await;
    assert!(
        matches!(result, Err(HandlerError::BadRequest(_))),
        "{result:?}"
    );
    h.join("a", "eight888").await;
    h.handler
        .on_connect("s", ENDPOINT, &HashMap::new())
        .await
        .unwrap();
    let result = h
        .handler
        .on_message(
            "s",
            ENDPOINT,
            r#"{"type":"subscribe","topics":["ninechars"]}"#,
        )
        .await;
    assert!(
        matches!(result, Err(HandlerError::BadRequest(_))),
        "{result:?}"
    );
}
