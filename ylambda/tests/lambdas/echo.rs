//! The test Lambda (this test binary, re-run as a child process with only the ignored
//! `echo_lambda` test selected) and the helpers that start and drive it.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use ylambda::lambdas::{Function, FunctionSpec, InvokeError, Program};
use ylambda::LambdasConfig;

use crate::common::*;

pub(crate) fn run() {
    if std::env::var_os(ECHO_ENV).is_none() {
        return;
    }
    record("start");
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(lambda_runtime::run(lambda_runtime::service_fn(echo)));
    // `run` only returns when the Runtime API is gone.
    eprintln!("test Lambda stopped: {result:?}");
    std::process::exit(1);
}

/// Set in the test Lambda's environment: selects the Lambda mode of this binary.
pub(crate) const ECHO_ENV: &str = "YLAMBDA_TEST_ECHO_LAMBDA";
/// Where the test Lambda records what it sees: one file per process, named by its pid.
pub(crate) const RECORD_ENV: &str = "YLAMBDA_TEST_RECORD_DIR";

/// What a `$default` body asks the test Lambda to do.
#[derive(serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Command {
    /// Answer with this value, the pid and the invocation's context.
    Echo(String),
    /// Answer with this environment variable's value.
    Env(String),
    /// Post this text to the calling connection through `YLAMBDA_MANAGEMENT_ENDPOINT`.
    Post(String),
    /// Return an error with this message.
    Fail(String),
    /// Exit the process with this code, mid-invocation.
    Crash(i32),
    /// Never answer.
    Hang,
    /// Connect to this address and answer once a byte arrives there.
    Barrier(String),
}

pub(crate) fn record(line: &str) {
    use std::io::Write;
    let Some(dir) = std::env::var_os(RECORD_ENV) else {
        return;
    };
    let path = Path::new(&dir).join(std::process::id().to_string());
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open record file");
    writeln!(file, "{line}").expect("write record");
}

pub(crate) fn reply(status: i64, body: String) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = status;
    r.body = Some(Body::Text(body));
    r
}

pub(crate) async fn echo(
    event: lambda_runtime::LambdaEvent<ApiGatewayWebsocketProxyRequest>,
) -> Result<ApiGatewayProxyResponse, lambda_runtime::Error> {
    let (request, context) = event.into_parts();
    let route = request
        .request_context
        .route_key
        .clone()
        .unwrap_or_default();
    let connection_id = request
        .request_context
        .connection_id
        .clone()
        .unwrap_or_default();
    let body = request.body.clone().unwrap_or_default();
    record(&format!("{route} {connection_id} {body}"));
    match route.as_str() {
        "$connect" if request.query_string_parameters.first("refuse").is_some() => {
            return Ok(reply(403, "refused by the test Lambda".into()))
        }
        "$connect" | "$disconnect" => return Ok(reply(200, String::new())),
        _ => {}
    }
    match serde_json::from_str::<Command>(&body)? {
        Command::Echo(value) => Ok(reply(
            200,
            json!({
                "value": value,
                "pid": std::process::id(),
                "requestId": context.request_id,
                "deadline": context.deadline,
                "arn": context.invoked_function_arn,
            })
            .to_string(),
        )),
        Command::Env(name) => Ok(reply(
            200,
            json!(std::env::var(name).unwrap_or_default()).to_string(),
        )),
        Command::Post(text) => {
            let endpoint = std::env::var("YLAMBDA_MANAGEMENT_ENDPOINT")?;
            let url = format!("{endpoint}/@connections/{}", encode_id(&connection_id));
            let status = reqwest::Client::new()
                .post(url)
                .body(text)
                .send()
                .await?
                .status();
            if !status.is_success() {
                return Err(format!("post answered {status}").into());
            }
            Ok(reply(200, String::new()))
        }
        Command::Fail(message) => Err(message.into()),
        Command::Crash(code) => std::process::exit(code),
        Command::Hang => std::future::pending().await,
        Command::Barrier(addr) => {
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            stream.read_u8().await?;
            Ok(reply(200, json!({ "pid": std::process::id() }).to_string()))
        }
    }
}

/// This test binary, run as the test Lambda, recording into `record`.
pub(crate) fn echo_program(record: &Path) -> Program {
    let exe = std::env::current_exe().expect("test binary path");
    Program::new(exe)
        .args(["echo_lambda", "--exact", "--ignored", "--nocapture", "-q"])
        .env(ECHO_ENV, "1")
        .env(RECORD_ENV, record.as_os_str())
}

pub(crate) fn echo_spec(record: &Path, concurrency: usize, timeout: Duration) -> FunctionSpec {
    FunctionSpec {
        name: "echo".into(),
        program: echo_program(record),
        concurrency,
        timeout,
    }
}

pub(crate) fn echo_lambdas(record: &Path, concurrency: usize, timeout: Duration) -> LambdasConfig {
    let program = echo_program(record);
    LambdasConfig {
        connect: program.clone(),
        disconnect: program.clone(),
        message: program,
        concurrency,
        timeout,
        env: Vec::new(),
    }
}

/// A `$default` event carrying `command` as its body.
pub(crate) fn message_event(command: Value) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context.route_key = Some("$default".into());
    event.request_context.event_type = Some("MESSAGE".into());
    event.request_context.connection_id = Some("TestConnection0=".into());
    event.body = Some(command.to_string());
    event
}

pub(crate) fn payload(command: Value) -> Vec<u8> {
    serde_json::to_vec(&message_event(command)).expect("serialize event")
}

/// The test Lambda's answer to an invocation: its proxy response's body, as JSON.
pub(crate) fn answer(result: Result<axum::body::Bytes, InvokeError>) -> Value {
    let bytes = result.expect("invocation answered");
    let response: ApiGatewayProxyResponse = serde_json::from_slice(&bytes).expect("proxy response");
    assert_eq!(response.status_code, 200);
    match response.body {
        Some(Body::Text(text)) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        other => panic!("unexpected body {other:?}"),
    }
}

pub(crate) fn body_text(response: &ApiGatewayProxyResponse) -> String {
    match &response.body {
        Some(Body::Text(t)) => t.clone(),
        other => panic!("unexpected body {other:?}"),
    }
}

/// What the test Lambda processes recorded, by pid.
pub(crate) fn records(dir: &Path) -> BTreeMap<u32, Vec<String>> {
    std::fs::read_dir(dir)
        .expect("record dir")
        .map(|entry| {
            let entry = entry.expect("dir entry");
            let pid = entry
                .file_name()
                .to_string_lossy()
                .parse()
                .expect("pid file name");
            let text = std::fs::read_to_string(entry.path()).expect("record file");
            (pid, text.lines().map(str::to_string).collect())
        })
        .collect()
}

pub(crate) async fn wait_pollers(function: &Function, n: usize) {
    wait_for("processes polling the Runtime API", || {
        let polling = function.runtime_api().pollers();
        async move { (polling == n).then_some(()) }
    })
    .await;
}

#[cfg(unix)]
pub(crate) fn is_alive(pid: u32) -> bool {
    // Signal 0 only checks that the process exists.
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}
