//! A room's document over HTTP: its state (cacheable, with a strong `ETag`) and updates from
//! server-side writers.
use aws_lc_rs::digest;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;

use super::{json_response, query_param, ApiError, ApiRequest, ApiResponse};
use crate::doc;
use crate::handler::{Handler, ServerUpdate};

/// Edge caches and browsers may serve a state for this long: read storms on a popular document
/// (a board everyone loads at once) cost one read per 3 s per edge location.
const CACHE_CONTROL: &str = "max-age=3";
/// A Yjs update v1 with no structs and no deletes: what a room with nothing in it merges to.
const EMPTY_UPDATE: [u8; 2] = [0, 0];

/// A strong entity tag for `state` as `format` renders it: same bytes, same tag.
fn entity_tag(state: &[u8], format: Format) -> String {
    let hash = digest::digest(&digest::SHA256, state);
    let hex: String = hash.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match format {
        Format::Binary => format!("\"{hex}\""),
        Format::Json => format!("\"{hex}-json\""),
    }
}

/// Whether `If-None-Match` names `tag` (weak comparison, as RFC 9110 asks for this header).
fn none_match(request: &ApiRequest, tag: &str) -> bool {
    request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Binary,
    Json,
}

/// `GET /api/rooms/{room}/state[?format=json]`.
pub(super) async fn state(
    handler: &Handler,
    request: &ApiRequest,
    room: &str,
) -> Result<ApiResponse, ApiError> {
    let format = match query_param(request, "format").as_deref() {
        None | Some("binary") => Format::Binary,
        Some("json") => Format::Json,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format must be json or binary, not {other:?}"
            )))
        }
    };
    let state = handler.room_state(room).await?;
    if state == EMPTY_UPDATE && !handler.room_exists(room).await? {
        return Err(ApiError::no_room(room));
    }
    let tag = entity_tag(&state, format);
    let (status, body, content_type) = if none_match(request, &tag) {
        (StatusCode::NOT_MODIFIED, Bytes::new(), None)
    } else {
        match format {
            Format::Binary => (
                StatusCode::OK,
                Bytes::from(state),
                Some("application/octet-stream"),
            ),
            Format::Json => {
                let rendered = doc::state_to_json(&state).map_err(|e| {
                    ApiError::from(crate::handler::HandlerError::Document {
                        room: room.to_string(),
                        reason: e.to_string(),
                    })
                })?;
                (
                    StatusCode::OK,
                    Bytes::from(rendered.to_string()),
                    Some("application/json"),
                )
            }
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, tag);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    // A shared cache must not hand one token's answer to another.
    headers.insert(header::VARY, HeaderValue::from_static("Authorization"));
    if let Some(content_type) = content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    Ok(response)
}

/// `POST /api/rooms/{room}/update`: the body is one Yjs update v1.
pub(super) async fn update(
    handler: &Handler,
    request: &ApiRequest,
    room: &str,
) -> Result<ApiResponse, ApiError> {
    let body = request.body();
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the body is empty: send one binary Yjs update (v1, application/octet-stream)".into(),
        ));
    }
    let applied = handler.apply_server_update(room, body).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"applied": applied == ServerUpdate::Applied}),
    ))
}
