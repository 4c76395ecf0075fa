//! The HTTP API's Lambda edge (`lambda_api.rs`) on a Function URL event shaped like AWS's: a
//! base64 body reaches the API as bytes, answers come back as one streamed chunk with their
//! status and headers, and `/api/events` streams.
use std::sync::Arc;

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use base64::Engine;
use futures::StreamExt;
use ylambda_shared::adapters::{FsSnapshotStore, MemoryConnectionStore, MemoryDocStore};
use ylambda_shared::api::Api;
use ylambda_shared::config::Config;
use ylambda_shared::handler::{Handler, Ports};
use ylambda_shared::lambda_api::{respond, to_request};
use ylambda_shared::ports::{Fanout, FanoutError};
use yrs::{ReadTxn, Text, Transact};

struct NoPosts;

#[async_trait::async_trait]
impl Fanout for NoPosts {
    async fn post(&self, _: &str, _: &str, _: &str) -> Result<(), FanoutError> {
        Ok(())
    }
    async fn close(&self, _: &str, _: &str) -> Result<(), FanoutError> {
        Ok(())
    }
}

fn api(dir: &std::path::Path) -> Api {
    Api::new(Arc::new(Handler::new(
        Ports {
            connections: Arc::new(MemoryConnectionStore::new()),
            docs: Arc::new(MemoryDocStore::new()),
            snapshots: Arc::new(FsSnapshotStore::new(dir).unwrap()),
            fanout: Arc::new(NoPosts),
        },
        Config::default(),
    )))
}

fn update() -> Vec<u8> {
    let doc = yrs::Doc::with_client_id(3);
    doc.get_or_insert_text("t")
        .insert(&mut doc.transact_mut(), 0, "from a Function URL");
    let update = doc
        .transact()
        .encode_state_as_update_v1(&yrs::StateVector::default());
    update
}

fn post_event(body: &str) -> LambdaFunctionUrlRequest {
    let text = include_str!("fixtures/function-url-post-update.json").replace("BODY", body);
    serde_json::from_str(&text).unwrap()
}

fn get_event(path_and_query: &str) -> LambdaFunctionUrlRequest {
    let mut event = post_event("");
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    event.raw_path = Some(path.into());
    event.raw_query_string = Some(query.into());
    event.request_context.http.method = Some("GET".into());
    event.body = None;
    event.is_base64_encoded = false;
    event
}

async fn collect(
    response: lambda_runtime::StreamResponse<ylambda_shared::lambda_api::ResponseStream>,
) -> (u16, http::HeaderMap, Vec<u8>) {
    let mut body = Vec::new();
    let mut stream = response.stream;
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.unwrap());
    }
    (
        response.metadata_prelude.status_code.as_u16(),
        response.metadata_prelude.headers,
        body,
    )
}

#[test]
fn a_function_url_event_becomes_the_request_it_describes() {
    let bytes = update();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let request = to_request(post_event(&encoded)).unwrap();
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(request.uri().path(), "/api/rooms/team%2Fboard/update");
    assert_eq!(
        request.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(
        request.body().as_ref(),
        bytes.as_slice(),
        "the base64 body decoded"
    );
    assert!(to_request(post_event("not base64!")).is_err());
}

#[tokio::test]
async fn requests_are_answered_as_streams_with_status_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let api = api(dir.path());
    let encoded = base64::engine::general_purpose::STANDARD.encode(update());
    let (status, _, body) = collect(respond(&api, post_event(&encoded)).await).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let (status, headers, body) =
        collect(respond(&api, get_event("/api/rooms/team%2Fboard/state?format=json")).await).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "max-age=3");
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers.contains_key("etag"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"t": "from a Function URL"})
    );

    let (status, _, body) = collect(respond(&api, post_event("not base64!")).await).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = collect(respond(&api, get_event("/api/rooms/nobody/state")).await).await;
    assert_eq!(status, 404);

    // The event stream: headers at once, then its first chunks.
    let response = respond(&api, get_event("/api/events")).await;
    assert_eq!(response.metadata_prelude.status_code.as_u16(), 200);
    assert_eq!(
        response.metadata_prelude.headers["content-type"],
        "text/event-stream"
    );
    let mut stream = response.stream;
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.as_ref(), b"retry: 2000\n\n");
    let rooms = String::from_utf8(stream.next().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(rooms.starts_with("event: rooms\ndata: "), "{rooms}");
}
