//! The Runtime API's endpoints: `next` (long-poll), `response`, `error` and `init/error`, and
//! the ids and headers they hand out.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tokio::sync::watch;

use super::tracked::RuntimeConnection;
use super::{lock, ApiState, InFlight, Outcome};

/// Counts a waiting `/next` for as long as it waits (the request future is dropped when its
/// client disconnects, so the count follows live processes).
struct Polling<'a>(&'a watch::Sender<usize>);

impl<'a> Polling<'a> {
    fn start(count: &'a watch::Sender<usize>) -> Self {
        count.send_modify(|n| *n += 1);
        Polling(count)
    }
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// `GET /invocation/next`: waits for an event and hands it to this caller only.
///
/// Cancel-safe, which matters because hyper drops this future when a polling process dies: the
/// event is taken from the queue and registered in flight without an await in between, and a
/// `Notified` dropped after being woken passes its wake-up on to another waiter.
pub(super) async fn next(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(connection): ConnectInfo<RuntimeConnection>,
) -> Response {
    let _polling = Polling::start(&state.pollers);
    loop {
        let woken = state.queued.notified();
        tokio::pin!(woken);
        // Registered before the queue is checked, so an event queued in between wakes us.
        woken.as_mut().enable();
        if state.stopped.load(Ordering::SeqCst) {
            return runtime_error(StatusCode::SERVICE_UNAVAILABLE, "Stopped", "shutting down");
        }
        if let Some(event) = state.take() {
            lock(&state.in_flight).insert(
                event.request_id.clone(),
                InFlight {
                    connection: connection.id,
                    reply: event.reply,
                },
            );
            tracing::debug!(
                function = state.function,
                request_id = event.request_id,
                connection = connection.id,
                "event handed to a runtime"
            );
            return event_response(
                &state,
                &event.request_id,
                event.deadline,
                &event.trace_id,
                event.payload,
            );
        }
        woken.await;
    }
}

fn event_response(
    state: &ApiState,
    request_id: &str,
    deadline: SystemTime,
    trace_id: &str,
    payload: Bytes,
) -> Response {
    let deadline_ms = deadline
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        .to_string();
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        // Every value is generated here (ids, numbers, the ARN of a function name we chose);
        // one that is not a valid header value is left out rather than failing the event.
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("lambda-runtime-aws-request-id", request_id);
    set("lambda-runtime-deadline-ms", &deadline_ms);
    set("lambda-runtime-invoked-function-arn", &state.arn);
    set("lambda-runtime-trace-id", trace_id);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (StatusCode::OK, headers, payload).into_response()
}

/// The Runtime API's error shape (`errorMessage` / `errorType`).
fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "errorMessage": message, "errorType": error_type })),
    )
        .into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "status": "OK" }))).into_response()
}

/// A response for an invocation that is not in flight: answered already, or timed out.
fn stale(state: &ApiState, request_id: &str) -> Response {
    tracing::warn!(
        function = state.function,
        request_id,
        "answer for an invocation that timed out or was already answered"
    );
    runtime_error(
        StatusCode::GONE,
        "InvalidRequestID",
        "invocation timed out or was already answered",
    )
}

/// `POST /invocation/{id}/response`: the handler's result.
pub(super) async fn response(
    State(state): State<Arc<ApiState>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    if state.complete(&request_id, Outcome::Response(body)) {
        accepted()
    } else {
        stale(&state, &request_id)
    }
}

/// The diagnostic a runtime posts with an error.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Diagnostic {
    #[serde(default)]
    error_type: String,
    #[serde(default)]
    error_message: String,
}

fn diagnostic(headers: &HeaderMap, body: &[u8]) -> Diagnostic {
    // The body is whatever the runtime sent: a non-JSON one is still reported, as text.
    let mut d: Diagnostic = serde_json::from_slice(body).unwrap_or_else(|_| Diagnostic {
        error_message: String::from_utf8_lossy(body).into_owned(),
        ..Diagnostic::default()
    });
    if d.error_type.is_empty() {
        d.error_type = headers
            .get("lambda-runtime-function-error-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("Unhandled")
            .to_string();
    }
    d
}

/// `POST /invocation/{id}/error`: the handler returned an error.
pub(super) async fn invocation_error(
    State(state): State<Arc<ApiState>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let d = diagnostic(&headers, &body);
    tracing::warn!(
        function = state.function,
        request_id,
        error_type = d.error_type,
        error = d.error_message,
        "function returned an error"
    );
    let outcome = Outcome::Error {
        error_type: d.error_type,
        message: d.error_message,
    };
    if state.complete(&request_id, outcome) {
        accepted()
    } else {
        stale(&state, &request_id)
    }
}

/// `POST /init/error`: the process failed before it could take events. It exits next; the
/// supervisor restarts it.
pub(super) async fn init_error(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let d = diagnostic(&headers, &body);
    tracing::error!(
        function = state.function,
        error_type = d.error_type,
        error = d.error_message,
        "function failed to initialise"
    );
    accepted()
}

/// A request id shaped like Lambda's (a UUID).
pub(super) fn request_id() -> String {
    let b: [u8; 16] = rand::random();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An X-Ray trace header like Lambda's (`Root=1-{epoch hex}-{96 random bits};...`).
pub(super) fn trace_id() -> String {
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let root: [u8; 12] = rand::random();
    let parent: u64 = rand::random();
    let root: String = root.iter().map(|x| format!("{x:02x}")).collect();
    format!("Root=1-{epoch:08x}-{root};Parent={parent:016x};Sampled=0")
}

/// The ARN the function would have on AWS, in the configured region (account id zeroed).
pub(super) fn function_arn(function: &str) -> String {
    let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "us-east-1".to_string());
    format!("arn:aws:lambda:{region}:000000000000:function:{function}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_lambdas() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_ne!(id, request_id());
        let trace = trace_id();
        assert!(trace.starts_with("Root=1-"), "{trace}");
        assert!(function_arn("f").ends_with(":function:f"));
    }

    #[test]
    fn diagnostics_from_json_text_or_header() {
        let mut h = HeaderMap::new();
        let d = diagnostic(&h, br#"{"errorType":"E","errorMessage":"m"}"#);
        assert_eq!(
            (d.error_type.as_str(), d.error_message.as_str()),
            ("E", "m")
        );
        h.insert(
            "lambda-runtime-function-error-type",
            HeaderValue::from_static("Runtime.X"),
        );
        let d = diagnostic(&h, b"plain text");
        assert_eq!(d.error_type, "Runtime.X");
        assert_eq!(d.error_message, "plain text");
    }
}
