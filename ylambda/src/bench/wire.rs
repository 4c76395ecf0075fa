//! How the load generator talks to each kind of server: the URL a client of room R opens, how
//! a y-websocket message travels in a frame, and which sync messages a received frame holds.
use std::fmt;
use std::str::FromStr;

use tokio_tungstenite::tungstenite::Message;
use ylambda_shared::codec::{write_var_uint, Reader};
use ylambda_shared::protocol::transport::{decode_frame, encode_frame};
use ylambda_shared::protocol::ywebsocket::{decode_messages, Incoming};
use yrs::StateVector;

/// Hocuspocus' message types (`@hocuspocus/common`): sync and auth are the ones a client needs.
const HOCUSPOCUS_SYNC: u64 = 0;
const HOCUSPOCUS_AUTH: u64 = 2;
/// The auth message's "token" sub-type.
const HOCUSPOCUS_AUTH_TOKEN: u64 = 0;

/// A server's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// API Gateway WebSocket (ylambda dev, a deployed stage): each y-websocket message is the
    /// base64 text of one text frame; the room is `?room=`.
    ApiGateway,
    /// The y-websocket protocol as the reference server (`@y/websocket-server`) speaks it: binary
    /// frames, the room is the URL's path.
    YWebsocket,
    /// Hocuspocus: binary frames, each message prefixed with its document's name, one socket may
    /// carry many documents; an auth message opens each document.
    Hocuspocus,
    /// y-sweet (`y-sweet serve`): the y-websocket protocol in binary frames, on the path its
    /// client library opens, `/d/{doc}/ws/{doc}` (without `--auth` the server creates a
    /// document at its first connection, so no `POST /doc/new` is needed).
    YSweet,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("unknown protocol {0:?} (apigw, ywebsocket, hocuspocus or ysweet)")]
    UnknownProtocol(String),
    #[error("a text frame where {0} sends binary ones")]
    UnexpectedText(Wire),
    #[error("a binary frame where {0} sends text ones")]
    UnexpectedBinary(Wire),
    #[error("undecodable frame: {0}")]
    Undecodable(String),
}

impl FromStr for Wire {
    type Err = WireError;

    fn from_str(s: &str) -> Result<Wire, WireError> {
        match s {
            "apigw" | "api-gateway" => Ok(Wire::ApiGateway),
            "ywebsocket" | "y-websocket" => Ok(Wire::YWebsocket),
            "hocuspocus" => Ok(Wire::Hocuspocus),
            "ysweet" | "y-sweet" => Ok(Wire::YSweet),
            other => Err(WireError::UnknownProtocol(other.to_string())),
        }
    }
}

impl fmt::Display for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Wire::ApiGateway => "apigw",
            Wire::YWebsocket => "ywebsocket",
            Wire::Hocuspocus => "hocuspocus",
            Wire::YSweet => "ysweet",
        })
    }
}

/// A sync message a client acts on; awareness and everything else is ignored.
#[derive(Debug, PartialEq)]
pub enum SyncIn {
    Step1(StateVector),
    Step2(Vec<u8>),
    Update(Vec<u8>),
}

impl Wire {
    /// The URL a client of `room` opens, given the server's base URL.
    pub fn url(self, base: &str, room: &str) -> String {
        let base = base.trim_end_matches('/');
        match self {
            // API Gateway's URL is the stage; as the client adapter does, no slash goes between a
            // stage path and the query (`wss://x/prod?room=R`), one does after a bare host.
            Wire::ApiGateway => {
                let has_path = base
                    .split_once("://")
                    .is_some_and(|(_, rest)| rest.contains('/'));
                let slash = if has_path { "" } else { "/" };
                format!("{base}{slash}?room={room}")
            }
            Wire::YWebsocket => format!("{base}/{room}"),
            Wire::YSweet => format!("{base}/d/{room}/ws/{room}"),
            Wire::Hocuspocus => base.to_string(),
        }
    }

    /// Frames sent before the first sync message: Hocuspocus waits for an auth message (an empty
    /// token when the server has no `onAuthenticate`).
    pub fn opening(self, room: &str) -> Vec<Message> {
        match self {
            Wire::Hocuspocus => {
                let mut out = Vec::new();
                write_var_str(&mut out, room);
                write_var_uint(&mut out, HOCUSPOCUS_AUTH);
                write_var_uint(&mut out, HOCUSPOCUS_AUTH_TOKEN);
                write_var_str(&mut out, "");
                vec![Message::binary(out)]
            }
            Wire::ApiGateway | Wire::YWebsocket | Wire::YSweet => Vec::new(),
        }
    }

    /// One y-websocket message (from `ylambda_shared::protocol::ywebsocket`'s encoders) as a frame.
    pub fn frame(self, room: &str, message: &[u8]) -> Message {
        match self {
            Wire::ApiGateway => Message::text(encode_frame(message)),
            Wire::YWebsocket | Wire::YSweet => Message::binary(message.to_vec()),
            Wire::Hocuspocus => {
                let mut out = Vec::with_capacity(room.len() + 1 + message.len());
                write_var_str(&mut out, room);
                out.extend_from_slice(message);
                Message::binary(out)
            }
        }
    }

    /// The sync messages in a received frame (none for pings, closes, awareness, auth answers).
    pub fn sync_messages(self, frame: &Message) -> Result<Vec<SyncIn>, WireError> {
        let bytes = match (self, frame) {
            (Wire::ApiGateway, Message::Text(text)) => {
                decode_frame(text).map_err(|e| WireError::Undecodable(e.to_string()))?
            }
            (Wire::ApiGateway, Message::Binary(_)) => {
                return Err(WireError::UnexpectedBinary(self))
            }
            (_, Message::Text(_)) => return Err(WireError::UnexpectedText(self)),
            (_, Message::Binary(bytes)) => bytes.to_vec(),
            _ => return Ok(Vec::new()),
        };
        let messages = match self {
            Wire::ApiGateway | Wire::YWebsocket | Wire::YSweet => bytes.as_slice(),
            Wire::Hocuspocus => {
                // name, then one message; only sync messages use the y-websocket layout (auth
                // answers, sync statuses and stateless messages have their own).
                let mut reader = Reader::new(&bytes);
                reader.read_var_str("document name").map_err(undecodable)?;
                let start = reader.pos();
                if reader.read_var_u64("message type").map_err(undecodable)? != HOCUSPOCUS_SYNC {
                    return Ok(Vec::new());
                }
                &bytes[start..]
            }
        };
        let decoded = decode_messages(messages).map_err(undecodable)?;
        Ok(decoded
            .into_iter()
            .filter_map(|message| match message {
                Incoming::SyncStep1(sv) => Some(SyncIn::Step1(sv)),
                Incoming::SyncStep2(update) => Some(SyncIn::Step2(update)),
                Incoming::Update(update) => Some(SyncIn::Update(update)),
                _ => None,
            })
            .collect())
    }
}

fn undecodable(error: impl fmt::Display) -> WireError {
    WireError::Undecodable(error.to_string())
}

fn write_var_str(out: &mut Vec<u8>, s: &str) {
    write_var_uint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use ylambda_shared::protocol::ywebsocket::{encode_sync_step1, encode_update};

    #[test]
    fn urls_name_the_room_as_each_server_expects() {
        let apigw = Wire::ApiGateway;
        assert_eq!(
            apigw.url("ws://127.0.0.1:4001", "r"),
            "ws://127.0.0.1:4001/?room=r"
        );
        assert_eq!(
            apigw.url("ws://127.0.0.1:4001/", "r"),
            "ws://127.0.0.1:4001/?room=r"
        );
        assert_eq!(
            apigw.url("wss://x.example/prod", "r"),
            "wss://x.example/prod?room=r"
        );
        assert_eq!(Wire::YWebsocket.url("ws://h:1/", "r"), "ws://h:1/r");
        assert_eq!(Wire::YSweet.url("ws://h:1", "r"), "ws://h:1/d/r/ws/r");
        assert_eq!(Wire::Hocuspocus.url("ws://h:1", "r"), "ws://h:1");
    }

    #[test]
    fn frames_round_trip_through_each_wire() {
        let update = vec![1, 2, 3];
        for wire in [
            Wire::ApiGateway,
            Wire::YWebsocket,
            Wire::Hocuspocus,
            Wire::YSweet,
        ] {
            let frame = wire.frame("room", &encode_update(&update));
            assert_eq!(
                wire.sync_messages(&frame).unwrap(),
                vec![SyncIn::Update(update.clone())],
                "{wire}"
            );
        }
        let step1 =
            Wire::YWebsocket.frame("r", &encode_sync_step1(&StateVector::default().encode_v1()));
        assert_eq!(
            Wire::YWebsocket.sync_messages(&step1).unwrap(),
            vec![SyncIn::Step1(StateVector::default())]
        );
    }

    #[test]
    fn hocuspocus_non_sync_messages_are_skipped_and_the_auth_names_the_document() {
        let opening = Wire::Hocuspocus.opening("doc");
        let Message::Binary(bytes) = &opening[0] else {
            panic!("binary expected")
        };
        assert_eq!(bytes.as_ref(), &[3, b'd', b'o', b'c', 2, 0, 0]);
        // An "authenticated" answer (type 2, sub-type 2, scope): not a sync message.
        let answer = Message::binary(vec![3, b'd', b'o', b'c', 2, 2, 0]);
        assert_eq!(Wire::Hocuspocus.sync_messages(&answer).unwrap(), vec![]);
    }

    #[test]
    fn wrong_frame_kinds_and_garbage_are_errors() {
        let text = Message::text("AAEC");
        assert!(Wire::YWebsocket.sync_messages(&text).is_err());
        assert!(Wire::ApiGateway
            .sync_messages(&Message::binary(vec![0, 2]))
            .is_err());
        assert!(Wire::ApiGateway
            .sync_messages(&Message::text("not base64!"))
            .is_err());
        assert!("websocket".parse::<Wire>().is_err());
    }

    use yrs::updates::encoder::Encode;
}
