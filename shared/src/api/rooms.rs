//! The room directory over HTTP: the active rooms, and one room in detail.
use http::StatusCode;
use serde_json::{json, Value};

use super::{json_response, query_param, ApiError, ApiRequest, ApiResponse};
use crate::handler::Handler;
use crate::ports::{Scope, MAX_ROOM_PAGE};

/// Rooms per page unless `?limit=` says otherwise.
const DEFAULT_PAGE: usize = 50;
/// Connection events in a room's detail.
const RECENT_EVENTS: usize = 50;

/// `GET /api/rooms?limit=N&after=CURSOR`.
pub(super) async fn list(handler: &Handler, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let limit = match query_param(request, "limit") {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_ROOM_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit must be a whole number from 1 to {MAX_ROOM_PAGE}, not {text:?}"
                ))
            })?,
    };
    let after = query_param(request, "after");
    let page = handler
        .ports()
        .connections
        .active_rooms(limit, after.as_deref())
        .await?;
    let rooms: Vec<Value> = page
        .rooms
        .iter()
        .map(|r| {
            json!({
                "room": r.room,
                "connections": r.connections,
                "last_active_ms": r.last_active_ms,
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"rooms": rooms, "next": page.next}),
    ))
}

/// `GET /api/rooms/{room}`: the record, who is connected now, and the latest events.
pub(super) async fn detail(handler: &Handler, room: &str) -> Result<ApiResponse, ApiError> {
    let connections = &handler.ports().connections;
    let scope = Scope::Room(room.to_string());
    let (members, activity, meta, events) = futures::try_join!(
        connections.members(&scope),
        connections.room_activity(room),
        connections.room_meta(room),
        connections.room_events(room, RECENT_EVENTS),
    )?;
    if members.is_empty()
        && activity.is_none()
        && meta.is_none()
        && !handler.room_exists(room).await?
    {
        return Err(ApiError::no_room(room));
    }
    let last_active_ms = activity
        .as_ref()
        .map(|a| a.last_active_ms)
        .into_iter()
        .chain(meta.as_ref().map(|m| m.last_active_ms))
        .max();
    let record = meta.map(|m| {
        json!({
            "created_ms": m.created_ms,
            "last_active_ms": m.last_active_ms,
            "updates": m.updates,
            "snapshots": m.snapshots,
            "snapshot_version": m.snapshot_version,
            "snapshot_bytes": m.snapshot_bytes,
        })
    });
    let members: Vec<Value> = members
        .iter()
        .map(|m| {
            json!({
                "connection_id": m.connection_id,
                "joined_at_ms": m.joined_at_ms,
                "readonly": m.readonly,
                "sub": m.credential.as_ref().and_then(|c| c.sub.clone()),
            })
        })
        .collect();
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "at_ms": e.at_ms,
                "connection_id": e.connection_id,
                "kind": e.kind.as_str(),
                "sub": e.sub,
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "room": room,
            "connections": members.len(),
            "last_active_ms": last_active_ms,
            "record": record,
            "members": members,
            "events": events,
        }),
    ))
}
