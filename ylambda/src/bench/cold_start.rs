//! `ylambda bench-cold-start`: how long a Lambda binary takes from process start to the answer to
//! its first event under the local Runtime API (what a cold start adds to a user's `$connect`),
//! against a second, warm invocation of the same event on the same process.
//!
//! Each start is a fresh process of the `ylambda-connect` binary (concurrency 1) given a
//! `$connect` event shaped like API Gateway's. The process inherits this one's environment, so
//! the backend it talks to (embedded or YLAMBDA_BACKEND=aws on moto + redis-server) is the
//! caller's choice; the first event includes building its clients (AWS SDK, Redis connection).
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::gateway::connections::ConnectionMeta;
use crate::gateway::{events, ids};
use crate::lambdas::{self, Function, FunctionSpec, InvokeError, LambdaError, Program};

#[derive(Debug, thiserror::Error)]
pub enum ColdStartError {
    #[error(transparent)]
    Lambda(#[from] LambdaError),
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    #[error("the function answered $connect with {0} (is its backend running?)")]
    Refused(String),
    #[error("reading {path}: {source}")]
    Binary {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct ColdStartReport {
    pub binary: String,
    pub binary_bytes: u64,
    pub starts: usize,
    /// Process start to the first event's answer, per start (ms).
    pub first_event_ms: Vec<f64>,
    /// The same event again on the warm process, per start (ms).
    pub warm_event_ms: Vec<f64>,
}

impl ColdStartReport {
    pub fn median_first_ms(&self) -> f64 {
        median(&self.first_event_ms)
    }
    pub fn median_warm_ms(&self) -> f64 {
        median(&self.warm_event_ms)
    }
}

pub fn median(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

fn connect_event(start: usize) -> Result<Vec<u8>, serde_json::Error> {
    let meta = ConnectionMeta {
        connection_id: ids::connection_id(),
        api_id: ids::api_id(),
        stage: "local".into(),
        domain_name: "localhost".into(),
        source_ip: "127.0.0.1".into(),
        user_agent: None,
        room: Some(format!("cold-start-{start}")),
        connected_at: SystemTime::now(),
    };
    let query = format!("room=cold-start-{start}");
    let event = events::connect(&meta, &http::HeaderMap::new(), Some(&query), 0);
    serde_json::to_vec(&event)
}

/// The `statusCode` of a Lambda proxy response, if it has one.
fn status_of(response: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(response)
        .ok()?
        .get("statusCode")?
        .as_u64()
}

/// Starts the connect function `starts` times from the binaries in `dir`.
pub async fn measure(dir: &Path, starts: usize) -> Result<ColdStartReport, ColdStartError> {
    let path = lambdas::locate(dir, lambdas::CONNECT)?;
    let binary_bytes = std::fs::metadata(&path)
        .map_err(|source| ColdStartError::Binary {
            path: path.display().to_string(),
            source,
        })?
        .len();
    let mut report = ColdStartReport {
        binary: path.display().to_string(),
        binary_bytes,
        starts,
        first_event_ms: Vec::with_capacity(starts),
        warm_event_ms: Vec::with_capacity(starts),
    };
    for start in 0..starts {
        let spec = FunctionSpec {
            name: lambdas::CONNECT.to_string(),
            program: Program::new(&path),
            concurrency: 1,
            timeout: Duration::from_secs(29),
        };
        let began = Instant::now();
        let function = Function::start(spec).await?;
        let timed = async {
            let first = function
                .invoke(connect_event(2 * start).map_err(json)?)
                .await?;
            let first_ms = began.elapsed().as_secs_f64() * 1000.0;
            check(&first)?;
            let again = Instant::now();
            let warm = function
                .invoke(connect_event(2 * start + 1).map_err(json)?)
                .await?;
            let warm_ms = again.elapsed().as_secs_f64() * 1000.0;
            check(&warm)?;
            Ok::<_, ColdStartError>((first_ms, warm_ms))
        }
        .await;
        function.stop().await;
        let (first_ms, warm_ms) = timed?;
        report.first_event_ms.push(first_ms);
        report.warm_event_ms.push(warm_ms);
    }
    Ok(report)
}

fn json(e: serde_json::Error) -> ColdStartError {
    ColdStartError::Refused(format!("an event that does not serialize: {e}"))
}

fn check(response: &[u8]) -> Result<(), ColdStartError> {
    match status_of(response) {
        Some(200) => Ok(()),
        _ => Err(ColdStartError::Refused(
            String::from_utf8_lossy(response)
                .chars()
                .take(300)
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_no_samples() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn only_a_200_answer_counts_as_handled() {
        assert!(check(br#"{"statusCode":200}"#).is_ok());
        assert!(matches!(
            check(br#"{"statusCode":500,"body":"no table"}"#),
            Err(ColdStartError::Refused(body)) if body.contains("no table")
        ));
        assert!(check(b"not json").is_err());
    }
}
