//! Identifiers shaped like API Gateway's, so client and handler code never depends on a format
//! only the local gateway produces.
use rand::distr::{Alphanumeric, SampleString};

/// A connection id: API Gateway's are 16 characters ending in `=` (`TWegAcC4EowCHnA=`). The `=`
/// matters: it must be URL-encoded in `@connections/{id}` paths, and local runs should catch code
/// that forgets to.
pub fn connection_id() -> String {
    let mut id = Alphanumeric.sample_string(&mut rand::rng(), 15);
    id.push('=');
    id
}

/// A request or message id, same shape as a connection id (as in real events).
pub fn request_id() -> String {
    connection_id()
}

/// An API id like `gy415nuibc`: ten lowercase alphanumerics, chosen once per server.
pub fn api_id() -> String {
    Alphanumeric
        .sample_string(&mut rand::rng(), 10)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_api_gateway() {
        let id = connection_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('='));
        assert!(id[..15].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(id, connection_id());
        let api = api_id();
        assert_eq!(api.len(), 10);
        assert!(api
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }
}
