//! The gateway on Lambda processes: routes through them, their posts delivered.
use std::sync::Arc;

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use ylambda::{management_endpoint, Gateway, Lambdas};
use ylambda_shared::config::Config;

use super::echo::*;
use crate::common::*;

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
