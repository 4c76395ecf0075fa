//! The API over the embedded stores: routes, access, caching and every error answer.
use std::sync::Mutex;

use async_trait::async_trait;
use http::{header, Method, Request, StatusCode};
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, Text, Transact};

use super::*;
use crate::adapters::{unix_now_secs, FsSnapshotStore, MemoryConnectionStore, MemoryDocStore};
use crate::auth::{mint_hs256, Access, Claims};
use crate::config::{Config, Secret};
use crate::handler::Ports;
use crate::ports::{Fanout, FanoutError, Scope};
use crate::protocol::transport::decode_frame;
use crate::protocol::ywebsocket::{decode_messages, Incoming};

const SECRET: &str = "api test secret, long enough for HS256";

#[derive(Default)]
struct Posts(Mutex<Vec<(String, String)>>);

#[async_trait]
impl Fanout for Posts {
    async fn post(&self, _endpoint: &str, id: &str, text: &str) -> Result<(), FanoutError> {
        self.0.lock().unwrap().push((id.into(), text.into()));
        Ok(())
    }
    async fn close(&self, _endpoint: &str, _id: &str) -> Result<(), FanoutError> {
        Ok(())
    }
}

struct Fixture {
    api: Api,
    handler: Arc<Handler>,
    posts: Arc<Posts>,
    _dir: tempfile::TempDir,
}

fn fixture(config: Config) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let posts = Arc::new(Posts::default());
    let handler = Arc::new(Handler::new(
        Ports {
            connections: Arc::new(MemoryConnectionStore::new()),
            docs: Arc::new(MemoryDocStore::new()),
            snapshots: Arc::new(FsSnapshotStore::new(dir.path()).unwrap()),
            fanout: posts.clone(),
        },
        config,
    ));
    Fixture {
        api: Api::new(handler.clone()),
        handler,
        posts,
        _dir: dir,
    }
}

fn with_auth() -> Config {
    Config {
        auth_secret: Some(Secret(SECRET.into())),
        ..Config::default()
    }
}

fn token(claims: Claims) -> String {
    mint_hs256(SECRET.as_bytes(), &claims).unwrap()
}

fn claims() -> Claims {
    Claims {
        exp: unix_now_secs() + 600,
        ..Claims::default()
    }
}

fn request(method: Method, uri: &str, token: Option<&str>, body: Vec<u8>) -> ApiRequest {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Bytes::from(body)).unwrap()
}

fn get(uri: &str, token: Option<&str>) -> ApiRequest {
    request(Method::GET, uri, token, Vec::new())
}

fn text_update(text: &str) -> Vec<u8> {
    update_from(7, text)
}

fn update_from(client: u64, text: &str) -> Vec<u8> {
    let doc = yrs::Doc::with_client_id(client);
    doc.get_or_insert_text("t")
        .insert(&mut doc.transact_mut(), 0, text);
    let update = doc
        .transact()
        .encode_state_as_update_v1(&yrs::StateVector::default());
    update
}

fn json_of(response: &ApiResponse) -> serde_json::Value {
    serde_json::from_slice(response.body()).unwrap()
}

/// The error code of a JSON error answer, after checking its status.
fn error_code(response: &ApiResponse, status: StatusCode) -> String {
    assert_eq!(response.status(), status, "{:?}", response.body());
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    json_of(response)["error"].as_str().unwrap().to_string()
}

#[test]
fn routes_and_percent_encoded_room_names() {
    assert_eq!(parse_route("/api/rooms").unwrap(), Route::Rooms);
    assert_eq!(parse_route("/api/rooms/").unwrap(), Route::Rooms);
    assert_eq!(
        parse_route("/api/rooms/a%2Fb%20c").unwrap(),
        Route::Room("a/b c".into())
    );
    assert_eq!(
        parse_route("/api/rooms/r/state").unwrap(),
        Route::State("r".into())
    );
    assert_eq!(
        parse_route("/api/rooms/r/update").unwrap(),
        Route::Update("r".into())
    );
    for path in [
        "/api",
        "/api/",
        "/api/rooms/r/other",
        "/api/rooms/r/state/x",
        "/rooms",
    ] {
        assert_eq!(
            parse_route(path).unwrap_err().status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        parse_route("/api/rooms/%FF").unwrap_err().status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn an_update_posted_is_stored_relayed_and_served_with_etags() {
    let f = fixture(Config::default());
    let unknown = f.api.handle(get("/api/rooms/board/state", None)).await;
    assert_eq!(error_code(&unknown, StatusCode::NOT_FOUND), "no_such_room");

    // A connected member of the room gets the posted update live.
    let member = crate::conformance::membership(
        &Scope::Room("board".into()),
        "conn-1",
        crate::conformance::in_an_hour(),
    );
    f.handler.ports().connections.join(member).await.unwrap();
    let posted = f
        .api
        .handle(request(
            Method::POST,
            "/api/rooms/board/update",
            None,
            text_update("hello"),
        ))
        .await;
    assert_eq!(posted.status(), StatusCode::OK);
    assert_eq!(json_of(&posted), serde_json::json!({"applied": true}));
    let relayed = f.posts.0.lock().unwrap().clone();
    assert_eq!(relayed.len(), 1, "the member got the update");
    let messages = decode_messages(&decode_frame(&relayed[0].1).unwrap()).unwrap();
    assert!(matches!(&messages[0], Incoming::Update(u) if !u.is_empty()));

    let state = f.api.handle(get("/api/rooms/board/state", None)).await;
    assert_eq!(state.status(), StatusCode::OK);
    assert_eq!(
        state.headers()[header::CONTENT_TYPE],
        "application/octet-stream"
    );
    assert_eq!(state.headers()[header::CACHE_CONTROL], "max-age=3");
    let etag = state.headers()[header::ETAG].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong tag: {etag}"
    );
    let doc = yrs::Doc::new();
    doc.transact_mut()
        .apply_update(yrs::Update::decode_v1(state.body()).unwrap())
        .unwrap();
    assert_eq!(
        doc.get_or_insert_text("t").get_string(&doc.transact()),
        "hello"
    );

    // Same state, same tag: 304 without a body; a weak or listed match counts too.
    for value in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".into(),
    ] {
        let mut again = get("/api/rooms/board/state", None);
        again
            .headers_mut()
            .insert(header::IF_NONE_MATCH, value.parse().unwrap());
        let not_modified = f.api.handle(again).await;
        assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED, "{value}");
        assert!(not_modified.body().is_empty());
        assert_eq!(not_modified.headers()[header::ETAG], etag.as_str());
    }
    // A new update changes the tag.
    f.api
        .handle(request(
            Method::POST,
            "/api/rooms/board/update",
            None,
            update_from(8, "!"),
        ))
        .await;
    let mut stale = get("/api/rooms/board/state", None);
    stale
        .headers_mut()
        .insert(header::IF_NONE_MATCH, etag.parse().unwrap());
    let changed = f.api.handle(stale).await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers()[header::ETAG], etag.as_str());

    let json = f
        .api
        .handle(get("/api/rooms/board/state?format=json", None))
        .await;
    assert_eq!(json.status(), StatusCode::OK);
    assert_eq!(json.headers()[header::CONTENT_TYPE], "application/json");
    let text = json_of(&json)["t"].as_str().unwrap().to_string();
    assert!(text == "hello!" || text == "!hello", "{text}");
    assert!(json.headers()[header::ETAG]
        .to_str()
        .unwrap()
        .ends_with("-json\""));

    let detail = json_of(&f.api.handle(get("/api/rooms/board", None)).await);
    assert_eq!(detail["connections"], 1);
    assert_eq!(detail["members"][0]["connection_id"], "conn-1");
    assert_eq!(detail["events"][0]["kind"], "opened");
    let list = json_of(&f.api.handle(get("/api/rooms", None)).await);
    assert_eq!(list["rooms"][0]["room"], "board");
    assert_eq!(list["rooms"][0]["connections"], 1);
    assert_eq!(list["next"], serde_json::Value::Null);
}

#[tokio::test]
async fn bad_requests_get_clear_json_errors() {
    let f = fixture(Config {
        max_assembled_bytes: 1024,
        ..Config::default()
    });
    let cases = [
        (
            request(Method::POST, "/api/rooms/r/update", None, vec![1, 2, 3]),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            request(Method::POST, "/api/rooms/r/update", None, Vec::new()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            request(Method::POST, "/api/rooms/r/update", None, vec![0; 1025]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            request(Method::GET, "/api/rooms/r/update", None, Vec::new()),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            request(Method::DELETE, "/api/rooms", None, Vec::new()),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            get("/api/rooms?limit=0", None),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            get("/api/rooms?limit=101", None),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            get("/api/rooms?after=forged", None),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            get("/api/rooms/r/state?format=xml", None),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            get("/api/rooms/nobody", None),
            StatusCode::NOT_FOUND,
            "no_such_room",
        ),
        (
            get("/api/nothing", None),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (request, status, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let response = f.api.handle(request).await;
        assert_eq!(error_code(&response, status), code, "{what}");
    }
    let wrong_method = f.api.handle(get("/api/rooms/r/update", None)).await;
    assert_eq!(wrong_method.headers()[header::ALLOW], "POST");
    assert_eq!(
        f.api
            .handle(request(
                Method::POST,
                "/api/rooms/%00/update",
                None,
                text_update("x")
            ))
            .await
            .status(),
        StatusCode::BAD_REQUEST,
        "room names are validated as at $connect"
    );
    // An empty update is valid and does nothing.
    let empty = f
        .api
        .handle(request(
            Method::POST,
            "/api/rooms/r/update",
            None,
            vec![0, 0],
        ))
        .await;
    assert_eq!(json_of(&empty), serde_json::json!({"applied": false}));
    assert!(f.posts.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn tokens_open_what_they_grant_and_nothing_else() {
    let f = fixture(with_auth());
    let admin = token(Claims {
        admin: Some(true),
        ..claims()
    });
    let writer = token(Claims {
        room: Some("team/*".into()),
        ..claims()
    });
    let reader = token(Claims {
        room: Some("team/doc".into()),
        access: Some(Access::Ro),
        ..claims()
    });
    let expired = token(Claims {
        exp: unix_now_secs() - 10,
        room: Some("team/doc".into()),
        ..claims()
    });
    let forged = mint_hs256(
        b"another secret",
        &Claims {
            admin: Some(true),
            ..claims()
        },
    )
    .unwrap();
    let no_grant = token(claims());
    let post = |token: Option<&str>| {
        request(
            Method::POST,
            "/api/rooms/team%2Fdoc/update",
            token,
            text_update("x"),
        )
    };
    let state = |token: Option<&str>| get("/api/rooms/team%2Fdoc/state", token);

    for bad in [
        None,
        Some("not-a-jwt"),
        Some(forged.as_str()),
        Some(expired.as_str()),
        Some(no_grant.as_str()),
    ] {
        let response = f.api.handle(state(bad)).await;
        assert_eq!(
            error_code(&response, StatusCode::UNAUTHORIZED),
            "unauthorized",
            "{bad:?}"
        );
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
    assert_eq!(
        f.api.handle(post(Some(&writer))).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        f.api.handle(state(Some(&reader))).await.status(),
        StatusCode::OK
    );
    let denied = f.api.handle(post(Some(&reader))).await;
    assert_eq!(error_code(&denied, StatusCode::FORBIDDEN), "forbidden");
    let other_room = f
        .api
        .handle(get("/api/rooms/elsewhere/state", Some(&writer)))
        .await;
    assert_eq!(error_code(&other_room, StatusCode::FORBIDDEN), "forbidden");
    let listing = f.api.handle(get("/api/rooms", Some(&writer))).await;
    assert_eq!(error_code(&listing, StatusCode::FORBIDDEN), "forbidden");
    assert_eq!(
        f.api.handle(get("/api/rooms", Some(&admin))).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        f.api.handle(post(Some(&admin))).await.status(),
        StatusCode::OK
    );
    // ?token= for clients that cannot set headers (EventSource, <img>).
    let by_query = f
        .api
        .handle(get(
            &format!("/api/rooms/team%2Fdoc/state?token={reader}"),
            None,
        ))
        .await;
    assert_eq!(by_query.status(), StatusCode::OK);
}
