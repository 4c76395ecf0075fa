//! `ylambda dev --lambdas DIR`: the real Lambda binaries (`ylambda-connect`, `-disconnect`,
//! `-message`) run as child processes under a local Lambda Runtime API, and the gateway invokes
//! them for each route the way API Gateway invokes Lambdas. This is the local test that the
//! deployable artifacts work: neither SAM nor LocalStack's free tier runs WebSocket APIs.
//!
//! Each process has its own memory, so this only makes sense with shared backends
//! (`YLAMBDA_BACKEND=aws`); the processes read their configuration from the environment they
//! inherit, plus `YLAMBDA_MANAGEMENT_ENDPOINT` pointing at the gateway's own `@connections` API.
mod function;
mod runtime_api;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;

pub use function::{Function, FunctionSpec, Program};
pub use runtime_api::{InvokeError, RuntimeApi};

use crate::invoker::{Invoker, ShutdownReport};

/// The three functions, by binary name (cargo's `[[bin]]` names, and cargo-lambda's folders).
pub const CONNECT: &str = "ylambda-connect";
pub const DISCONNECT: &str = "ylambda-disconnect";
pub const MESSAGE: &str = "ylambda-message";

/// API Gateway's integration timeout: it answers 504 to a Lambda slower than this.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(29);
pub const DEFAULT_CONCURRENCY: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error(
        "no {name} executable in {dir}: looked for {tried}. Build the Lambdas first \
         (`cargo build` leaves them in target/debug, `cargo lambda build` in target/lambda)"
    )]
    Missing {
        name: &'static str,
        dir: PathBuf,
        tried: String,
    },
    #[error("{0} is not executable")]
    NotExecutable(PathBuf),
    #[error("the number of processes per function must be at least 1")]
    Concurrency,
    #[error("cannot serve the Runtime API for {function}: {source}")]
    Bind {
        function: String,
        source: std::io::Error,
    },
    #[error("cannot start {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What `--lambdas` and its companions configure.
#[derive(Clone, Debug)]
pub struct LambdasConfig {
    pub connect: Program,
    pub disconnect: Program,
    pub message: Program,
    /// Processes per function.
    pub concurrency: usize,
    /// Per invocation, queueing (cold start) included.
    pub timeout: Duration,
    /// Set on every process, on top of the environment they inherit.
    pub env: Vec<(OsString, OsString)>,
}

impl LambdasConfig {
    /// Finds the three executables in `dir`, flat (`dir/ylambda-connect`, as `cargo build`
    /// leaves them) or in cargo-lambda's layout (`dir/ylambda-connect/bootstrap`).
    pub fn from_dir(dir: &Path) -> Result<LambdasConfig, LambdaError> {
        Ok(LambdasConfig {
            connect: Program::new(locate(dir, CONNECT)?),
            disconnect: Program::new(locate(dir, DISCONNECT)?),
            message: Program::new(locate(dir, MESSAGE)?),
            concurrency: DEFAULT_CONCURRENCY,
            timeout: DEFAULT_TIMEOUT,
            env: Vec::new(),
        })
    }

    /// Tells every process where to post (the gateway's `@connections` API, see
    /// `gateway::management_endpoint`) and which data directory `--data-dir` chose (it only
    /// matters to the embedded backend).
    pub fn posting_to(mut self, management_endpoint: &str, data_dir: &Path) -> LambdasConfig {
        self.env.extend([
            (
                OsString::from("YLAMBDA_MANAGEMENT_ENDPOINT"),
                OsString::from(management_endpoint),
            ),
            (
                OsString::from("YLAMBDA_DATA_DIR"),
                data_dir.as_os_str().to_owned(),
            ),
        ]);
        self
    }
}

/// The executable for function `name` in `dir`.
pub fn locate(dir: &Path, name: &'static str) -> Result<PathBuf, LambdaError> {
    let flat = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let bootstrap = dir.join(name).join("bootstrap");
    for candidate in [&flat, &bootstrap] {
        if candidate.is_file() {
            return if is_executable(candidate) {
                Ok(candidate.clone())
            } else {
                Err(LambdaError::NotExecutable(candidate.clone()))
            };
        }
    }
    Err(LambdaError::Missing {
        name,
        dir: dir.to_path_buf(),
        tried: format!("{} and {}", flat.display(), bootstrap.display()),
    })
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_path: &Path) -> bool {
    true
}

/// How long start-up waits for every process to poll for its first event.
const READY_WAIT: Duration = Duration::from_secs(30);

/// The three functions, running. As an [`Invoker`] it routes each event to its function.
pub struct Lambdas {
    connect: Function,
    disconnect: Function,
    message: Function,
}

impl Lambdas {
    /// Starts every function (Runtime API and processes). On error nothing is left running.
    pub async fn start(config: LambdasConfig) -> Result<Lambdas, LambdaError> {
        let spec = |name: &str, program: &Program| {
            let mut program = program.clone();
            program.env.extend(config.env.iter().cloned());
            FunctionSpec {
                name: name.to_string(),
                program,
                concurrency: config.concurrency,
                timeout: config.timeout,
            }
        };
        // Each `?` drops the functions already started, which kills their processes.
        let connect = Function::start(spec(CONNECT, &config.connect)).await?;
        let disconnect = Function::start(spec(DISCONNECT, &config.disconnect)).await?;
        let message = Function::start(spec(MESSAGE, &config.message)).await?;
        let lambdas = Lambdas {
            connect,
            disconnect,
            message,
        };
        lambdas.wait_until_ready(config.concurrency).await;
        Ok(lambdas)
    }

    /// Waits (at most `READY_WAIT` in all) until every process polls for events, so the gateway
    /// opens with warm functions and its first clients do not race a machine busy starting
    /// processes. A process still starting after that is only slow: events wait for it, as for a
    /// cold start.
    async fn wait_until_ready(&self, concurrency: usize) {
        let started = std::time::Instant::now();
        let ready = futures::future::join_all(self.functions().map(|function| async move {
            (
                function,
                function
                    .runtime_api()
                    .wait_for_pollers(concurrency, READY_WAIT)
                    .await,
            )
        }))
        .await;
        for (function, _) in ready.iter().filter(|(_, ready)| !ready) {
            tracing::warn!(
                function = function.name(),
                polling = function.runtime_api().pollers(),
                expected = concurrency,
                "Lambda processes not all ready after {READY_WAIT:?}; opening anyway"
            );
        }
        tracing::info!(
            ready_ms = started.elapsed().as_millis() as u64,
            all_ready = ready.iter().all(|(_, ready)| *ready),
            "Lambda processes ready"
        );
    }

    /// The function API Gateway would integrate with `route_key`: custom routes go to
    /// `$default`'s, as the handler expects.
    pub fn function(&self, route_key: &str) -> &Function {
        match route_key {
            "$connect" => &self.connect,
            "$disconnect" => &self.disconnect,
            _ => &self.message,
        }
    }

    pub fn functions(&self) -> [&Function; 3] {
        [&self.connect, &self.disconnect, &self.message]
    }

    /// Stops every process of every function.
    pub async fn stop(&self) {
        futures::future::join_all(self.functions().map(Function::stop)).await;
    }
}

/// An error answer like API Gateway's when an integration fails (`{"message": ...}`).
fn gateway_error(status: i64, message: &str) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response.body = Some(Body::Text(
        serde_json::json!({ "message": message }).to_string(),
    ));
    response
}

#[async_trait]
impl Invoker for Lambdas {
    /// Serializes the event as API Gateway does, invokes the route's function and parses its
    /// proxy response. A function error, a crash or a malformed response is API Gateway's 502;
    /// a timeout its 504.
    async fn invoke(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let route = event.request_context.route_key.clone().unwrap_or_default();
        let connection_id = event
            .request_context
            .connection_id
            .clone()
            .unwrap_or_default();
        let function = self.function(&route);
        let payload = match serde_json::to_vec(&event) {
            Ok(p) => p,
            Err(error) => {
                tracing::error!(route, %error, "cannot serialize the event");
                return gateway_error(500, "Internal server error");
            }
        };
        match function.invoke(payload).await {
            Ok(body) => match serde_json::from_slice::<ApiGatewayProxyResponse>(&body) {
                Ok(response) => response,
                Err(error) => {
                    tracing::error!(
                        function = function.name(),
                        route,
                        connection_id,
                        %error,
                        body = %String::from_utf8_lossy(&body),
                        "malformed Lambda proxy response"
                    );
                    gateway_error(502, "Internal server error")
                }
            },
            Err(error @ InvokeError::Timeout { .. }) => {
                tracing::error!(route, connection_id, %error, "Lambda invocation timed out");
                gateway_error(504, "Endpoint request timed out")
            }
            Err(error) => {
                tracing::error!(route, connection_id, %error, "Lambda invocation failed");
                gateway_error(502, "Internal server error")
            }
        }
    }

    /// Every connection's `$disconnect` has run through the Lambdas (rooms compact on their last
    /// leave there), so all that is left is stopping the processes.
    async fn shutdown(&self, _rooms: Vec<String>, _report: &mut ShutdownReport) {
        tracing::info!("stopping the Lambda processes");
        self.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_errors_look_like_api_gateways() {
        let r = gateway_error(504, "Endpoint request timed out");
        assert_eq!(r.status_code, 504);
        match r.body {
            Some(Body::Text(t)) => assert_eq!(t, r#"{"message":"Endpoint request timed out"}"#),
            other => panic!("unexpected body {other:?}"),
        }
    }
}
