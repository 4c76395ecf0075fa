//! Retrying transient store failures where giving up would lose something a client cannot recover
//! without reconnecting (an appended update that never reaches the room's other connections).
use std::future::Future;
use std::time::Duration;

use crate::ports::{StoreError, StoreResult};

/// Pauses between attempts: about a second in all, well inside a Lambda's timeout, long enough
/// for a throttled DynamoDB partition or a Redis failover to answer again.
pub(super) const STORE_RETRY_DELAYS_MS: [u64; 3] = [50, 200, 800];

/// Runs `attempt` until it succeeds, fails with something retrying cannot fix (corrupt data), or
/// the delays run out; the last error is returned.
pub(super) async fn retry_store<T, F, Fut>(what: &str, mut attempt: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut delays = STORE_RETRY_DELAYS_MS.iter();
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e @ (StoreError::Corrupt(_) | StoreError::BadCursor(_))) => return Err(e),
            Err(e) => match delays.next() {
                Some(&delay_ms) => {
                    tracing::warn!(what, error = %e, delay_ms, "store call failed: retrying");
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                }
                None => return Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let calls = AtomicUsize::new(0);
        let result = retry_store("test", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(StoreError::Backend("throttled".into())),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn retries_stop_after_the_last_delay_and_return_the_error() {
        let calls = AtomicUsize::new(0);
        let result: StoreResult<()> = retry_store("test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Backend("down".into()))
        })
        .await;
        assert!(matches!(result, Err(StoreError::Backend(m)) if m == "down"));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            STORE_RETRY_DELAYS_MS.len() + 1
        );
    }

    #[tokio::test]
    async fn corrupt_data_is_not_retried() {
        let calls = AtomicUsize::new(0);
        let result: StoreResult<()> = retry_store("test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Corrupt("bad bytes".into()))
        })
        .await;
        assert!(matches!(result, Err(StoreError::Corrupt(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
