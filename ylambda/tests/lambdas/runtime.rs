//! The local Runtime API and the processes: each event to exactly one process, the Lambda
//! environment, errors, crashes, timeouts, stopping.
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use ylambda::lambdas::{Function, InvokeError};
use ylambda::{Invoker, Lambdas};

use super::echo::*;
use crate::common::*;

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
