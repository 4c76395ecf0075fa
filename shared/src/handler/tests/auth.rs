//! Access control at `$connect`: no token, a bad one or one for other rooms is refused before
//! anything is stored; a read-only token is enforced; an expired token closes the connection at
//! its next message; tokens travel in the query or a subprotocol; signaling topics are checked.
use crate::adapters::unix_now_secs;
use crate::auth::{mint_hs256, Access, Claims};
use crate::config::Secret;

use super::*;

const SECRET: &str = "handler test secret, long enough";

fn secured() -> Harness {
    harness_with(Config {
        auth_secret: Some(Secret(SECRET.into())),
        ..Config::default()
    })
}

fn token(claims: Claims) -> String {
    mint_hs256(SECRET.as_bytes(), &claims).unwrap()
}

fn for_room(room: &str) -> Claims {
    Claims {
        exp: unix_now_secs() + 600,
        room: Some(room.into()),
        ..Claims::default()
    }
}

fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn status(result: HandlerResult<()>) -> Option<u16> {
    match result {
        Err(HandlerError::Refused { status, .. }) => Some(status),
        _ => None,
    }
}

#[tokio::test]
async fn connect_without_a_valid_token_is_refused_before_anything_is_stored() {
    let h = secured();
    let good = token(for_room("r"));
    let forged = mint_hs256(b"some other secret of the same size!", &for_room("r")).unwrap();
    let expired = token(Claims {
        exp: unix_now_secs() - 1,
        ..for_room("r")
    });
    for (what, q, expected) in [
        ("no token", query(&[("room", "r")]), 401),
        ("garbage", query(&[("room", "r"), ("token", "x.y.z")]), 401),
        ("forged", query(&[("room", "r"), ("token", &forged)]), 401),
        ("expired", query(&[("room", "r"), ("token", &expired)]), 401),
        (
            "other room",
            query(&[("room", "other"), ("token", &good)]),
            403,
        ),
        ("signaling, no token", query(&[]), 401),
    ] {
        let result = h.handler.on_connect("c", ENDPOINT, &q).await;
        assert_eq!(status(result), Some(expected), "{what}");
    }
    assert!(h.member_ids("r").await.is_empty());
    assert!(h.member_ids("other").await.is_empty());
    // The right token opens the room; signaling needs a valid token for any room.
    h.handler
        .on_connect("c", ENDPOINT, &query(&[("room", "r"), ("token", &good)]))
        .await
        .unwrap();
    assert_eq!(h.member_ids("r").await, vec!["c".to_string()]);
    h.handler
        .on_connect("s", ENDPOINT, &query(&[("token", &good)]))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_read_only_token_is_enforced_and_readonly_only_lowers_rights() {
    let h = secured();
    let ro = token(Claims {
        access: Some(Access::Ro),
        ..for_room("r")
    });
    let rw = token(for_room("r"));
    h.handler
        .on_connect(
            "ro",
            ENDPOINT,
            &query(&[("room", "r"), ("token", &ro), ("readonly", "0")]),
        )
        .await
        .unwrap();
    h.handler
        .on_connect(
            "lowered",
            ENDPOINT,
            &query(&[("room", "r"), ("token", &rw), ("readonly", "1")]),
        )
        .await
        .unwrap();
    h.handler
        .on_connect("rw", ENDPOINT, &query(&[("room", "r"), ("token", &rw)]))
        .await
        .unwrap();
    let members = h.members("r").await;
    let readonly = |id: &str| {
        members
            .iter()
            .find(|m| m.connection_id == id)
            .unwrap()
            .readonly
    };
    assert!(readonly("ro"), "access: ro cannot be raised by ?readonly=0");
    assert!(readonly("lowered"));
    assert!(!readonly("rw"));
    // The read-only connection's updates are dropped; the first is answered with
    // permission-denied, the next ones silently.
    let writer = Client::new(1);
    for attempt in 0..3 {
        h.send("ro", &ywebsocket::encode_update(&writer.insert(0, "nope")))
            .await
            .unwrap();
        let told = h.take("ro");
        let denied = told
            .iter()
            .filter(|m| matches!(m, Incoming::Auth(Some(r)) if r.contains("read-only")))
            .count();
        assert_eq!(
            denied,
            usize::from(attempt == 0),
            "attempt {attempt}: {told:?}"
        );
    }
    assert!(h.docs.read_log("r").await.unwrap().updates.is_empty());
    assert!(h.fanout.closed.lock().unwrap().is_empty(), "not closed");
}

#[tokio::test]
async fn a_connection_is_closed_at_its_first_message_after_its_token_expires() {
    let h = secured();
    let short = token(Claims {
        exp: unix_now_secs() + 1,
        sub: Some("user-9".into()),
        ..for_room("r")
    });
    h.handler
        .on_connect("c", ENDPOINT, &query(&[("room", "r"), ("token", &short)]))
        .await
        .unwrap();
    let record = &h.members("r").await[0];
    let credential = record.credential.as_ref().expect("credential kept");
    assert_eq!(credential.sub.as_deref(), Some("user-9"), "sub is kept");
    let client = Client::new(1);
    h.send("c", &client.sync_step1()).await.unwrap();
    h.take("c");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let result = h
        .send("c", &ywebsocket::encode_update(&client.insert(0, "late")))
        .await;
    assert!(
        matches!(&result, Err(HandlerError::PolicyViolation(r)) if r == "token expired"),
        "{result:?}"
    );
    assert_eq!(*h.fanout.closed.lock().unwrap(), vec!["c".to_string()]);
    let told = h.take("c");
    assert!(
        matches!(told.as_slice(), [Incoming::Auth(Some(reason))] if reason.contains("token expired")),
        "{told:?}"
    );
    assert!(
        h.docs.read_log("r").await.unwrap().updates.is_empty(),
        "nothing stored"
    );
}

#[tokio::test]
async fn a_token_can_travel_as_a_subprotocol_and_one_offered_is_answered() {
    let h = secured();
    let good = token(for_room("r"));
    let offered = vec!["ylambda".to_string(), format!("token.{good}")];
    let accepted = h
        .handler
        .on_connect_offering("c", ENDPOINT, &query(&[("room", "r")]), &offered)
        .await
        .unwrap();
    assert_eq!(accepted.subprotocol.as_deref(), Some("ylambda"));
    assert_eq!(h.member_ids("r").await, vec!["c".to_string()]);
    // A forged token in the subprotocol is refused like one in the query.
    let forged = mint_hs256(b"some other secret, also long enough", &for_room("r")).unwrap();
    let result = h
        .handler
        .on_connect_offering(
            "d",
            ENDPOINT,
            &query(&[("room", "r")]),
            &[format!("token.{forged}")],
        )
        .await;
    assert!(
        matches!(result, Err(HandlerError::Refused { status: 401, .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn signaling_tokens_open_only_their_topics() {
    let h = secured();
    let team = token(Claims {
        room: None,
        rooms: Some(vec!["team/*".into()]),
        ..for_room("")
    });
    h.handler
        .on_connect("s", ENDPOINT, &query(&[("token", &team)]))
        .await
        .unwrap();
    let subscribe = |topic: &str| format!(r#"{{"type":"subscribe","topics":["{topic}"]}}"#);
    h.handler
        .on_message("s", ENDPOINT, &subscribe("team/a"))
        .await
        .unwrap();
    // A topic the token does not open is ignored (closing would send y-webrtc into a tight
    // reconnect loop): no membership, the connection kept.
    h.handler
        .on_message("s", ENDPOINT, &subscribe("other"))
        .await
        .unwrap();
    let topic = |t: &str| Scope::Topic(t.into());
    let connections = &h.handler.ports.connections;
    assert_eq!(
        connections.members(&topic("team/a")).await.unwrap().len(),
        1
    );
    assert!(connections
        .members(&topic("other"))
        .await
        .unwrap()
        .is_empty());
    // Publishing into a topic the token does not open reaches nobody.
    h.handler
        .on_connect(
            "p",
            ENDPOINT,
            &query(&[("token", &token(for_room("other")))]),
        )
        .await
        .unwrap();
    h.handler
        .on_message("p", ENDPOINT, &subscribe("other"))
        .await
        .unwrap();
    h.take_text("p");
    let publish = r#"{"type":"publish","topic":"other","data":"x"}"#;
    h.handler.on_message("s", ENDPOINT, publish).await.unwrap();
    assert!(h.take_text("p").is_empty(), "the publish was dropped");
    assert!(h.fanout.closed.lock().unwrap().is_empty());
    // A read-only token cannot be enforced between WebRTC peers: refused at `$connect`.
    let ro = token(Claims {
        access: Some(Access::Ro),
        ..for_room("team/a")
    });
    let result = h
        .handler
        .on_connect("r", ENDPOINT, &query(&[("token", &ro)]))
        .await;
    assert_eq!(status(result), Some(403));
}
