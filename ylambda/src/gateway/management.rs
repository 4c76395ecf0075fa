//! API Gateway's `@connections` management API on the dev server's port: `POST` (PostToConnection),
//! `GET` (GetConnection), `DELETE` (DeleteConnection), with or without a stage prefix (the AWS SDK
//! adds the stage when the endpoint has one). Errors carry `x-amzn-ErrorType` so an AWS SDK
//! client pointed at the dev server maps them to the same exceptions (`GoneException`, ...).
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::clock;
use super::connections::{DeliveryError, Outgoing};
use super::Shared;

/// Axum has already percent-decoded the `{id}` segment (ids end in `=`, sent as `%3D`).
fn connection_id(params: &HashMap<String, String>) -> &str {
    params.get("id").map(String::as_str).unwrap_or_default()
}

fn error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    let mut response = (status, Json(json!({ "message": message }))).into_response();
    response.headers_mut().insert(
        HeaderName::from_static("x-amzn-errortype"),
        HeaderValue::from_static(error_type),
    );
    response
}

fn gone() -> Response {
    error(StatusCode::GONE, "GoneException", "Gone")
}

fn delivery_error(e: DeliveryError) -> Response {
    match e {
        DeliveryError::Gone => gone(),
        DeliveryError::TooLarge { .. } => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            &e.to_string(),
        ),
        DeliveryError::QueueFull => error(
            StatusCode::TOO_MANY_REQUESTS,
            "LimitExceededException",
            &e.to_string(),
        ),
    }
}

/// `POST @connections/{id}`: the body becomes one frame, text if it is UTF-8, else binary.
pub async fn post(
    State(shared): State<Arc<Shared>>,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let id = connection_id(&params);
    let frame = match std::str::from_utf8(&body) {
        Ok(text) => Outgoing::Text(text.to_string()),
        Err(_) => Outgoing::Binary(body),
    };
    match shared
        .registry
        .deliver(id, frame, shared.config.max_message_bytes)
    {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::debug!(connection_id = id, error = %e, "@connections POST refused");
            delivery_error(e)
        }
    }
}

/// `GET @connections/{id}`.
pub async fn get(
    State(shared): State<Arc<Shared>>,
    Path(params): Path<HashMap<String, String>>,
) -> Response {
    let Some(connection) = shared.registry.live(connection_id(&params)) else {
        return gone();
    };
    let meta = &connection.meta;
    Json(json!({
        "connectedAt": clock::iso8601(meta.connected_at),
        "identity": {
            "sourceIp": meta.source_ip,
            "userAgent": meta.user_agent,
        },
        "lastActiveAt": clock::iso8601(connection.last_active()),
    }))
    .into_response()
}

/// `DELETE @connections/{id}`: closes the socket; `$disconnect` follows as for any close.
pub async fn delete(
    State(shared): State<Arc<Shared>>,
    Path(params): Path<HashMap<String, String>>,
) -> Response {
    match shared
        .registry
        .disconnect(connection_id(&params), "Closed by @connections DELETE")
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => delivery_error(e),
    }
}
