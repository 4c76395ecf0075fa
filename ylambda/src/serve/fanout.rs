//! The handler's [`Fanout`] in a direct instance: its own connections get frames in their
//! outgoing queue, as binary y-websocket (the handler speaks API Gateway's base64 text frames)
//! or signaling text; API Gateway connections of a mixed room are posted to through the
//! management API, as a Lambda would. Other instances' connections are never posted to: they
//! hear the relay channel (invariant 25).
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use ylambda_shared::ports::{Fanout, FanoutError, DIRECT_ENDPOINT_PREFIX};
use ylambda_shared::protocol::is_signaling_frame;

use crate::gateway::connections::{DeliveryError, Outgoing, Registry};

pub struct DirectFanout {
    /// This instance's endpoint (`direct:{instance}`).
    endpoint: String,
    registry: Arc<Registry>,
    /// Posts to API Gateway connections (the management API on the aws backend).
    management: Option<Arc<dyn Fanout>>,
}

impl DirectFanout {
    pub fn new(
        endpoint: String,
        registry: Arc<Registry>,
        management: Option<Arc<dyn Fanout>>,
    ) -> Self {
        DirectFanout {
            endpoint,
            registry,
            management,
        }
    }

    fn remote(&self, endpoint: &str) -> Result<&dyn Fanout, FanoutError> {
        if endpoint.starts_with(DIRECT_ENDPOINT_PREFIX) {
            // Another instance's client: the handler never posts to one (it hears the channel).
            return Err(FanoutError::Failed(format!(
                "{endpoint} is another direct instance: its clients hear the relay channel"
            )));
        }
        self.management.as_deref().ok_or_else(|| {
            FanoutError::Failed(format!(
                "no management API on this backend to reach {endpoint}"
            ))
        })
    }
}

/// The frame a direct client gets for a handler's text frame.
fn outgoing(text: &str) -> Result<Outgoing, FanoutError> {
    if is_signaling_frame(text) {
        return Ok(Outgoing::Text(text.to_string()));
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(|bytes| Outgoing::Binary(Bytes::from(bytes)))
        .map_err(|e| FanoutError::Failed(format!("handler frame is not base64: {e}")))
}

fn delivery_error(connection_id: &str, e: DeliveryError) -> FanoutError {
    match e {
        DeliveryError::Gone => FanoutError::Gone(connection_id.to_string()),
        other => FanoutError::Failed(other.to_string()),
    }
}

#[async_trait]
impl Fanout for DirectFanout {
    async fn post(
        &self,
        endpoint: &str,
        connection_id: &str,
        text: &str,
    ) -> Result<(), FanoutError> {
        if endpoint != self.endpoint {
            return self
                .remote(endpoint)?
                .post(endpoint, connection_id, text)
                .await;
        }
        let frame = outgoing(text)?;
        self.registry
            .live(connection_id)
            .ok_or(DeliveryError::Gone)
            .and_then(|connection| connection.send(frame))
            .map_err(|e| delivery_error(connection_id, e))
    }

    async fn close(&self, endpoint: &str, connection_id: &str) -> Result<(), FanoutError> {
        if endpoint != self.endpoint {
            return self.remote(endpoint)?.close(endpoint, connection_id).await;
        }
        self.registry
            .disconnect(connection_id, "")
            .map_err(|e| delivery_error(connection_id, e))
    }
}
