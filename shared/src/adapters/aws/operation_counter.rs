//! Counting AWS requests by action, for the tests that pin what a user action costs.
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Counts AWS requests by action (`dynamodb:Query`, `s3:PutObject`, ...): attach one to every
/// client and read [`OperationCounter::snapshot`] to see what a user action costs. Clones share
/// the counts.
///
/// Counted once per attempt, just before it is sent, so retries count: they are billed too.
#[derive(Clone, Default)]
pub struct OperationCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl fmt::Debug for OperationCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationCounter")
            .field("counts", &self.snapshot())
            .finish()
    }
}

impl OperationCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests sent so far, by `service:Operation` (IAM action names).
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.lock().clone()
    }

    /// Requests sent so far for one `service:Operation`.
    pub fn get(&self, action: &str) -> u64 {
        self.lock().get(action).copied().unwrap_or(0)
    }

    /// Total requests sent so far.
    pub fn total(&self) -> u64 {
        self.lock().values().sum()
    }

    /// Clears the counts (e.g. between user actions being measured).
    pub fn reset(&self) {
        self.lock().clear();
    }

    pub fn attach_dynamodb(
        &self,
        builder: aws_sdk_dynamodb::config::Builder,
    ) -> aws_sdk_dynamodb::config::Builder {
        builder.interceptor(self.clone())
    }

    pub fn attach_s3(&self, builder: aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder {
        builder.interceptor(self.clone())
    }

    pub fn attach_management(
        &self,
        builder: aws_sdk_apigatewaymanagement::config::Builder,
    ) -> aws_sdk_apigatewaymanagement::config::Builder {
        builder.interceptor(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        // Plain counters: a panic elsewhere while holding the lock cannot leave them inconsistent.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, action: String) {
        *self.lock().entry(action).or_insert(0) += 1;
    }
}

/// The action a request performs. JSON protocols (DynamoDB) name it on the wire in `X-Amz-Target`
/// (`DynamoDB_20120810.Query`), which is what the service bills; REST protocols (S3, the
/// management API) have no such header, so the SDK's operation metadata names it.
fn action_name(target: Option<&str>, metadata: Option<&Metadata>) -> String {
    if let Some((service, operation)) = target.and_then(|t| t.split_once('.')) {
        let service = service.split('_').next().unwrap_or(service);
        return format!("{}:{operation}", service.to_ascii_lowercase());
    }
    match metadata {
        Some(m) => format!("{}:{}", m.service().to_ascii_lowercase(), m.name()),
        None => "unknown:unknown".to_string(),
    }
}

impl Intercept for OperationCounter {
    fn name(&self) -> &'static str {
        "ylambda::OperationCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context.request().headers().get("x-amz-target");
        self.record(action_name(target, cfg.load::<Metadata>()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names() {
        let meta = Metadata::new("PutObject", "S3");
        assert_eq!(
            action_name(Some("DynamoDB_20120810.Query"), None),
            "dynamodb:Query"
        );
        assert_eq!(action_name(None, Some(&meta)), "s3:PutObject");
        assert_eq!(action_name(None, None), "unknown:unknown");
    }

    #[test]
    fn counter_clones_share_counts() {
        let a = OperationCounter::new();
        let b = a.clone();
        a.record("dynamodb:Query".into());
        b.record("dynamodb:Query".into());
        b.record("s3:GetObject".into());
        assert_eq!(a.get("dynamodb:Query"), 2);
        assert_eq!(a.total(), 3);
        a.reset();
        assert!(b.snapshot().is_empty());
    }
}
