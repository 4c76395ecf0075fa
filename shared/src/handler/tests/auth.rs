//! Access control at `$connect`: no token, a bad one or one for other rooms is refused before
//! anything is stored; a read-only token is enforced; the records die with the token.
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
    // The read-only connection's update is dropped.
    h.send(
        "ro",
        &ywebsocket::encode_update(&Client::new(1).insert(0, "nope")),
    )
    .await
    .unwrap();
    assert!(h.docs.read_log("r").await.unwrap().updates.is_empty());
}

#[tokio::test]
async fn the_records_of_a_connection_end_with_its_token() {
    let h = secured();
    let short = token(Claims {
        exp: unix_now_secs() + 30,
        ..for_room("r")
    });
    h.handler
        .on_connect("c", ENDPOINT, &query(&[("room", "r"), ("token", &short)]))
        .await
        .unwrap();
    let members = h.members("r").await;
    assert!(
        members[0].expires_at <= unix_now_secs() + 30,
        "{:?}",
        members[0]
    );
}
