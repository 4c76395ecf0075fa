use serde_json::Value;
use ylambda_shared::protocol::signaling::{
    decode, encode_publish, SignalingMessage, MAX_TOPICS_PER_MESSAGE,
};

/// A y-webrtc signaling text frame (bytes that are not UTF-8 are replaced, as a WebSocket text
/// frame could not carry them), through `signaling::decode`.
///
/// Properties: subscribe / unsubscribe name 1..=256 distinct non-empty topics at most; a publish
/// has a non-empty topic and its relayed form (`encode_publish`) decodes to the same publish,
/// with `clients` set.
pub fn signaling(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(message) = decode(&text) else {
        return;
    };
    match message {
        SignalingMessage::Subscribe(topics) | SignalingMessage::Unsubscribe(topics) => {
            assert!(topics.len() <= MAX_TOPICS_PER_MESSAGE, "too many topics");
            for (i, topic) in topics.iter().enumerate() {
                assert!(!topic.is_empty(), "empty topic");
                assert!(!topics[..i].contains(topic), "repeated topic {topic:?}");
            }
        }
        SignalingMessage::Publish { topic, message } => {
            assert!(!topic.is_empty(), "empty publish topic");
            let relayed = encode_publish(&message, 7);
            match decode(&relayed) {
                Ok(SignalingMessage::Publish {
                    topic: again,
                    message: relayed_message,
                }) => {
                    assert_eq!(again, topic, "relayed publish keeps its topic");
                    assert_eq!(relayed_message.get("clients"), Some(&Value::from(7)));
                }
                other => panic!("relayed publish {relayed:?} decodes to {other:?}"),
            }
        }
        SignalingMessage::Ping | SignalingMessage::Unknown(_) => {}
    }
}
