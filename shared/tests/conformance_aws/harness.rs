//! The emulator's clients for one test, and an interceptor that audits DynamoDB Queries.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_types::SdkConfig;
use ylambda_shared::adapters::aws::{create_table, s3_config, sdk_config, OperationCounter};
use ylambda_shared::conformance::backends::{aws_tests_enabled, TestTable};
use ylambda_shared::conformance::unique;
use ylambda_shared::ports::Scope;

/// Clients for one test, all counting their requests.
pub(crate) struct Aws {
    pub(crate) config: SdkConfig,
    pub(crate) counter: OperationCounter,
    pub(crate) dynamodb: aws_sdk_dynamodb::Client,
    pub(crate) s3: aws_sdk_s3::Client,
}

/// The emulator's clients, or `None` (after saying why) when the backend tests are not enabled.
pub(crate) async fn aws(test: &str) -> Option<Aws> {
    if !aws_tests_enabled(test) {
        return None;
    }
    let config = sdk_config().await;
    let counter = OperationCounter::new();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        counter
            .attach_dynamodb(aws_sdk_dynamodb::config::Builder::from(&config))
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(counter.attach_s3(s3_config(&config)).build());
    Some(Aws {
        config,
        counter,
        dynamodb,
        s3,
    })
}

impl Aws {
    /// A table unique to this run, created through the adapter's own helper.
    pub(crate) async fn fresh_table(&self) -> TestTable {
        let table = TestTable::create(&self.dynamodb, "ylambda-test").await;
        // Idempotent: a second call checks the existing table and succeeds.
        create_table(&self.dynamodb, table.name())
            .await
            .unwrap_or_else(|e| panic!("create_table {} again: {e}", table.name()));
        self.counter.reset();
        table
    }

    pub(crate) async fn fresh_bucket(&self) -> String {
        let bucket = unique("ylambda-test");
        self.s3
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "create bucket {bucket}: {}",
                    aws_smithy_types::error::display::DisplayErrorContext(e)
                )
            });
        self.counter.reset();
        bucket
    }

    /// The raw item of one membership, bypassing the adapter's expiry filter.
    pub(crate) async fn raw_item(
        &self,
        table: &str,
        scope: &Scope,
        connection_id: &str,
    ) -> Option<HashMap<String, AttributeValue>> {
        self.dynamodb
            .get_item()
            .table_name(table)
            .consistent_read(true)
            .key("pk", AttributeValue::S(scope.key()))
            .key("sk", AttributeValue::S(format!("conn#{connection_id}")))
            .send()
            .await
            .expect("GetItem")
            .item
    }
}

/// Records, for every DynamoDB Query sent, whether it named an index and whether it asked for a
/// consistent read, read from the request body as sent.
#[derive(Clone, Debug, Default)]
pub(crate) struct QueryAudit {
    pub(crate) queries: Arc<Mutex<Vec<(bool, bool)>>>,
}

impl Intercept for QueryAudit {
    fn name(&self) -> &'static str {
        "QueryAudit"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        if request.headers().get("x-amz-target") == Some("DynamoDB_20120810.Query") {
            let body: serde_json::Value =
                serde_json::from_slice(request.body().bytes().unwrap_or_default())?;
            let index = body.get("IndexName").is_some();
            let consistent = body.get("ConsistentRead") == Some(&serde_json::Value::Bool(true));
            self.queries.lock().unwrap().push((index, consistent));
        }
        Ok(())
    }
}
