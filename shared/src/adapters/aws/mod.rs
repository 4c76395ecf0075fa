//! AWS adapters: DynamoDB connection store, S3 snapshot store, `@connections` management API
//! fanout. Clients are built once (cold start) from one [`SdkConfig`]; endpoints come only from the
//! standard `AWS_ENDPOINT_URL*` variables, so the same code talks to AWS, moto or LocalStack.
mod dynamodb;
mod management;
mod s3;

pub use dynamodb::{create_table, DynamoConnectionStore, GSI_NAME, TTL_ATTRIBUTE};
pub use management::ManagementApiFanout;
pub use s3::S3SnapshotStore;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aws_config::BehaviorVersion;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_types::service_config::ServiceConfigKey;
use aws_types::SdkConfig;

use crate::ports::StoreError;

/// Loads region, credentials and endpoints the standard way (environment, profile, instance role).
/// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_S3` point it at a local
/// emulator; nothing else in ylambda names an endpoint.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// A DynamoDB client from the shared config.
pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// An S3 client from the shared config, with path-style addressing whenever an endpoint is
/// configured: emulators (moto, LocalStack, MinIO) on `127.0.0.1:port` cannot serve
/// `{bucket}.127.0.0.1` virtual-host names.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(s3_config(config).build())
}

/// The S3 config builder [`s3_client`] uses, for callers that add to it (e.g. an
/// [`OperationCounter`]).
pub fn s3_config(config: &SdkConfig) -> aws_sdk_s3::config::Builder {
    let builder = aws_sdk_s3::config::Builder::from(config);
    if has_s3_endpoint(config) {
        builder.force_path_style(true)
    } else {
        builder
    }
}

/// Whether S3 requests go to a configured endpoint: the global `AWS_ENDPOINT_URL` (or
/// `endpoint_url` in the profile), or the S3-only `AWS_ENDPOINT_URL_S3` (or the profile's
/// `[services]` section), looked up the same way the S3 config builder does.
fn has_s3_endpoint(config: &SdkConfig) -> bool {
    if config.endpoint_url().is_some() {
        return true;
    }
    let key = ServiceConfigKey::builder()
        .service_id("S3")
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build();
    match (config.service_config(), key) {
        (Some(service_config), Ok(key)) => service_config.load_config(key).is_some(),
        _ => false,
    }
}

/// Maps an SDK error to a [`StoreError::Backend`] that says what was attempted and why it failed.
/// `DisplayErrorContext` prints the whole source chain (service code and message, or the
/// connection error), where `Display` alone often says only "service error".
pub(crate) fn backend_error<E>(what: impl fmt::Display, error: E) -> StoreError
where
    E: std::error::Error + 'static,
{
    StoreError::Backend(format!(
        "{what}: {}",
        aws_smithy_types::error::display::DisplayErrorContext(error)
    ))
}

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

    #[test]
    fn path_style_follows_the_endpoint() {
        let plain = SdkConfig::builder().build();
        assert!(!has_s3_endpoint(&plain));
        let local = SdkConfig::builder()
            .endpoint_url("http://127.0.0.1:5000")
            .build();
        assert!(has_s3_endpoint(&local));
    }
}
