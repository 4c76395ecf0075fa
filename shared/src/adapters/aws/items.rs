//! Table reads and writes shared by the DynamoDB adapters (connections, documents): paged
//! Queries, batched deletes with backoff, and attribute helpers.
use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use aws_sdk_dynamodb::Client;

use super::backend_error;
use crate::ports::{StoreError, StoreResult};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// BatchWriteItem's limit.
const BATCH_SIZE: usize = 25;
/// Attempts per batch when DynamoDB hands back UnprocessedItems (throttling): bounded, so a
/// caller fails loudly instead of spinning until the Lambda times out.
const BATCH_ATTEMPTS: u32 = 8;

/// Runs `query` page by page, following `LastEvaluatedKey` until DynamoDB stops returning one
/// (a page ends at `Limit` items or 1 MB, whichever comes first).
pub(crate) async fn query_all(
    table: &str,
    page_limit: Option<i32>,
    what: &str,
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> StoreResult<Vec<Item>> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let page = query
            .clone()
            .set_limit(page_limit)
            .set_exclusive_start_key(start.clone())
            .send()
            .await
            .map_err(|e| backend_error(format!("Query {what} in table {table}"), e))?;
        items.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key.filter(|k| !k.is_empty()) {
            // A backend that hands back the key it was given would loop forever.
            Some(next) if Some(&next) == start.as_ref() => {
                return Err(StoreError::Backend(format!(
                    "Query {what} in table {}: LastEvaluatedKey did not advance",
                    table
                )))
            }
            Some(next) => start = Some(next),
            None => return Ok(items),
        }
    }
}

/// Deletes items by key with BatchWriteItem, 25 at a time, resending UnprocessedItems with
/// jittered exponential backoff.
pub(crate) async fn delete_items(client: &Client, table: &str, keys: Vec<Item>) -> StoreResult<()> {
    let mut requests: Vec<WriteRequest> = Vec::with_capacity(keys.len());
    for key in keys {
        let delete = DeleteRequest::builder()
            .set_key(Some(key))
            .build()
            .map_err(|e| StoreError::Backend(format!("build DeleteRequest: {e}")))?;
        requests.push(WriteRequest::builder().delete_request(delete).build());
    }
    let mut requests = requests.into_iter().peekable();
    while requests.peek().is_some() {
        let mut pending: Vec<WriteRequest> = requests.by_ref().take(BATCH_SIZE).collect();
        let mut attempt = 1;
        loop {
            let sent = pending.len();
            let output = client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(|e| {
                    backend_error(
                        format!("BatchWriteItem ({sent} deletes) in table {}", table),
                        e,
                    )
                })?;
            pending = output
                .unprocessed_items
                .and_then(|mut unprocessed| unprocessed.remove(table))
                .unwrap_or_default();
            if pending.is_empty() {
                break;
            }
            if attempt >= BATCH_ATTEMPTS {
                return Err(StoreError::Backend(format!(
                    "BatchWriteItem in table {}: {} deletes still unprocessed after {attempt} attempts",
                    table,
                    pending.len()
                )));
            }
            tracing::debug!(
                table = %table,
                unprocessed = pending.len(),
                attempt,
                "BatchWriteItem returned unprocessed deletes; retrying"
            );
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }
    Ok(())
}

/// Full-jitter exponential backoff: up to 50 ms, 100 ms, ... capped at 2 s (AWS's advice for
/// UnprocessedItems: retrying at once is throttled again).
pub(crate) fn backoff(attempt: u32) -> Duration {
    let cap_ms = (50u64 << attempt.saturating_sub(1).min(10)).min(2_000);
    Duration::from_millis(rand::random_range(cap_ms / 2..=cap_ms))
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A table key: `pk` and `sk`.
pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

/// Whether a TransactWriteItems was cancelled because a condition of one of its items did not
/// hold (rather than for throttling, a conflict with another transaction, or an outage).
pub(crate) fn transaction_condition_failed<R>(
    error: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(canceled)) => canceled
            .cancellation_reasons
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|r| r.code.as_deref() == Some("ConditionalCheckFailed")),
        _ => false,
    }
}

/// Whether a request failed only because its condition did not hold.
pub(crate) fn condition_failed<E, R>(error: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded() {
        for attempt in 1..40 {
            assert!(backoff(attempt) <= Duration::from_secs(2));
        }
        assert!(backoff(1) <= Duration::from_millis(50));
    }
}
