//! How the gateway runs a route: the [`Invoker`] port and what a shutdown reports. A leaf
//! module, so the gateway and the invokers (the in-process handler in `gateway`, the Lambda
//! processes in `lambdas`) depend on it and never on each other.
use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

/// Runs API Gateway WebSocket events the way API Gateway invokes its Lambda integrations.
#[async_trait]
pub trait Invoker: Send + Sync + 'static {
    /// Runs one event (any route) and returns the integration's response. Failures are answered
    /// as API Gateway reports a failed integration (a 5xx response), never as an error.
    async fn invoke(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse;

    /// Called once on shutdown, after every connection's `$disconnect` ran (or the grace period
    /// ended). `rooms`: every room a connection joined since start.
    async fn shutdown(&self, rooms: Vec<String>, report: &mut ShutdownReport);
}

/// What a shutdown did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections open when shutdown began (each closed with 1001 and given its `$disconnect`).
    pub connections_closed: usize,
    /// Connections still open when the grace period ran out.
    pub connections_abandoned: usize,
    /// Rooms compacted successfully / that failed to compact.
    pub rooms_compacted: usize,
    pub rooms_failed: usize,
}
