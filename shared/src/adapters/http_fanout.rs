//! Fanout through an HTTP `@connections` management API without request signing: the one
//! `ylambda dev` serves. (On AWS the management API needs SigV4; that adapter uses the SDK.)
use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::ports::{Fanout, FanoutError};

pub struct HttpFanout {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpFanout {
    fn default() -> Self {
        HttpFanout {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl HttpFanout {
    pub fn new() -> Self {
        Self::default()
    }

    async fn call(
        &self,
        method: Method,
        endpoint: &str,
        connection_id: &str,
        body: Bytes,
    ) -> Result<(), FanoutError> {
        let uri = connection_uri(endpoint, connection_id);
        let request = Request::builder()
            .method(method)
            .uri(&uri)
            .body(Full::new(body))
            .map_err(|e| FanoutError::Failed(format!("bad management URI {uri}: {e}")))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| FanoutError::Failed(format!("{uri}: {e}")))?;
        let status = response.status();
        if status == StatusCode::GONE {
            return Err(FanoutError::Gone(connection_id.to_string()));
        }
        if !status.is_success() {
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            return Err(FanoutError::Failed(format!("{uri}: {status} {body}")));
        }
        Ok(())
    }
}

/// `{endpoint}/@connections/{id}`, the id percent-encoded (API Gateway ids end in `=`).
fn connection_uri(endpoint: &str, connection_id: &str) -> String {
    let mut encoded = String::with_capacity(connection_id.len() * 3);
    for b in connection_id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    // The local gateway speaks plain HTTP; an https endpoint derived from the event means the
    // caller is on AWS and should use the SDK fanout instead.
    let endpoint = endpoint.trim_end_matches('/');
    format!("{endpoint}/@connections/{encoded}")
}

#[async_trait]
impl Fanout for HttpFanout {
    async fn post(
        &self,
        endpoint: &str,
        connection_id: &str,
        text: &str,
    ) -> Result<(), FanoutError> {
        self.call(
            Method::POST,
            endpoint,
            connection_id,
            Bytes::copy_from_slice(text.as_bytes()),
        )
        .await
    }

    async fn close(&self, endpoint: &str, connection_id: &str) -> Result<(), FanoutError> {
        self.call(Method::DELETE, endpoint, connection_id, Bytes::new())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_percent_encoded() {
        assert_eq!(
            connection_uri("http://127.0.0.1:4001/local/", "Ab+c/d="),
            "http://127.0.0.1:4001/local/@connections/Ab%2Bc%2Fd%3D"
        );
    }
}
