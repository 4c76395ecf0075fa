//! Real API Gateway WebSocket event JSON through the entry point the Lambda crates run.
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use ylambda_shared::adapters::{FsSnapshotStore, MemoryConnectionStore, MemoryDocStore};
use ylambda_shared::config::Config;
use ylambda_shared::handler::{Handler, Ports};
use ylambda_shared::lambda::{handle_route, Route};
use ylambda_shared::ports::{ConnectionStore, Fanout, FanoutError, Scope};

const CONNECT: &[u8] = include_bytes!("fixtures/apigw-websocket-connect.json");
const DEFAULT: &[u8] = include_bytes!("fixtures/apigw-websocket-default.json");
const DISCONNECT: &[u8] = include_bytes!("fixtures/apigw-websocket-disconnect.json");

#[derive(Default)]
struct Posts(Mutex<Vec<(String, String, String)>>);

#[async_trait]
impl Fanout for Posts {
    async fn post(&self, endpoint: &str, id: &str, text: &str) -> Result<(), FanoutError> {
        self.0
            .lock()
            .unwrap()
            .push((endpoint.into(), id.into(), text.into()));
        Ok(())
    }
    async fn close(&self, _endpoint: &str, _id: &str) -> Result<(), FanoutError> {
        Ok(())
    }
}

fn event(json: &[u8]) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_slice(json).expect("fixture parses as ApiGatewayWebsocketProxyRequest")
}

fn body(r: &ApiGatewayProxyResponse) -> String {
    match &r.body {
        Some(Body::Text(t)) => t.clone(),
        _ => String::new(),
    }
}

struct Setup {
    handler: Handler,
    connections: Arc<MemoryConnectionStore>,
    posts: Arc<Posts>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let connections = Arc::new(MemoryConnectionStore::new());
    let posts = Arc::new(Posts::default());
    let handler = Handler::new(
        Ports {
            connections: connections.clone(),
            docs: Arc::new(MemoryDocStore::new()),
            snapshots: Arc::new(FsSnapshotStore::new(dir.path()).unwrap()),
            fanout: posts.clone(),
        },
        Config::default(),
    );
    Setup {
        handler,
        connections,
        posts,
        _dir: dir,
    }
}

#[test]
fn fixtures_round_trip_through_aws_lambda_events() {
    for json in [CONNECT, DEFAULT, DISCONNECT] {
        let parsed = event(json);
        let again: ApiGatewayWebsocketProxyRequest =
            serde_json::from_value(serde_json::to_value(&parsed).unwrap()).unwrap();
        assert_eq!(
            again.request_context.connection_id,
            parsed.request_context.connection_id
        );
        assert_eq!(
            again.request_context.route_key,
            parsed.request_context.route_key
        );
        assert_eq!(again.body, parsed.body);
    }
}

#[tokio::test]
async fn connect_default_disconnect_through_the_lambda_entry_point() {
    let s = setup();
    let room = Scope::Room("design review".into());

    let r = handle_route(&s.handler, Route::Connect, event(CONNECT)).await;
    assert_eq!(r.status_code, 200, "{}", body(&r));
    let members = s.connections.members(&room).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].connection_id, "L0SM9cOFvHcCIhw=");
    assert_eq!(
        members[0].endpoint,
        "https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod"
    );

    let r = handle_route(&s.handler, Route::Default, event(DEFAULT)).await;
    assert_eq!(r.status_code, 200, "{}", body(&r));
    let posts = s.posts.0.lock().unwrap().clone();
    assert_eq!(posts.len(), 2, "sync step 2 then sync step 1: {posts:?}");
    assert!(posts.iter().all(|(endpoint, id, _)| {
        endpoint == "https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod"
            && id == "L0SM9cOFvHcCIhw="
    }));

    let r = handle_route(&s.handler, Route::Disconnect, event(DISCONNECT)).await;
    assert_eq!(r.status_code, 200, "{}", body(&r));
    assert!(s.connections.members(&room).await.unwrap().is_empty());
}

#[tokio::test]
async fn refusals_map_to_status_codes() {
    let s = setup();
    // Wrong function for the route.
    let r = handle_route(&s.handler, Route::Disconnect, event(CONNECT)).await;
    assert_eq!(r.status_code, 400);
    assert!(body(&r).contains("$disconnect"));

    // An empty room name refuses the connection.
    let mut bad = serde_json::from_slice::<serde_json::Value>(CONNECT).unwrap();
    bad["queryStringParameters"]["room"] = "".into();
    bad["multiValueQueryStringParameters"]["room"] = serde_json::json!([""]);
    let r = handle_route(
        &s.handler,
        Route::Connect,
        serde_json::from_value(bad).unwrap(),
    )
    .await;
    assert_eq!(r.status_code, 400);

    // No connection id at all.
    let mut bad = serde_json::from_slice::<serde_json::Value>(DEFAULT).unwrap();
    bad["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("connectionId");
    let r = handle_route(
        &s.handler,
        Route::Default,
        serde_json::from_value(bad).unwrap(),
    )
    .await;
    assert_eq!(r.status_code, 400);

    // A body marked base64 that decodes to binary is refused.
    let mut bad = event(DEFAULT);
    bad.is_base64_encoded = true;
    bad.body = Some("//79/A==".into());
    let r = handle_route(&s.handler, Route::Default, bad).await;
    assert_eq!(r.status_code, 400);

    // A $default from a connection that never joined a room is refused with a reason.
    let r = handle_route(&s.handler, Route::Default, event(DEFAULT)).await;
    assert_eq!(r.status_code, 400);
    assert!(body(&r).contains("room"), "{}", body(&r));
}

#[tokio::test]
async fn a_base64_marked_text_body_is_decoded() {
    let s = setup();
    handle_route(&s.handler, Route::Connect, event(CONNECT)).await;
    let mut e = event(DEFAULT);
    e.is_base64_encoded = true;
    e.body = Some("QUFBQkFBPT0=".into()); // base64 of the text "AAABAA=="
    let r = handle_route(&s.handler, Route::Default, e).await;
    assert_eq!(r.status_code, 200, "{}", body(&r));
    assert_eq!(s.posts.0.lock().unwrap().len(), 2);
}
