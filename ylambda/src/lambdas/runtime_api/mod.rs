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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

mod routes;
mod tracked;

use routes::{function_arn, init_error, invocation_error, next, request_id, response, trace_id};
use tracked::{RuntimeConnection, TrackedListener};

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
        let listener = TrackedListener::new(listener, &state);
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
