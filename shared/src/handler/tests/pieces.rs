//! Client messages in pieces: assembled once from pieces in any order, relayed in messages that
//! fit, and bad pieces refused with the connection closed.
use crate::protocol::pieces::split_into_pieces;

use super::*;

/// A paste of `chars` characters of mixed ASCII and non-ASCII text, as one update.
fn paste(client: &Client, chars: usize) -> Vec<u8> {
    let text: String = "Grüße, 世界! ✓ plain ascii words "
        .chars()
        .cycle()
        .take(chars)
        .collect();
    client.insert(0, &text)
}

#[tokio::test]
async fn a_message_in_pieces_is_handled_once_whatever_their_order() {
    let h = harness();
    h.join("a", "r").await;
    h.join("b", "r").await;
    let alice = Client::new(1);
    let update = paste(&alice, 200_000);
    let frame = encode_frame(&ywebsocket::encode_update(&update));
    assert!(frame.len() > h.handler.config().max_message_bytes);
    let mut pieces = split_into_pieces(&frame, "paste1", 32 * 1024).expect("pieces");
    assert!(pieces.len() > 4);
    // Last first, the rest reversed, one repeated: nothing happens before the last one.
    pieces.reverse();
    let repeated = pieces[1].clone();
    pieces.insert(2, repeated);
    let (last, rest) = pieces.split_last().expect("pieces");
    for piece in rest {
        h.handler.on_message("a", ENDPOINT, piece).await.unwrap();
        assert!(
            h.take_text("b").is_empty(),
            "relayed before the message was whole"
        );
    }
    h.handler.on_message("a", ENDPOINT, last).await.unwrap();
    // A piece repeated after completion is ignored.
    h.handler
        .on_message("a", ENDPOINT, &pieces[0])
        .await
        .unwrap();

    assert_eq!(
        h.docs.read_log("r").await.unwrap().updates.len(),
        1,
        "logged once"
    );
    let texts = h.take_text("b");
    assert!(texts.len() > 1, "relayed in several messages");
    for text in &texts {
        assert!(
            text.len() <= h.handler.config().max_message_bytes,
            "{} bytes",
            text.len()
        );
    }
    let bob = Client::new(2);
    bob.receive(
        &texts
            .iter()
            .flat_map(|t| decode_messages(&decode_frame(t).unwrap()).unwrap())
            .collect::<Vec<_>>(),
    );
    assert_eq!(bob.text(), alice.text());
    assert!(h.fanout.closed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn bad_pieces_close_the_connection_and_apply_nothing() {
    let h = harness_with(Config {
        max_open_messages: 3,
        max_assembled_bytes: 1000,
        ..Config::default()
    });
    h.join("a", "r").await;
    h.join("bad", "r").await;
    let update = encode_frame(&ywebsocket::encode_update(
        &Client::new(1).insert(0, "hello"),
    ));
    let (head, tail) = update.split_at(update.len() / 2);
    // Each piece, and the refusal it must get (`None`: accepted and kept waiting).
    let forged: Vec<(String, Option<&str>)> = vec![
        ("~1:x".into(), Some("malformed")),
        (format!("~2:m:0:2:{head}"), Some("version")),
        (format!("~1:m:2:2:{head}"), Some("out of range")),
        (format!("~1:m:0:99999:{head}"), Some("over the limit")),
        (format!("~1:c:0:2:{head}"), None),
        (format!("~1:c:1:3:{tail}"), Some("another piece count")),
        (format!("~1:o:0:2:{head}"), None),
        (format!("~1:o:0:2:{tail}"), Some("overlaps")),
        (
            format!("~1:big:0:2:{}", "Q".repeat(1400)),
            Some("larger than the limit"),
        ),
        (format!("~1:f1:0:3:{head}"), None),
        (format!("~1:f2:0:3:{head}"), Some("too many incomplete")),
    ];
    for (i, (body, expected)) in forged.iter().enumerate() {
        let result = h.handler.on_message("bad", ENDPOINT, body).await;
        match (expected, &result) {
            (None, Ok(())) => {}
            (Some(why), Err(HandlerError::BadRequest(reason))) if reason.contains(why) => {}
            _ => panic!("piece {i} ({body:.40}): expected {expected:?}, got {result:?}"),
        }
    }
    let refused = forged.iter().filter(|(_, why)| why.is_some()).count();
    assert_eq!(h.fanout.closed.lock().unwrap().len(), refused);
    // Each refusal was explained first, in a permission-denied message, with its reason.
    let denials: Vec<String> = h
        .take("bad")
        .into_iter()
        .filter_map(|m| match m {
            Incoming::Auth(Some(reason)) => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(denials.len(), refused, "{denials:?}");
    assert!(denials
        .iter()
        .all(|r| r.starts_with("ylambda: message refused: ")));
    assert!(
        denials
            .iter()
            .any(|r| r.contains("YLAMBDA_MAX_ASSEMBLED_BYTES")),
        "{denials:?}"
    );
    // A whole message from pieces of another connection's message is never assembled.
    h.handler
        .on_message("a", ENDPOINT, &format!("~1:c:1:2:{tail}"))
        .await
        .unwrap();
    assert!(
        h.docs.read_log("r").await.unwrap().updates.is_empty(),
        "nothing applied"
    );
    assert!(h.take_text("a").is_empty());
}
