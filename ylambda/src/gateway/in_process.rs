//! The in-process [`Invoker`]: the shared handler called directly, what `ylambda dev` does
//! without `--lambdas`.
use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body as LambdaBody;
use ylambda_shared::handler::Handler;
use ylambda_shared::lambda::handle_websocket_event;

use crate::invoker::{Invoker, ShutdownReport};

/// The handler in this process: what `ylambda dev` does without `--lambdas`.
pub struct InProcess {
    handler: Arc<Handler>,
}

impl InProcess {
    pub fn new(handler: Arc<Handler>) -> InProcess {
        InProcess { handler }
    }
}

#[async_trait]
impl Invoker for InProcess {
    /// The handler runs in a task of its own so that a handler panic becomes a 500, as a crashed
    /// Lambda becomes an error on API Gateway, instead of killing the connection task.
    async fn invoke(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let handler = self.handler.clone();
        let route = event.request_context.route_key.clone().unwrap_or_default();
        let invocation = tokio::spawn(async move { handle_websocket_event(&handler, event).await });
        match invocation.await {
            Ok(response) => response,
            Err(error) => {
                tracing::error!(route, %error, "handler panicked");
                let mut response = ApiGatewayProxyResponse::default();
                response.status_code = 500;
                response.body = Some(LambdaBody::Text("Internal server error".into()));
                response
            }
        }
    }

    /// Nothing in this process outlives it, so every room seen is compacted into its snapshot.
    async fn shutdown(&self, rooms: Vec<String>, report: &mut ShutdownReport) {
        for room in rooms {
            match self.handler.compact(&room).await {
                Ok(outcome) => {
                    report.rooms_compacted += 1;
                    tracing::info!(room, ?outcome, "compacted on shutdown");
                }
                Err(error) => {
                    report.rooms_failed += 1;
                    tracing::warn!(room, %error, "compaction on shutdown failed");
                }
            }
        }
    }
}
