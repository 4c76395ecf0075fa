//! `ylambda dev`'s gateway against a real WebSocket client and a real HTTP client: API Gateway's
//! rules, the `@connections` API, `$connect` refusals, registry cleanup and shutdown.
mod common;

use std::time::Duration;

use common::*;
use futures::SinkExt;
use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn default_route_reaches_the_handler_and_replies_come_back() {
    let server = TestServer::start().await;
    // A signaling-only connection (no room): y-webrtc's ping gets the handler's pong.
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/"))
        .await
        .expect("connect");
    for _ in 0..3 {
        send_text(&mut ws, r#"{"type":"ping"}"#).await;
    }
    for _ in 0..3 {
        match next_data(&mut ws).await {
            Message::Text(t) => assert_eq!(t.as_str(), r#"{"type":"pong"}"#),
            other => panic!("expected pong, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn ping_frames_get_pongs() {
    let server = TestServer::start().await;
    let (mut ws, _) = server.connect(&room("ping")).await;
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let msg = tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut ws))
            .await
            .expect("pong in time")
            .expect("open")
            .expect("read");
        if let Message::Pong(payload) = msg {
            assert_eq!(&payload[..], b"are you there");
            break;
        }
    }
}

#[tokio::test]
async fn binary_frame_is_closed_with_1003() {
    let server = TestServer::start().await;
    let (mut ws, id) = server.connect(&room("binary")).await;
    ws.send(Message::binary(vec![0u8, 1, 2, 3])).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 1003);
    server.wait_gone(&id).await;
}

#[tokio::test]
async fn oversized_text_is_closed_with_1009() {
    let server = TestServer::start_with(|c| c.max_message_bytes = 2048).await;
    let (mut ws, id) = server.connect(&room("big")).await;
    send_text(&mut ws, &"x".repeat(2049)).await;
    assert_eq!(close_code(&mut ws).await, 1009);
    server.wait_gone(&id).await;
}

/// A y-webrtc ping padded to `len` bytes: the handler answers it with a pong.
fn padded_ping(len: usize) -> String {
    let head = r#"{"type":"ping","pad":""#;
    let tail = r#""}"#;
    format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
}

#[tokio::test]
async fn frame_over_32k_is_closed_with_1009_but_fragments_are_fine() {
    // API Gateway: 128 KB per message, 32 KB per frame.
    let server = TestServer::start().await;
    let message = padded_ping(40 * 1024);

    // The same 40 KB message in 32 KB fragments goes through.
    let (mut ws, _) = server.connect(&room("fragments")).await;
    let (first, rest) = message.as_bytes().split_at(32 * 1024);
    ws.send(Message::Frame(Frame::message(
        first.to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        rest.to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    assert_eq!(
        next_data(&mut ws).await,
        Message::text(r#"{"type":"pong"}"#)
    );

    // In one frame it does not.
    let (mut ws, id) = server.connect(&room("one-frame")).await;
    let _ = ws.send(Message::text(message)).await;
    assert_eq!(close_code(&mut ws).await, 1009);
    server.wait_gone(&id).await;
}

#[tokio::test]
async fn far_oversized_text_still_ends_the_connection() {
    // A 200 KB frame: the WebSocket library refuses it on its header (32 KB frame limit); the
    // close frame may or may not reach a client that is still writing, but the connection ends.
    let server = TestServer::start_with(|c| c.max_message_bytes = 2048).await;
    let (mut ws, id) = server.connect(&room("huge")).await;
    // The server may close before the whole message is written: ignore send errors.
    let _ = ws.send(Message::text("x".repeat(200 * 1024))).await;
    if let Some(frame) = wait_close(&mut ws).await {
        assert_eq!(u16::from(frame.code), 1009);
    }
    server.wait_gone(&id).await;
}

#[tokio::test]
async fn idle_connection_is_closed_with_1001() {
    let server = TestServer::start_with(|c| c.idle_timeout = Duration::from_secs(1)).await;
    let (mut ws, id) = server.connect(&room("idle")).await;
    let frame = wait_close_within(&mut ws, Duration::from_secs(5))
        .await
        .expect("close frame");
    assert_eq!(u16::from(frame.code), 1001);
    assert_eq!(frame.reason.as_str(), "Going away");
    server.wait_gone(&id).await;
}

#[tokio::test]
async fn connection_is_closed_after_its_max_duration() {
    let server = TestServer::start_with(|c| {
        c.max_connection = Duration::from_secs(2);
        c.idle_timeout = Duration::from_secs(600);
    })
    .await;
    let (mut ws, id) = server.connect(&room("max")).await;
    let started = tokio::time::Instant::now();
    let frame = wait_close_within(&mut ws, Duration::from_secs(6))
        .await
        .expect("close frame");
    assert_eq!(u16::from(frame.code), 1001);
    assert!(started.elapsed() >= Duration::from_millis(1500));
    server.wait_gone(&id).await;
}

#[tokio::test]
async fn connections_api_post_get_delete() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let (mut ws, id) = server.connect(&room("mgmt")).await;
    assert!(id.ends_with('='), "API Gateway-like id: {id}");
    let path = format!("/@connections/{}", encode_id(&id));

    // POST: UTF-8 arrives as a text frame.
    let r = http
        .post(server.http_url(&path))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    match next_data(&mut ws).await {
        Message::Text(t) => assert_eq!(t.as_str(), "hello"),
        other => panic!("expected text, got {other:?}"),
    }
    // Not UTF-8: a binary frame.
    let r = http
        .post(server.http_url(&path))
        .body(vec![0xffu8, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    match next_data(&mut ws).await {
        Message::Binary(b) => assert_eq!(&b[..], &[0xff, 0xfe, 0x00]),
        other => panic!("expected binary, got {other:?}"),
    }
    // The stage-prefixed form the SDK uses when the endpoint has a stage.
    let staged = format!("/local/@connections/{}", encode_id(&id));
    let r = http
        .post(server.http_url(&staged))
        .body("staged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    match next_data(&mut ws).await {
        Message::Text(t) => assert_eq!(t.as_str(), "staged"),
        other => panic!("expected text, got {other:?}"),
    }

    // GET: connection info.
    let r = http.get(server.http_url(&staged)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let info: serde_json::Value = r.json().await.unwrap();
    assert_eq!(info["identity"]["sourceIp"], "127.0.0.1");
    let connected_at = info["connectedAt"].as_str().expect("connectedAt");
    assert!(
        connected_at.len() == 24 && connected_at.ends_with('Z') && connected_at.contains('T'),
        "ISO 8601: {connected_at}"
    );
    assert!(info["lastActiveAt"].as_str().is_some());

    // DELETE: closes the socket.
    let r = http.delete(server.http_url(&path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(close_code(&mut ws).await, 1008);
    server.wait_gone(&id).await;

    // And now it is gone for all three.
    for method in [
        reqwest::Method::POST,
        reqwest::Method::GET,
        reqwest::Method::DELETE,
    ] {
        let r = http
            .request(method.clone(), server.http_url(&path))
            .body("late")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::GONE, "{method} after close");
    }
}

#[tokio::test]
async fn connections_api_answers_410_for_unknown_ids() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    for path in [
        "/@connections/AAAAAAAAAAAAAAA%3D",
        "/prod/@connections/nobody=",
    ] {
        for method in [
            reqwest::Method::POST,
            reqwest::Method::GET,
            reqwest::Method::DELETE,
        ] {
            let r = http
                .request(method.clone(), server.http_url(path))
                .body("x")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::GONE, "{method} {path}");
            assert_eq!(
                r.headers()
                    .get("x-amzn-errortype")
                    .and_then(|v| v.to_str().ok()),
                Some("GoneException")
            );
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["message"], "Gone");
        }
    }
}

#[tokio::test]
async fn connections_api_refuses_posts_over_the_limit() {
    let server = TestServer::start_with(|c| c.max_message_bytes = 2048).await;
    let (_ws, id) = server.connect(&room("limit")).await;
    let r = reqwest::Client::new()
        .post(server.http_url(&format!("/@connections/{}", encode_id(&id))))
        .body("x".repeat(2049))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn stage_path_is_accepted_and_deeper_paths_are_refused() {
    let server = TestServer::start().await;
    let room = room("stage");
    let (_ws, id) = server.connect_at("/dev", &room).await;
    let listed = server.connections.list();
    let me = listed.iter().find(|c| c.connection_id == id).unwrap();
    assert_eq!(me.stage, "dev");

    match tokio_tungstenite::connect_async(server.ws_url("/dev/some-room")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn refused_connect_refuses_the_upgrade_with_the_handlers_status() {
    let server = TestServer::start().await;
    let too_long = "r".repeat(600);
    for query in ["?room=".to_string(), format!("?room={too_long}")] {
        match tokio_tungstenite::connect_async(server.ws_url(&format!("/{query}"))).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 400, "{query}");
                let body =
                    String::from_utf8_lossy(response.body().as_deref().unwrap_or(&[])).to_string();
                assert!(body.contains("room"), "body explains the refusal: {body:?}");
            }
            other => panic!("expected a refused upgrade, got {:?}", other.map(|_| ())),
        }
    }
    assert!(server.connections.list().is_empty());
}

#[tokio::test]
async fn closed_connection_answers_410_once_its_disconnect_ran() {
    let server = TestServer::start().await;
    let (mut ws, id) = server.connect(&room("bye")).await;
    ws.close(None).await.unwrap();
    // Drain until the server's side of the close handshake.
    let _ = wait_close(&mut ws).await;
    server.wait_gone(&id).await;
    let r = reqwest::Client::new()
        .post(server.http_url(&format!("/@connections/{}", encode_id(&id))))
        .body("anyone?")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
}

#[tokio::test]
async fn user_agent_reaches_the_connection_info() {
    let server = TestServer::start().await;
    let room = room("ua");
    let mut request = server
        .ws_url(&format!("/?room={room}"))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("user-agent", HeaderValue::from_static("ylambda-test/1.0"));
    let (_ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let id = server.connection_id_of(&room).await;
    let info: serde_json::Value = reqwest::get(server.http_url(&format!("/@connections/{id}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["identity"]["userAgent"], "ylambda-test/1.0");
}

#[tokio::test]
async fn shutdown_closes_everyone_with_1001_and_compacts_rooms() {
    let server = TestServer::start().await;
    let room_a = room("shut-a");
    let room_b = room("shut-b");
    let (mut a, _) = server.connect(&room_a).await;
    let (mut b, _) = server.connect(&room_b).await;

    let closes = tokio::spawn(async move { (close_code(&mut a).await, close_code(&mut b).await) });
    let report = server.shutdown().await;
    assert_eq!(closes.await.unwrap(), (1001, 1001));
    assert_eq!(report.connections_closed, 2);
    assert_eq!(report.connections_abandoned, 0);
    assert_eq!(report.rooms_compacted + report.rooms_failed, 2);
    assert_eq!(report.rooms_failed, 0);
}
