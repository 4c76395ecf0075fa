//! AWS adapters: DynamoDB connection store, S3 snapshot store, `@connections` management API
//! fanout. Clients are built once (cold start) from one [`SdkConfig`]; endpoints come only from the
//! standard `AWS_ENDPOINT_URL*` variables, so the same code talks to AWS, moto or LocalStack.
mod directory;
mod docs;
mod dynamodb;
mod items;
mod management;
// Test-only: the conformance suites and the cost model count requests and create tables;
// deployments get the table from the template and count nothing.
#[cfg(any(test, feature = "conformance"))]
mod operation_counter;
mod s3;
#[cfg(any(test, feature = "conformance"))]
mod table;

pub use directory::DIRECTORY_SHARDS;
pub use docs::DynamoDocStore;
pub use dynamodb::{DynamoConnectionStore, GSI_NAME, TTL_ATTRIBUTE};
pub use management::ManagementApiFanout;
#[cfg(any(test, feature = "conformance"))]
pub use operation_counter::OperationCounter;
pub use s3::S3SnapshotStore;
#[cfg(any(test, feature = "conformance"))]
pub use table::create_table;

use std::fmt;

use aws_config::BehaviorVersion;
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

/// The S3 config builder [`s3_client`] uses, for callers that add to it (e.g. the tests'
/// `OperationCounter`).
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

#[cfg(test)]
mod tests {
    use super::*;

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
