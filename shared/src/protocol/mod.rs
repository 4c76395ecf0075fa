//! Wire protocols: the y-websocket protocol (binary, carried as base64 text frames because API
//! Gateway refuses binary frames) and y-webrtc's JSON signaling protocol.
pub mod pieces;
pub mod relay;
pub mod signaling;
pub mod transport;
pub mod ywebsocket;

/// What a text frame carries. JSON objects are signaling; anything else must be base64 y-websocket.
/// The base64 alphabet has no `{`, so the first character decides unambiguously.
pub fn is_signaling_frame(text: &str) -> bool {
    text.trim_start().starts_with('{')
}
