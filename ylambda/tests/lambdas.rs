//! `ylambda dev --lambdas`: the local Runtime API driven by real `lambda_runtime` clients, process
//! supervision (restart, stop), the Lambdas invoker's status mapping, the gateway delivering a
//! Lambda process's `@connections` posts, and, with the AWS backends, the real binaries end to
//! end.
//!
//! The test Lambda is this test binary itself, re-run as a child process with only the ignored
//! `echo_lambda` test selected (see [`echo_program`]), so it is built by whatever builds these
//! tests, under any test filter.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use common::*;
use futures::future::join_all;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use ylambda::lambdas::{Function, FunctionSpec, InvokeError, Program};
use ylambda::{management_endpoint, Gateway, Invoker, Lambdas, LambdasConfig};
use ylambda_shared::config::Config;

/// Set in the test Lambda's environment: selects the Lambda mode of this binary.
const ECHO_ENV: &str = "YLAMBDA_TEST_ECHO_LAMBDA";
/// Where the test Lambda records what it sees: one file per process, named by its pid.
const RECORD_ENV: &str = "YLAMBDA_TEST_RECORD_DIR";

// ---------------------------------------------------------------------------------------------
// The test Lambda

/// Not a test: the entry point of the test Lambda's processes. Ignored so that normal runs skip
/// it; [`echo_program`] runs this binary with `--ignored --exact echo_lambda`.
#[test]
#[ignore = "entry point of the test Lambda processes the other tests start"]
fn echo_lambda() {
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

fn record(line: &str) {
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

fn reply(status: i64, body: String) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = status;
    r.body = Some(Body::Text(body));
    r
}

async fn echo(
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

// ---------------------------------------------------------------------------------------------
// Harness

/// This test binary, run as the test Lambda, recording into `record`.
fn echo_program(record: &Path) -> Program {
    let exe = std::env::current_exe().expect("test binary path");
    Program::new(exe)
        .args(["echo_lambda", "--exact", "--ignored", "--nocapture", "-q"])
        .env(ECHO_ENV, "1")
        .env(RECORD_ENV, record.as_os_str())
}

fn echo_spec(record: &Path, concurrency: usize, timeout: Duration) -> FunctionSpec {
    FunctionSpec {
        name: "echo".into(),
        program: echo_program(record),
        concurrency,
        timeout,
    }
}

fn echo_lambdas(record: &Path, concurrency: usize, timeout: Duration) -> LambdasConfig {
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
fn message_event(command: Value) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context.route_key = Some("$default".into());
    event.request_context.event_type = Some("MESSAGE".into());
    event.request_context.connection_id = Some("TestConnection0=".into());
    event.body = Some(command.to_string());
    event
}

fn payload(command: Value) -> Vec<u8> {
    serde_json::to_vec(&message_event(command)).expect("serialize event")
}

/// The test Lambda's answer to an invocation: its proxy response's body, as JSON.
fn answer(result: Result<axum::body::Bytes, InvokeError>) -> Value {
    let bytes = result.expect("invocation answered");
    let response: ApiGatewayProxyResponse = serde_json::from_slice(&bytes).expect("proxy response");
    assert_eq!(response.status_code, 200);
    match response.body {
        Some(Body::Text(text)) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        other => panic!("unexpected body {other:?}"),
    }
}

fn body_text(response: &ApiGatewayProxyResponse) -> String {
    match &response.body {
        Some(Body::Text(t)) => t.clone(),
        other => panic!("unexpected body {other:?}"),
    }
}

/// What the test Lambda processes recorded, by pid.
fn records(dir: &Path) -> BTreeMap<u32, Vec<String>> {
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

async fn wait_pollers(function: &Function, n: usize) {
    wait_for("processes polling the Runtime API", || {
        let polling = function.runtime_api().pollers();
        async move { (polling == n).then_some(()) }
    })
    .await;
}

#[cfg(unix)]
fn is_alive(pid: u32) -> bool {
    // Signal 0 only checks that the process exists.
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

// ---------------------------------------------------------------------------------------------
// The Runtime API and the processes

#[tokio::test]
async fn each_event_reaches_exactly_one_process_and_its_answer_the_right_invocation() {
    let record = tempfile::tempdir().unwrap();
    let function = Function::start(echo_spec(record.path(), 3, SOON))
        .await
        .expect("start");
    assert!(
        function
            .runtime_api()
            .wait_for_pollers(3, Duration::from_secs(20))
            .await,
        "three processes polling"
    );
    assert!(
        !function
            .runtime_api()
            .wait_for_pollers(4, Duration::from_millis(200))
            .await,
        "a fourth poller that does not exist"
    );
    wait_pollers(&function, 3).await;

    // Three events that each hold their process until all three reached the barrier: only three
    // different processes, each with one event, get there together.
    let barrier = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = barrier.local_addr().unwrap().to_string();
    let release = async {
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(barrier.accept().await.expect("accept").0);
        }
        for stream in &mut held {
            stream.write_all(b"!").await.expect("release");
        }
    };
    let calls = join_all((0..3).map(|_| function.invoke(payload(json!({ "barrier": addr })))));
    let (answers, released) = tokio::join!(calls, tokio::time::timeout(SOON, release));
    released.expect("three processes reached the barrier at once");
    let pids: BTreeSet<u64> = answers
        .into_iter()
        .map(|a| answer(a)["pid"].as_u64().expect("pid"))
        .collect();
    assert_eq!(pids.len(), 3, "one event per process: {pids:?}");

    // Many events at once: each answer carries its own event's value, and every event was
    // handled exactly once across the processes.
    let values: Vec<String> = (0..40).map(|i| format!("value-{i}")).collect();
    let answers = join_all(
        values
            .iter()
            .map(|v| function.invoke(payload(json!({ "echo": v })))),
    )
    .await;
    let mut request_ids = BTreeSet::new();
    for (value, a) in values.iter().zip(answers) {
        let a = answer(a);
        assert_eq!(a["value"], value.as_str());
        assert!(request_ids.insert(a["requestId"].to_string()));
    }
    let handled: Vec<String> = records(record.path())
        .into_values()
        .flatten()
        .filter(|line| line.contains(r#"{"echo":"#))
        .collect();
    assert_eq!(handled.len(), values.len(), "{handled:#?}");
    for value in &values {
        let needle = format!(r#"{{"echo":"{value}"}}"#);
        assert_eq!(
            handled.iter().filter(|l| l.ends_with(&needle)).count(),
            1,
            "{value} handled exactly once"
        );
    }
    assert_eq!(function.restarts(), 0);
    function.stop().await;
}

#[tokio::test]
async fn processes_get_the_lambda_environment_and_invocation_context() {
    let record = tempfile::tempdir().unwrap();
    let timeout = Duration::from_secs(20);
    let function = Function::start(echo_spec(record.path(), 1, timeout))
        .await
        .expect("start");
    let env = |name: &str| {
        let call = function.invoke(payload(json!({ "env": name })));
        async move { answer(call.await) }
    };
    assert_eq!(env("AWS_LAMBDA_FUNCTION_NAME").await, "echo");
    assert_eq!(env("AWS_LAMBDA_FUNCTION_VERSION").await, "$LATEST");
    assert_eq!(env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").await, "256");
    assert_eq!(env("AWS_LAMBDA_LOG_FORMAT").await, "JSON");
    assert_eq!(
        env("AWS_LAMBDA_RUNTIME_API").await,
        function.runtime_api().addr().to_string()
    );
    // The parent's environment is inherited.
    assert_eq!(env(ECHO_ENV).await, "1");

    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let a = answer(function.invoke(payload(json!({ "echo": "x" }))).await);
    let deadline = Duration::from_millis(a["deadline"].as_u64().expect("deadline"));
    assert!(deadline > before && deadline <= before + timeout + Duration::from_secs(1));
    let arn = a["arn"].as_str().expect("arn");
    assert!(
        arn.starts_with("arn:aws:lambda:") && arn.ends_with(":function:echo"),
        "{arn}"
    );
    assert_eq!(a["requestId"].as_str().map(str::len), Some(36));
    function.stop().await;
}

#[tokio::test]
async fn a_function_error_is_a_502_and_the_process_keeps_serving() {
    let record = tempfile::tempdir().unwrap();
    let lambdas = Lambdas::start(echo_lambdas(record.path(), 1, SOON))
        .await
        .expect("start");
    let function = lambdas.function("$default");

    match function.invoke(payload(json!({ "fail": "boom" }))).await {
        Err(InvokeError::Function {
            function, message, ..
        }) => {
            assert_eq!(function, "ylambda-message");
            assert_eq!(message, "boom");
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    let response = lambdas
        .invoke(message_event(json!({ "fail": "boom" })))
        .await;
    assert_eq!(response.status_code, 502);
    assert_eq!(
        body_text(&response),
        r#"{"message":"Internal server error"}"#
    );

    // A handler error is not a crash: the same process answers next.
    let response = lambdas.invoke(message_event(json!({ "echo": "ok" }))).await;
    assert_eq!(response.status_code, 200);
    assert_eq!(function.restarts(), 0);
    lambdas.stop().await;
}

#[tokio::test]
async fn a_crashed_process_fails_its_invocation_with_502_and_is_restarted() {
    let record = tempfile::tempdir().unwrap();
    let lambdas = Lambdas::start(echo_lambdas(record.path(), 1, SOON))
        .await
        .expect("start");
    let function = lambdas.function("$default");
    let first = answer(function.invoke(payload(json!({ "echo": "a" }))).await)["pid"].clone();

    let started = tokio::time::Instant::now();
    assert_eq!(
        function.invoke(payload(json!({ "crash": 3 }))).await,
        Err(InvokeError::Crashed {
            function: "ylambda-message".into()
        })
    );
    // Failed when the process died, not at the timeout.
    assert!(started.elapsed() < SOON);

    // The next invocation works, on the restarted process.
    let second = answer(function.invoke(payload(json!({ "echo": "b" }))).await);
    assert_eq!(second["value"], "b");
    assert_ne!(second["pid"], first, "served by a new process");
    assert_eq!(function.restarts(), 1);

    let response = lambdas.invoke(message_event(json!({ "crash": 4 }))).await;
    assert_eq!(response.status_code, 502);
    let response = lambdas.invoke(message_event(json!({ "echo": "c" }))).await;
    assert_eq!(response.status_code, 200);
    lambdas.stop().await;
}

#[tokio::test]
async fn a_slow_invocation_times_out_with_504() {
    let record = tempfile::tempdir().unwrap();
    let timeout = Duration::from_millis(500);
    let lambdas = Lambdas::start(echo_lambdas(record.path(), 1, timeout))
        .await
        .expect("start");
    let function = lambdas.function("$default");
    wait_pollers(function, 1).await;

    let started = tokio::time::Instant::now();
    assert_eq!(
        function.invoke(payload(json!("hang"))).await,
        Err(InvokeError::Timeout {
            function: "ylambda-message".into(),
            timeout
        })
    );
    assert!(started.elapsed() >= timeout);

    // The only process is still stuck in the first event, so this one waits in the queue: the
    // queueing counts against the timeout too, as a cold start does on AWS.
    let response = lambdas
        .invoke(message_event(json!({ "echo": "late" })))
        .await;
    assert_eq!(response.status_code, 504);
    assert_eq!(
        body_text(&response),
        r#"{"message":"Endpoint request timed out"}"#
    );
    lambdas.stop().await;
}

#[tokio::test]
async fn stopping_fails_waiting_invocations_and_ends_the_processes() {
    let record = tempfile::tempdir().unwrap();
    let function = Function::start(echo_spec(record.path(), 2, SOON))
        .await
        .expect("start");
    wait_pollers(&function, 2).await;
    let pids = function.pids();
    assert_eq!(pids.len(), 2);

    let hanging = function.invoke(payload(json!("hang")));
    let stop = async {
        wait_for("the event handed out", || {
            let n = function.runtime_api().in_flight();
            async move { (n == 1).then_some(()) }
        })
        .await;
        function.stop().await;
    };
    let (result, ()) = tokio::join!(hanging, stop);
    assert_eq!(
        result,
        Err(InvokeError::Stopped {
            function: "echo".into()
        })
    );
    assert!(function.pids().is_empty());
    #[cfg(unix)]
    for pid in pids {
        assert!(!is_alive(pid), "process {pid} was stopped");
    }
    assert!(matches!(
        function.invoke(payload(json!({ "echo": "x" }))).await,
        Err(InvokeError::Stopped { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// The gateway on Lambdas

#[tokio::test]
async fn the_gateway_runs_routes_through_the_processes_and_delivers_their_posts() {
    let record = tempfile::tempdir().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: data_dir.path().to_path_buf(),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = management_endpoint(listener.local_addr().unwrap());
    let lambdas = echo_lambdas(record.path(), 1, SOON).posting_to(&endpoint, &config.data_dir);
    let lambdas = Lambdas::start(lambdas).await.expect("lambdas");
    let gateway = Gateway::with_invoker(config, listener, Arc::new(lambdas)).expect("gateway");
    let server = TestServer::serve(gateway, data_dir);

    let room = room("lambdas");
    let (mut ws, id) = server.connect(&room).await;
    // The process posts to the gateway's @connections API, which delivers to this socket.
    send_text(
        &mut ws,
        &json!({ "post": "hello from a Lambda" }).to_string(),
    )
    .await;
    assert_eq!(
        next_data(&mut ws).await,
        Message::text("hello from a Lambda")
    );
    // A failing $default is logged, as on API Gateway; the connection stays open.
    send_text(&mut ws, &json!({ "fail": "boom" }).to_string()).await;
    send_text(&mut ws, &json!({ "post": "still here" }).to_string()).await;
    assert_eq!(next_data(&mut ws).await, Message::text("still here"));

    // The $connect Lambda's refusal refuses the upgrade with its status.
    match tokio_tungstenite::connect_async(server.ws_url("/?refuse=1")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected a refused upgrade, got {other:?}"),
    }

    // Shutdown closes the socket, runs its $disconnect through the Lambda, then stops the
    // processes.
    let closing = async { close_code(&mut ws).await };
    let (report, code) = tokio::join!(server.shutdown(), closing);
    assert_eq!(code, 1001);
    assert_eq!(report.connections_closed, 1);
    assert_eq!(report.connections_abandoned, 0);
    assert_eq!(report.rooms_compacted, 0, "no in-process compaction");

    let records = records(record.path());
    let lines: Vec<&String> = records.values().flatten().collect();
    assert!(
        lines.contains(&&format!("$connect {id} ")),
        "$connect ran in a process: {lines:#?}"
    );
    assert!(
        lines.contains(&&format!("$disconnect {id} ")),
        "$disconnect ran in a process: {lines:#?}"
    );
    #[cfg(unix)]
    for pid in records.keys() {
        assert!(!is_alive(*pid), "process {pid} was stopped on shutdown");
    }
}

// ---------------------------------------------------------------------------------------------
// Finding the binaries

#[cfg(unix)]
fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[cfg(unix)]
#[test]
fn binaries_are_found_flat_or_in_cargo_lambdas_layout() {
    let dir = tempfile::tempdir().unwrap();
    let error = LambdasConfig::from_dir(dir.path()).unwrap_err().to_string();
    assert!(error.contains("ylambda-connect"), "{error}");
    assert!(error.contains("bootstrap"), "{error}");

    // target/debug: flat. target/lambda: one folder per function with a bootstrap.
    make_executable(&dir.path().join("ylambda-connect"));
    make_executable(&dir.path().join("ylambda-disconnect/bootstrap"));
    let error = LambdasConfig::from_dir(dir.path()).unwrap_err().to_string();
    assert!(error.contains("no ylambda-message executable"), "{error}");
    make_executable(&dir.path().join("ylambda-message/bootstrap"));
    let config = LambdasConfig::from_dir(dir.path()).expect("all three found");
    assert_eq!(config.connect.path, dir.path().join("ylambda-connect"));
    assert_eq!(
        config.disconnect.path,
        dir.path().join("ylambda-disconnect/bootstrap")
    );
    assert_eq!(config.concurrency, 2);
    assert_eq!(config.timeout, Duration::from_secs(29));

    std::fs::write(dir.path().join("ylambda-connect"), "not executable").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.path().join("ylambda-connect"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let error = LambdasConfig::from_dir(dir.path()).unwrap_err().to_string();
    assert!(error.contains("is not executable"), "{error}");
}

#[tokio::test]
async fn dev_with_missing_lambdas_fails_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ylambda"))
        .args(["dev", "--listen", "127.0.0.1:0", "--lambdas"])
        .arg(dir.path())
        .env_remove("YLAMBDA_BACKEND")
        .output();
    let out = tokio::time::timeout(SOON, out)
        .await
        .expect("exits")
        .expect("run ylambda");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert!(stderr.contains("--lambdas"), "{stderr}");
    assert!(stderr.contains("ylambda-connect"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// The real binaries, end to end (needs the AWS backends)

/// Whether a CI system runs us: there, a test that needs setup must fail without it, not skip.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The AWS backend settings the real Lambdas need, or `None` to skip (outside CI only).
fn aws_backend() -> Option<()> {
    let required = ["YLAMBDA_REDIS_URL", "YLAMBDA_TABLE", "YLAMBDA_BUCKET"];
    let enabled = std::env::var("YLAMBDA_TEST_AWS").as_deref() == Ok("1");
    let missing: Vec<&str> = required
        .into_iter()
        .filter(|name| std::env::var(name).map_or(true, |v| v.trim().is_empty()))
        .collect();
    if enabled && missing.is_empty() {
        return Some(());
    }
    let why = if enabled {
        format!("YLAMBDA_TEST_AWS=1 but {} not set", missing.join(", "))
    } else {
        "YLAMBDA_TEST_AWS=1 is not set".to_string()
    };
    assert!(
        !in_ci(),
        "CI must run the real-Lambdas test: {why} (also set {})",
        required.join(", ")
    );
    eprintln!("skipped: {why}");
    None
}

/// `YLAMBDA_LAMBDAS_DIR`, or the target directory this test binary was built into.
fn lambdas_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("YLAMBDA_LAMBDAS_DIR") {
        return PathBuf::from(dir);
    }
    // target/debug/deps/lambdas-<hash> -> target/debug
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

#[tokio::test]
async fn dev_with_the_real_lambdas_answers_a_y_websocket_sync() {
    if aws_backend().is_none() {
        return;
    }
    let dir = lambdas_dir();
    if let Err(error) = LambdasConfig::from_dir(&dir) {
        panic!(
            "{error}\nbuild them first: cargo build -p ylambda-connect -p ylambda-disconnect \
             -p ylambda-message (or set YLAMBDA_LAMBDAS_DIR)"
        );
    }
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = ylambda_command()
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .arg("--lambdas")
        .arg(&dir)
        .env("YLAMBDA_BACKEND", "aws")
        .env_remove("YLAMBDA_MANAGEMENT_ENDPOINT")
        .spawn()
        .expect("spawn ylambda");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let url = listening_url(&mut stdout).await;

    // y-websocket over API Gateway: the room in the query, frames as base64 text.
    let room = room("real-lambdas");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/?room={room}"))
        .await
        .expect("connect through the $connect Lambda");
    // Sync step 1 with an empty state vector.
    send_text(&mut ws, "AAABAA==").await;
    let mut frames = Vec::new();
    for _ in 0..2 {
        match next_data(&mut ws).await {
            Message::Text(text) => frames.push(
                base64::engine::general_purpose::STANDARD
                    .decode(text.as_str())
                    .expect("base64 frame"),
            ),
            other => panic!("expected a base64 text frame, got {other:?}"),
        }
    }
    assert_eq!(frames[0][..2], [0, 1], "sync step 2 first: {frames:?}");
    assert_eq!(
        frames[1][..2],
        [0, 0],
        "then the server's sync step 1: {frames:?}"
    );
    ws.close(None).await.expect("close");
    let _ = wait_close(&mut ws).await;

    #[cfg(unix)]
    sigterm(&child);
    let mut stderr = child.stderr.take().unwrap();
    let mut log = String::new();
    let (status, _) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(child.wait(), stderr.read_to_string(&mut log))
    })
    .await
    .expect("ylambda exits");
    assert!(status.expect("wait").success(), "{log}");
    assert!(!log.contains("Lambda invocation failed"), "{log}");
    assert!(!log.contains("Lambda process exited"), "{log}");
}
