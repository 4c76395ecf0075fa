//! Fanout through API Gateway's `@connections` management API (SigV4-signed, via the SDK).
//!
//! The endpoint comes with every membership (`https://{domain}/{stage}`, taken from the event
//! that created it), so one Lambda may talk to several; each gets its own client, built once and
//! cached for the life of the process (clients hold connection pools worth reusing).
use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_types::SdkConfig;

#[cfg(any(test, feature = "conformance"))]
use super::OperationCounter;
use crate::ports::{Fanout, FanoutError};

pub struct ManagementApiFanout {
    config: SdkConfig,
    #[cfg(any(test, feature = "conformance"))]
    counter: Option<OperationCounter>,
    /// Normalised endpoint -> client.
    clients: Mutex<HashMap<String, Client>>,
}

impl ManagementApiFanout {
    pub fn new(config: &SdkConfig) -> Self {
        ManagementApiFanout {
            config: config.clone(),
            #[cfg(any(test, feature = "conformance"))]
            counter: None,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Counts every management API request (`apigatewaymanagementapi:PostToConnection`, ...).
    #[cfg(any(test, feature = "conformance"))]
    pub fn with_counter(mut self, counter: OperationCounter) -> Self {
        self.counter = Some(counter);
        self
    }

    /// The cached client for `endpoint`, built on first use. The endpoint given here overrides
    /// any `AWS_ENDPOINT_URL` in the shared config: posts must reach the API that holds the
    /// connection.
    fn client_for(&self, endpoint: &str) -> Result<Client, FanoutError> {
        // `{endpoint}/@connections/{id}` is appended by the SDK: a trailing slash would double.
        let endpoint = endpoint.trim_end_matches('/');
        if endpoint.is_empty() {
            return Err(FanoutError::Failed("empty management endpoint".into()));
        }
        // No await while locked; a poisoned map of clients is still a valid cache.
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(endpoint) {
            return Ok(client.clone());
        }
        #[cfg_attr(not(any(test, feature = "conformance")), allow(unused_mut))]
        let mut builder = aws_sdk_apigatewaymanagement::config::Builder::from(&self.config)
            .endpoint_url(endpoint);
        #[cfg(any(test, feature = "conformance"))]
        if let Some(counter) = &self.counter {
            builder = counter.attach_management(builder);
        }
        let client = Client::from_conf(builder.build());
        tracing::debug!(endpoint, "management API client created");
        clients.insert(endpoint.to_string(), client.clone());
        Ok(client)
    }

    #[cfg(test)]
    fn cached_clients(&self) -> usize {
        self.clients.lock().map(|c| c.len()).unwrap_or(0)
    }
}

#[async_trait]
impl Fanout for ManagementApiFanout {
    async fn post(
        &self,
        endpoint: &str,
        connection_id: &str,
        text: &str,
    ) -> Result<(), FanoutError> {
        let client = self.client_for(endpoint)?;
        match client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(text.as_bytes()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let gone = e.as_service_error().is_some_and(|s| s.is_gone_exception())
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 410);
                if gone {
                    Err(FanoutError::Gone(connection_id.to_string()))
                } else {
                    Err(FanoutError::Failed(format!(
                        "PostToConnection {connection_id:?} at {endpoint}: {}",
                        DisplayErrorContext(e)
                    )))
                }
            }
        }
    }

    async fn close(&self, endpoint: &str, connection_id: &str) -> Result<(), FanoutError> {
        let client = self.client_for(endpoint)?;
        match client
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Already closed: what the caller wanted.
            Err(e)
                if e.as_service_error().is_some_and(|s| s.is_gone_exception())
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 410) =>
            {
                Ok(())
            }
            Err(e) => Err(FanoutError::Failed(format!(
                "DeleteConnection {connection_id:?} at {endpoint}: {}",
                DisplayErrorContext(e)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_per_endpoint() {
        let config = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let fanout = ManagementApiFanout::new(&config);
        fanout.client_for("https://a.example/prod").unwrap();
        fanout.client_for("https://a.example/prod/").unwrap();
        assert_eq!(fanout.cached_clients(), 1, "trailing slash is the same API");
        fanout.client_for("https://b.example/prod").unwrap();
        assert_eq!(fanout.cached_clients(), 2);
        assert!(fanout.client_for("").is_err());
    }
}
