//! What travels on a room's or a topic's relay channel (Redis pub/sub, or the embedded doc
//! store's broadcast channel): one message that `ylambda serve` instances deliver to their own
//! clients of that room or topic (ARCHITECTURE.md invariant 25).
//!
//! The channel carries the connection a message came from, so an instance does not echo a
//! client's own update back to it (API Gateway connections are posted to directly, with the
//! same exception). Layout: one kind byte, the origin connection id as a lib0 var-string (empty:
//! from no connection, e.g. the HTTP API or a departure), then the payload to the end.
use crate::codec::{write_var_buf, CodecError, Reader};

/// What a relayed payload is, and so how a direct client gets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayKind {
    /// A y-websocket message (binary), for the room's clients.
    Doc,
    /// A y-webrtc signaling message (JSON text), for the topic's subscribers.
    Signaling,
}

impl RelayKind {
    fn tag(self) -> u8 {
        match self {
            RelayKind::Doc => 1,
            RelayKind::Signaling => 2,
        }
    }
}

/// One channel message, borrowed from its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relayed<'a> {
    pub kind: RelayKind,
    /// The connection that sent it, which must not get it back.
    pub from: Option<&'a str>,
    pub payload: &'a [u8],
}

/// Encodes a channel message.
pub fn encode_relay(kind: RelayKind, from: Option<&str>, payload: &[u8]) -> Vec<u8> {
    let from = from.unwrap_or("");
    let mut out = Vec::with_capacity(payload.len() + from.len() + 6);
    out.push(kind.tag());
    write_var_buf(&mut out, from.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Decodes a channel message. The channel is ours, but Redis is shared: anything else published
/// on it is refused, never trusted.
pub fn decode_relay(bytes: &[u8]) -> Result<Relayed<'_>, CodecError> {
    let mut reader = Reader::new(bytes);
    let kind = match reader.read_u8("relay kind")? {
        1 => RelayKind::Doc,
        2 => RelayKind::Signaling,
        other => return Err(reader.invalid("relay kind", format!("unknown kind {other}"))),
    };
    let from = reader.read_var_str("relay origin")?;
    let payload = bytes.get(reader.pos()..).unwrap_or_default();
    if kind == RelayKind::Signaling && std::str::from_utf8(payload).is_err() {
        return Err(reader.invalid("relay payload", "signaling message is not UTF-8"));
    }
    Ok(Relayed {
        kind,
        from: (!from.is_empty()).then_some(from),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_and_without_an_origin() {
        let update = [0u8, 2, 3, 1, 2, 3];
        let encoded = encode_relay(RelayKind::Doc, Some("conn-1"), &update);
        let decoded = decode_relay(&encoded).expect("decodes");
        assert_eq!(decoded.kind, RelayKind::Doc);
        assert_eq!(decoded.from, Some("conn-1"));
        assert_eq!(decoded.payload, update);

        let json = br#"{"type":"publish","topic":"t"}"#;
        let encoded = encode_relay(RelayKind::Signaling, None, json);
        let decoded = decode_relay(&encoded).expect("decodes");
        assert_eq!(decoded.kind, RelayKind::Signaling);
        assert_eq!(decoded.from, None);
        assert_eq!(decoded.payload, json);
    }

    #[test]
    fn foreign_bytes_are_refused() {
        assert!(decode_relay(&[]).is_err());
        assert!(decode_relay(&[9, 0]).is_err());
        // An origin longer than the message.
        assert!(decode_relay(&[1, 50, b'a']).is_err());
        // Signaling that is not text.
        assert!(decode_relay(&[2, 0, 0xff, 0xfe]).is_err());
    }
}
