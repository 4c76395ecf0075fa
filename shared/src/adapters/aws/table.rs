//! Creating the connections table for scripts and tests (deployments get it from the template).
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;

use super::{backend_error, GSI_NAME, TTL_ATTRIBUTE};
use crate::ports::{StoreError, StoreResult};

fn key(name: &str, key_type: KeyType) -> StoreResult<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| StoreError::Backend(format!("build key schema: {e}")))
}

fn string_attribute(name: &str) -> StoreResult<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| StoreError::Backend(format!("build attribute definition: {e}")))
}

/// Whether a key schema is exactly `hash` (+ `range`).
fn schema_is(schema: &[KeySchemaElement], hash: &str, range: &str) -> bool {
    let find = |t: KeyType| {
        schema
            .iter()
            .find(|k| k.key_type == t)
            .map(|k| k.attribute_name.as_str())
    };
    schema.len() == 2 && find(KeyType::Hash) == Some(hash) && find(KeyType::Range) == Some(range)
}

/// Creates the connections table as `template.yaml` declares it (on-demand, `pk`/`sk`, GSI `gs1`
/// on `sk`/`data` projecting everything, TTL on `ttl`) and waits until it is usable. Idempotent:
/// an existing table is checked for that shape instead, and TTL enabled if it is not.
/// For scripts and tests; deployments get the table from the template.
pub async fn create_table(client: &Client, table: &str) -> StoreResult<()> {
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(GSI_NAME)
        .key_schema(key("sk", KeyType::Hash)?)
        .key_schema(key("data", KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| StoreError::Backend(format!("build GSI definition: {e}")))?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute("pk")?)
        .attribute_definitions(string_attribute("sk")?)
        .attribute_definitions(string_attribute("data")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(gsi)
        .send()
        .await;
    match created {
        Ok(_) => tracing::info!(table, "created DynamoDB table"),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            tracing::debug!(table, "DynamoDB table already exists");
        }
        Err(e) => return Err(backend_error(format!("CreateTable {table}"), e)),
    }

    // Wait (on the condition, with a deadline) until the table and its index are ACTIVE.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| backend_error(format!("DescribeTable {table}"), e))?;
        let Some(desc) = described.table else {
            return Err(StoreError::Backend(format!(
                "DescribeTable {table}: no table description"
            )));
        };
        if !schema_is(desc.key_schema(), "pk", "sk") {
            return Err(StoreError::Backend(format!(
                "table {table} exists with key schema {:?}, expected pk (hash) + sk (range)",
                desc.key_schema()
            )));
        }
        let index = desc
            .global_secondary_indexes()
            .iter()
            .find(|i| i.index_name() == Some(GSI_NAME));
        let Some(index) = index else {
            return Err(StoreError::Backend(format!(
                "table {table} exists without the {GSI_NAME} index"
            )));
        };
        if !schema_is(index.key_schema(), "sk", "data") {
            return Err(StoreError::Backend(format!(
                "index {GSI_NAME} of table {table} has key schema {:?}, expected sk (hash) + data (range)",
                index.key_schema()
            )));
        }
        let table_active = desc.table_status == Some(TableStatus::Active);
        // An index that reports no status is taken as ready.
        let index_active = index
            .index_status
            .as_ref()
            .is_none_or(|s| *s == IndexStatus::Active);
        if table_active && index_active {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Backend(format!(
                "table {table} not ACTIVE after 120 s (table {:?}, index {:?})",
                desc.table_status, index.index_status
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| backend_error(format!("DescribeTimeToLive {table}"), e))?;
    let description = ttl.time_to_live_description;
    let status = description
        .as_ref()
        .and_then(|d| d.time_to_live_status.clone());
    let attribute = description.as_ref().and_then(|d| d.attribute_name.clone());
    match status {
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling) => {
            if attribute.as_deref() != Some(TTL_ATTRIBUTE) {
                return Err(StoreError::Backend(format!(
                    "table {table} has TTL on {attribute:?}, expected {TTL_ATTRIBUTE:?}"
                )));
            }
        }
        _ => {
            let spec = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()
                .map_err(|e| StoreError::Backend(format!("build TTL specification: {e}")))?;
            client
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(|e| backend_error(format!("UpdateTimeToLive {table}"), e))?;
        }
    }
    Ok(())
}
