//! y-webrtc's signaling protocol: JSON text frames, as y-webrtc's `bin/server.js` speaks it.
use serde_json::{Map, Value};

/// Most topics one subscribe/unsubscribe may name; y-webrtc sends one per room.
pub const MAX_TOPICS_PER_MESSAGE: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignalingError {
    #[error("signaling frame is not valid JSON: {0}")]
    BadJson(String),
    #[error("signaling message is not a JSON object")]
    NotAnObject,
    #[error("signaling message field {field:?} is invalid: {reason}")]
    BadField { field: &'static str, reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum SignalingMessage {
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
    /// The whole message object is relayed as received (plus `clients`), so extra fields survive.
    Publish {
        topic: String,
        message: Map<String, Value>,
    },
    Ping,
    /// A `type` this server does not know: ignored, as the reference server does.
    Unknown(String),
}

pub fn decode(text: &str) -> Result<SignalingMessage, SignalingError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| SignalingError::BadJson(e.to_string()))?;
    let Value::Object(object) = value else {
        return Err(SignalingError::NotAnObject);
    };
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => {
            return Err(SignalingError::BadField {
                field: "type",
                reason: "missing or not a string".into(),
            })
        }
    };
    Ok(match kind.as_str() {
        "subscribe" => SignalingMessage::Subscribe(topics(&object)?),
        "unsubscribe" => SignalingMessage::Unsubscribe(topics(&object)?),
        "publish" => match object.get("topic") {
            Some(Value::String(topic)) if !topic.is_empty() => SignalingMessage::Publish {
                topic: topic.clone(),
                message: object,
            },
            _ => {
                return Err(SignalingError::BadField {
                    field: "topic",
                    reason: "missing, empty or not a string".into(),
                })
            }
        },
        "ping" => SignalingMessage::Ping,
        _ => SignalingMessage::Unknown(kind),
    })
}

fn topics(object: &Map<String, Value>) -> Result<Vec<String>, SignalingError> {
    let bad = |reason: &str| SignalingError::BadField {
        field: "topics",
        reason: reason.to_string(),
    };
    let Some(Value::Array(items)) = object.get("topics") else {
        return Err(bad("missing or not an array"));
    };
    if items.len() > MAX_TOPICS_PER_MESSAGE {
        return Err(bad(&format!("more than {MAX_TOPICS_PER_MESSAGE} topics")));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(t) if !t.is_empty() => {
                if !out.contains(t) {
                    out.push(t.clone())
                }
            }
            _ => return Err(bad("every topic must be a non-empty string")),
        }
    }
    Ok(out)
}

/// The relayed form of a publish: the message as received with `clients` set to the number of
/// subscribers it goes to.
pub fn encode_publish(message: &Map<String, Value>, clients: usize) -> String {
    let mut message = message.clone();
    message.insert("clients".into(), Value::from(clients));
    Value::Object(message).to_string()
}

pub fn encode_pong() -> String {
    r#"{"type":"pong"}"#.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_y_webrtc_sends() {
        assert_eq!(
            decode(r#"{"type":"subscribe","topics":["a","b","a"]}"#).unwrap(),
            SignalingMessage::Subscribe(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            decode(r#"{"type":"unsubscribe","topics":["a"]}"#).unwrap(),
            SignalingMessage::Unsubscribe(vec!["a".into()])
        );
        assert_eq!(
            decode(r#"{"type":"ping"}"#).unwrap(),
            SignalingMessage::Ping
        );
        let SignalingMessage::Publish { topic, message } =
            decode(r#"{"type":"publish","topic":"t","data":{"type":"announce","from":"x"}}"#)
                .unwrap()
        else {
            panic!("not a publish")
        };
        assert_eq!(topic, "t");
        let relayed: Value = serde_json::from_str(&encode_publish(&message, 3)).unwrap();
        assert_eq!(relayed["clients"], 3);
        assert_eq!(relayed["data"]["from"], "x");
        assert_eq!(relayed["type"], "publish");
    }

    #[test]
    fn unknown_type_is_not_an_error() {
        assert_eq!(
            decode(r#"{"type":"hello"}"#).unwrap(),
            SignalingMessage::Unknown("hello".into())
        );
    }

    #[test]
    fn bad_input_is_refused_clearly() {
        assert!(matches!(decode("{nope"), Err(SignalingError::BadJson(_))));
        assert_eq!(decode("[1]"), Err(SignalingError::NotAnObject));
        assert!(matches!(
            decode(r#"{"topics":["a"]}"#),
            Err(SignalingError::BadField { field: "type", .. })
        ));
        assert!(matches!(
            decode(r#"{"type":"subscribe","topics":"a"}"#),
            Err(SignalingError::BadField {
                field: "topics",
                ..
            })
        ));
        assert!(matches!(
            decode(r#"{"type":"subscribe","topics":[1]}"#),
            Err(SignalingError::BadField {
                field: "topics",
                ..
            })
        ));
        assert!(matches!(
            decode(r#"{"type":"publish","data":{}}"#),
            Err(SignalingError::BadField { field: "topic", .. })
        ));
        let many: Vec<String> = (0..300).map(|i| format!("\"t{i}\"")).collect();
        assert!(decode(&format!(
            r#"{{"type":"subscribe","topics":[{}]}}"#,
            many.join(",")
        ))
        .is_err());
    }

    #[test]
    fn pong_is_what_y_webrtc_expects() {
        let v: Value = serde_json::from_str(&encode_pong()).unwrap();
        assert_eq!(v["type"], "pong");
    }
}
