//! API Gateway transport encoding: binary y-websocket messages travel as standard base64 text.
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

#[derive(Debug, thiserror::Error)]
#[error("frame is not valid base64: {0}")]
pub struct TransportError(#[from] base64::DecodeError);

/// Encodes one binary protocol message as the text of one frame.
pub fn encode_frame(message: &[u8]) -> String {
    STANDARD.encode(message)
}

/// Decodes the text of one frame. Surrounding whitespace (a trailing newline from a hand-typed
/// client) is tolerated; anything else that is not standard base64 is an error.
pub fn decode_frame(text: &str) -> Result<Vec<u8>, TransportError> {
    Ok(STANDARD.decode(text.trim())?)
}

/// The largest binary message whose base64 text fits in `max_text_bytes`.
pub fn max_binary_for_text(max_text_bytes: usize) -> usize {
    max_text_bytes / 4 * 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_binary() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        let text = encode_frame(&bytes);
        assert!(text.is_ascii());
        assert_eq!(decode_frame(&text).unwrap(), bytes);
        assert_eq!(decode_frame(&format!("{text}\n")).unwrap(), bytes);
    }

    #[test]
    fn rejects_non_base64() {
        assert!(decode_frame("not base64!").is_err());
        assert!(decode_frame("AAA").is_err());
    }

    #[test]
    fn binary_budget_fits_text_limit() {
        for limit in [1024usize, 1025, 1026, 1027, 131072] {
            let n = max_binary_for_text(limit);
            assert!(encode_frame(&vec![0u8; n]).len() <= limit);
            assert!(encode_frame(&vec![0u8; n + 3]).len() > limit);
        }
    }
}
