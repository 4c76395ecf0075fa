//! A local Lambda Runtime API, one HTTP server per function: the interface `lambda_runtime` (and
//! every other custom runtime) polls for events and answers on. The endpoints and headers are
//! the ones `lambda_runtime` 1.x uses (AWS documents them at
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>):
//!
//! - `GET  /2018-06-01/runtime/invocation/next`: long-poll; the event JSON with
//!   `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn`, `-Trace-Id`;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error`;
//! - `POST /2018-06-01/runtime/init/error`.
//!
//! Several processes of one function poll the same server: each event goes to exactly one of
//! them. An event handed out is bound to the TCP connection that fetched it, which is how a crash
//! is noticed (see [`ApiState::connection_closed`]).
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use axum::{Json, Router};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Lambda's limit on a synchronous invocation's request and response payloads (6 MB).
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// A process exit this recent explains a runtime connection that just closed.
const ORPHAN_GRACE: Duration = Duration::from_secs(1);

/// Why an invocation produced no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// No answer before the deadline (API Gateway gives up on an integration after 29 s).
    #[error("{function} did not answer within {timeout:?}")]
    Timeout { function: String, timeout: Duration },
    /// The function reported an error (`/invocation/{id}/error`): an `Err` from the handler.
    #[error("{function} failed: {error_type}: {message}")]
    Function {
        function: String,
        error_type: String,
        message: String,
    },
    /// The process handling the event went away without answering.
    #[error("{function}'s process exited during the invocation")]
    Crashed { function: String },
    /// The function was stopped (shutdown) before it answered.
    #[error("{function} is stopped")]
    Stopped { function: String },
}

/// How an invocation ended, as the Runtime API learned it.
#[derive(Debug)]
enum Outcome {
    Response(Bytes),
    Error { error_type: String, message: String },
    Crashed,
}

/// An event waiting for a poller.
struct Queued {
    request_id: String,
    payload: Bytes,
    deadline: SystemTime,
    trace_id: String,
    reply: oneshot::Sender<Outcome>,
}

/// An event handed to a process, waiting for its answer.
struct InFlight {
    /// The runtime connection that fetched it.
    connection: u64,
    reply: oneshot::Sender<Outcome>,
}

struct ApiState {
    function: String,
    arn: String,
    queue: Mutex<VecDeque<Queued>>,
    /// One permit per queued event; see [`next`] for why it is cancel-safe.
    queued: Notify,
    in_flight: Mutex<HashMap<String, InFlight>>,
    /// `/next` requests currently waiting (processes ready for an event), watchable.
    pollers: watch::Sender<usize>,
    next_connection: AtomicU64,
    /// When a process of this function last exited (set by the supervisor).
    last_exit: watch::Sender<Option<Instant>>,
    stopped: AtomicBool,
}

/// Locks a map that is only touched in short, non-panicking sections: a poisoned lock still
/// holds consistent data, so keep serving rather than take the function down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ApiState {
    fn complete(&self, request_id: &str, outcome: Outcome) -> bool {
        let Some(entry) = lock(&self.in_flight).remove(request_id) else {
            return false;
        };
        // The invoker may have given up in the meantime; nothing is waiting then.
        let _ = entry.reply.send(outcome);
        true
    }

    /// The next event still wanted by its invoker.
    fn take(&self) -> Option<Queued> {
        let mut queue = lock(&self.queue);
        // An invoker that timed out while its event was queued dropped the receiver: that event
        // must not run any more.
        while let Some(event) = queue.pop_front() {
            if !event.reply.is_closed() {
                return Some(event);
            }
        }
        None
    }

    /// A runtime connection closed. Events it fetched and did not answer belong to a process
    /// that is gone (an HTTP/1 connection is never shared between processes), unless the client
    /// merely retired the connection and answers on a new one. So they fail as crashed only when
    /// a process exit confirms it; otherwise they wait for their answer or their deadline. (A
    /// fixed grace misfired under load: slow invocations whose client had recycled the
    /// connection were failed as crashed and their late answers dropped.)
    fn connection_closed(self: &Arc<Self>, connection: u64) {
        let orphans: Vec<String> = lock(&self.in_flight)
            .iter()
            .filter(|(_, f)| f.connection == connection)
            .map(|(id, _)| id.clone())
            .collect();
        if orphans.is_empty() {
            return;
        }
        // Subscribed before looking at the last exit, so an exit in between is not missed.
        let mut exits = self.last_exit.subscribe();
        let exited_recently = exits
            .borrow_and_update()
            .is_some_and(|at| at.elapsed() < ORPHAN_GRACE);
        let state = self.clone();
        let fail = move || {
            for id in &orphans {
                if state.complete(id, Outcome::Crashed) {
                    tracing::warn!(
                        function = state.function,
                        request_id = id,
                        "runtime connection closed without an answer: invocation failed"
                    );
                }
            }
        };
        if exited_recently {
            fail();
            return;
        }
        // Connections close inside a tokio runtime (the server's connection tasks); a drop
        // during runtime teardown has nothing left to notify.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            // An answer that arrives meanwhile completes the invocation first, and `fail` then
            // finds nothing left to fail. The sender goes away at shutdown, ending the wait.
            if exits.changed().await.is_ok() {
                fail();
            }
        });
    }
}

/// A Runtime API server for one function.
pub struct RuntimeApi {
    state: Arc<ApiState>,
    addr: SocketAddr,
    timeout: Duration,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    /// Serves a Runtime API for `function` on 127.0.0.1 (a port of its own). Invocations that get
    /// no answer within `timeout` fail.
    pub async fn bind(function: &str, timeout: Duration) -> io::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ApiState {
            function: function.to_string(),
            arn: function_arn(function),
            queue: Mutex::new(VecDeque::new()),
            queued: Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
            pollers: watch::channel(0).0,
            next_connection: AtomicU64::new(1),
            last_exit: watch::channel(None).0,
            stopped: AtomicBool::new(false),
        });
        let routes = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/response",
                post(response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES))
            .with_state(state.clone());
        let listener = TrackedListener {
            inner: listener,
            state: Arc::downgrade(&state),
        };
        let server = tokio::spawn(async move {
            // axum's serve only returns on an unrecoverable listener error.
            if let Err(error) = axum::serve(
                listener,
                routes.into_make_service_with_connect_info::<RuntimeConnection>(),
            )
            .await
            {
                tracing::error!(%error, "Runtime API server stopped");
            }
        });
        tracing::debug!(function, %addr, "Runtime API listening");
        Ok(RuntimeApi {
            state,
            addr,
            timeout,
            server,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn function(&self) -> &str {
        &self.state.function
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How many `/next` requests are waiting right now (processes ready for an event).
    pub fn pollers(&self) -> usize {
        *self.state.pollers.borrow()
    }

    /// Waits until `n` processes are polling for events (started and initialized), or `within`
    /// passes; says whether they were.
    pub async fn wait_for_pollers(&self, n: usize, within: Duration) -> bool {
        let mut pollers = self.state.pollers.subscribe();
        tokio::time::timeout(within, pollers.wait_for(|count| *count >= n))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }

    /// Events handed to a process and not answered yet.
    pub fn in_flight(&self) -> usize {
        lock(&self.state.in_flight).len()
    }

    /// Tells the API that one of the function's processes exited, so invocations it held fail
    /// now rather than after the grace period.
    pub fn process_exited(&self) {
        self.state.last_exit.send_replace(Some(Instant::now()));
    }

    /// Invokes the function with `payload` (the event JSON) and returns its response payload.
    pub async fn invoke(&self, payload: Bytes) -> Result<Bytes, InvokeError> {
        let function = || self.state.function.clone();
        if self.state.stopped.load(Ordering::SeqCst) {
            return Err(InvokeError::Stopped {
                function: function(),
            });
        }
        let request_id = request_id();
        let (reply, answer) = oneshot::channel();
        // The clock starts when the event is queued: a cold start counts against the timeout,
        // as it does on AWS.
        let deadline = Instant::now() + self.timeout;
        lock(&self.state.queue).push_back(Queued {
            request_id: request_id.clone(),
            payload,
            deadline: SystemTime::now() + self.timeout,
            trace_id: trace_id(),
            reply,
        });
        self.state.queued.notify_one();
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(Outcome::Response(body))) => Ok(body),
            Ok(Ok(Outcome::Error {
                error_type,
                message,
            })) => Err(InvokeError::Function {
                function: function(),
                error_type,
                message,
            }),
            Ok(Ok(Outcome::Crashed)) => Err(InvokeError::Crashed {
                function: function(),
            }),
            // The sender went away without an outcome: the API was stopped.
            Ok(Err(_)) => Err(InvokeError::Stopped {
                function: function(),
            }),
            Err(_) => {
                // A late answer now gets 410, as Lambda's does after a timeout.
                lock(&self.state.in_flight).remove(&request_id);
                Err(InvokeError::Timeout {
                    function: function(),
                    timeout: self.timeout,
                })
            }
        }
    }

    /// Stops serving: waiting and running invocations fail with [`InvokeError::Stopped`].
    pub fn stop(&self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        self.server.abort();
        // Dropping the reply senders is what tells their invokers.
        lock(&self.state.queue).clear();
        lock(&self.state.in_flight).clear();
        self.state.queued.notify_waiters();
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The connection a Runtime API request came in on (the listener numbers them).
#[derive(Clone, Copy, Debug)]
struct RuntimeConnection {
    id: u64,
}

impl Connected<IncomingStream<'_, TrackedListener>> for RuntimeConnection {
    fn connect_info(stream: IncomingStream<'_, TrackedListener>) -> Self {
        *stream.remote_addr()
    }
}

/// A TCP listener that numbers its connections and reports when each one closes.
struct TrackedListener {
    inner: TcpListener,
    state: Weak<ApiState>,
}

impl axum::serve::Listener for TrackedListener {
    type Io = TrackedStream;
    type Addr = RuntimeConnection;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, _)) => {
                    let id = self
                        .state
                        .upgrade()
                        .map(|s| s.next_connection.fetch_add(1, Ordering::SeqCst))
                        .unwrap_or_default();
                    let stream = TrackedStream {
                        stream,
                        id,
                        state: self.state.clone(),
                    };
                    return (stream, RuntimeConnection { id });
                }
                Err(error) => {
                    tracing::warn!(%error, "Runtime API accept failed");
                    // Out of file descriptors and the like: retrying at once would spin.
                    if !matches!(
                        error.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        // Only remote ends are numbered; the listener itself is "connection 0".
        Ok(RuntimeConnection { id: 0 })
    }
}

struct TrackedStream {
    stream: TcpStream,
    id: u64,
    state: Weak<ApiState>,
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        if let Some(state) = self.state.upgrade() {
            state.connection_closed(self.id);
        }
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

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
async fn next(
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
async fn response(
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
async fn invocation_error(
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
async fn init_error(
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
fn request_id() -> String {
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
fn trace_id() -> String {
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
fn function_arn(function: &str) -> String {
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
