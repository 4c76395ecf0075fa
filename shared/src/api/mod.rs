//! The HTTP API (`/api/...`): the room directory, a room's document (read, cached, rendered as
//! JSON) and updates from server-side writers. One core over the handler, served the same by
//! `ylambda dev` on its port and by the `functions/api` Lambda; both hand it an
//! `http::Request<Bytes>` and send back its `http::Response<Bytes>`.
//!
//! | route | answers |
//! | --- | --- |
//! | `GET /api/rooms?limit=N&after=CURSOR` | active rooms, newest first (admin token) |
//! | `GET /api/rooms/{room}` | the room's record, current connections, recent events |
//! | `GET /api/rooms/{room}/state[?format=json]` | the merged document (`ETag`, 304, `max-age=3`) |
//! | `POST /api/rooms/{room}/update` | a binary Yjs update, applied and relayed like a WebSocket one |
//! | `GET /api/events` | the live dashboard feed, server-sent events (admin token; `Api::events`) |
//!
//! Room names are one percent-encoded path segment (`/` in a name is `%2F`). Errors are JSON,
//! `{"error": code, "message": text}`.
mod access;
mod documents;
mod errors;
mod events;
mod rooms;

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};

use crate::handler::Handler;
pub use errors::ApiError;
pub use events::{stream_headers, EventStream, MAX_STREAM};

pub type ApiRequest = Request<Bytes>;
pub type ApiResponse = Response<Bytes>;

/// The path prefix every route of the API lives under.
pub const API_PREFIX: &str = "/api/";

/// The HTTP API over one handler (and so over its stores and fanout).
pub struct Api {
    handler: Arc<Handler>,
}

/// What a request's path names.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Rooms,
    Events,
    Room(String),
    State(String),
    Update(String),
}

impl Api {
    pub fn new(handler: Arc<Handler>) -> Api {
        Api { handler }
    }

    /// The largest request body the API reads (the largest message a client may assemble,
    /// `YLAMBDA_MAX_ASSEMBLED_BYTES`); servers refuse longer bodies with 413 before reading them.
    pub fn max_body_bytes(&self) -> usize {
        self.handler.config().max_assembled_bytes
    }

    /// Answers one request; never fails (errors are JSON answers).
    pub async fn handle(&self, request: ApiRequest) -> ApiResponse {
        let mut response = self.answer(&request).await;
        cors(response.headers_mut());
        response
    }

    async fn answer(&self, request: &ApiRequest) -> ApiResponse {
        if request.method() == Method::OPTIONS {
            // A browser's preflight for a cross-origin call (the dashboard hosted on S3).
            let mut response = Response::new(Bytes::new());
            *response.status_mut() = StatusCode::NO_CONTENT;
            let headers = response.headers_mut();
            headers.insert(
                http::header::ACCESS_CONTROL_ALLOW_METHODS,
                http::HeaderValue::from_static("GET, POST, OPTIONS"),
            );
            headers.insert(
                http::header::ACCESS_CONTROL_ALLOW_HEADERS,
                http::HeaderValue::from_static(
                    "Authorization, Content-Type, If-None-Match, Last-Event-ID",
                ),
            );
            headers.insert(
                http::header::ACCESS_CONTROL_MAX_AGE,
                http::HeaderValue::from_static("600"),
            );
            return response;
        }
        match self.route(request).await {
            Ok(response) => response,
            Err(error) => {
                if error.status.is_server_error() {
                    tracing::error!(path = request.uri().path(), %error, "API request failed");
                } else {
                    tracing::debug!(path = request.uri().path(), %error, "API request refused");
                }
                error.into_response()
            }
        }
    }

    /// `GET /api/events`: the dashboard feed as a stream of server-sent events (admin token).
    /// Servers that can stream a response call this for that path instead of [`Api::handle`].
    pub async fn events(&self, request: &ApiRequest) -> Result<EventStream, ApiError> {
        if request.method() != Method::GET {
            return Err(ApiError::method_not_allowed(&Method::GET));
        }
        access::require_admin(&self.handler, request).await?;
        events::open(self.handler.clone(), request).await
    }

    async fn route(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let route = parse_route(request.uri().path())?;
        let method = request.method();
        let allowed = match route {
            Route::Update(_) => Method::POST,
            _ => Method::GET,
        };
        if method != allowed && !(method == Method::HEAD && allowed == Method::GET) {
            return Err(ApiError::method_not_allowed(&allowed));
        }
        if request.body().len() > self.max_body_bytes() {
            return Err(ApiError::too_large(self.max_body_bytes()));
        }
        let response = match &route {
            Route::Rooms => {
                access::require_admin(&self.handler, request).await?;
                rooms::list(&self.handler, request).await?
            }
            Route::Events => {
                return Err(ApiError::not_streaming());
            }
            Route::Room(room) => {
                access::require_room(&self.handler, request, room, false).await?;
                rooms::detail(&self.handler, room).await?
            }
            Route::State(room) => {
                access::require_room(&self.handler, request, room, false).await?;
                documents::state(&self.handler, request, room).await?
            }
            Route::Update(room) => {
                access::require_room(&self.handler, request, room, true).await?;
                documents::update(&self.handler, request, room).await?
            }
        };
        Ok(if method == Method::HEAD {
            let (parts, _) = response.into_parts();
            Response::from_parts(parts, Bytes::new())
        } else {
            response
        })
    }
}

/// Cross-origin access for browsers: the API's answers are for bearer-token callers (no
/// cookies), so any origin may read them, the `ETag` included.
pub fn cors(headers: &mut http::HeaderMap) {
    headers.insert(
        http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
        http::HeaderValue::from_static("*"),
    );
    headers.insert(
        http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
        http::HeaderValue::from_static("ETag"),
    );
}

/// The route a path names; room names are percent-decoded (and must be UTF-8).
fn parse_route(path: &str) -> Result<Route, ApiError> {
    let rest = path
        .strip_prefix(API_PREFIX)
        .ok_or_else(|| ApiError::not_found(path))?;
    let segments: Vec<&str> = rest.split('/').collect();
    let room = |segment: &str| -> Result<String, ApiError> {
        percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .map(|name| name.into_owned())
            .map_err(|_| {
                ApiError::bad_request("room name is not UTF-8 once percent-decoded".to_string())
            })
    };
    match segments.as_slice() {
        ["rooms"] | ["rooms", ""] => Ok(Route::Rooms),
        ["events"] => Ok(Route::Events),
        ["rooms", name] => Ok(Route::Room(room(name)?)),
        ["rooms", name, "state"] => Ok(Route::State(room(name)?)),
        ["rooms", name, "update"] => Ok(Route::Update(room(name)?)),
        _ => Err(ApiError::not_found(path)),
    }
}

/// A query parameter of the request, percent-decoded.
fn query_param(request: &ApiRequest, name: &str) -> Option<String> {
    let query = request.uri().query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| {
            let value = value.replace('+', " ");
            percent_encoding::percent_decode_str(&value)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// JSON body answers.
fn json_response(status: StatusCode, value: &serde_json::Value) -> ApiResponse {
    let mut response = Response::new(Bytes::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests;
