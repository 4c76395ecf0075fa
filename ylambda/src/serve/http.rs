//! The direct server's HTTP side: `/healthz`, `/readyz`, and on every other path a WebSocket
//! for a stock client: binary y-websocket in the room the path names (percent-decoded, as the
//! client adapter does), y-webrtc signaling as JSON text. `$connect`'s checks run before the
//! upgrade (a refusal is its HTTP status); each connection's messages are handled in order.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine;
use futures::StreamExt;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use ylambda_shared::handler::HandlerError;
use ylambda_shared::protocol::is_signaling_frame;

use super::ServeState;
use crate::gateway::connections::{CloseState, Connection, ConnectionMeta, Outgoing};
use crate::gateway::events::query_parameters;
use crate::gateway::ids;
use crate::gateway::server::{
    read_failed, write_frames, ABNORMAL, CLOSE_GRACE, GOING_AWAY, NO_STATUS, READ_BUFFER_BYTES,
    UNSUPPORTED_DATA,
};

/// A ping goes out after this long without traffic from the client; a client that has not
/// answered by the next one is dropped (`@y/websocket-server` does the same every 30 s), so a
/// vanished client's connection does not stay open, and in memory, forever.
const PING_EVERY: Duration = Duration::from_secs(30);

pub(super) fn router(state: Arc<ServeState>) -> Router {
    Router::new().fallback(entry).with_state(state)
}

async fn entry(
    State(state): State<Arc<ServeState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return match uri.path() {
                "/healthz" => (StatusCode::OK, "ok\n").into_response(),
                "/readyz" if state.ready() => (StatusCode::OK, "ready\n").into_response(),
                "/readyz" => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: draining, or the relay channel is down\n",
                )
                    .into_response(),
                // Not a WebSocket handshake: axum's answer says why (426, 405, ...).
                _ => rejection.into_response(),
            };
        }
    };
    if state.draining.load(Ordering::Acquire) {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining: connect to another instance",
        );
    }
    let room = room_of_path(uri.path());
    let (single, _) = query_parameters(uri.query());
    let mut query: HashMap<String, String> = single
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    if let Some(room) = &room {
        // The path names the room, as for `@y/websocket-server`; `?room=` is not needed.
        query.insert("room".into(), room.clone());
    }
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let connection_id = ids::connection_id();
    let accepted = match state
        .handler
        .on_connect_offering(&connection_id, &state.endpoint, &query, &offered)
        .await
    {
        Ok(accepted) => accepted,
        Err(e) => return connect_refused(&connection_id, room.as_deref(), e),
    };
    let header_str = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let meta = ConnectionMeta {
        connection_id,
        api_id: String::new(),
        stage: String::new(),
        domain_name: header_str(header::HOST).unwrap_or_default(),
        source_ip: peer.ip().to_string(),
        user_agent: header_str(header::USER_AGENT),
        room,
        connected_at: SystemTime::now(),
    };
    let (connection, queue) = Connection::new(meta);
    state.registry.insert(connection.clone());
    tracing::info!(
        connection_id = connection.id(),
        room = connection.meta.room.as_deref().unwrap_or(""),
        source_ip = connection.meta.source_ip,
        "connected"
    );
    let upgrade = match accepted.subprotocol {
        Some(protocol) => upgrade.protocols([protocol]),
        None => upgrade,
    };
    let limit = state.config.max_assembled_bytes;
    let failed = (state.clone(), connection.clone());
    upgrade
        .max_message_size(limit)
        // Browsers send a message as one frame.
        .max_frame_size(limit)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_failed_upgrade(move |error| {
            let (state, connection) = failed;
            tracing::debug!(connection_id = connection.id(), %error, "upgrade failed");
            connection.begin_close(CloseState {
                code: ABNORMAL,
                reason: format!("Upgrade failed: {error}"),
                send_frame: false,
            });
            tokio::spawn(finish(state, connection));
        })
        .on_upgrade(move |socket| run(state, connection, queue, socket))
}

/// The room a path names: everything after the first `/`, percent-decoded; `None` for `/`
/// (a signaling connection).
fn room_of_path(path: &str) -> Option<String> {
    let raw = path.strip_prefix('/').unwrap_or(path);
    if raw.is_empty() {
        return None;
    }
    Some(
        percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

/// A `$connect` refusal as the HTTP answer to the upgrade.
fn connect_refused(connection_id: &str, room: Option<&str>, error: HandlerError) -> Response {
    let (status, message) = match &error {
        HandlerError::Refused { status, reason } => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::FORBIDDEN),
            reason.clone(),
        ),
        HandlerError::BadRequest(reason) | HandlerError::PolicyViolation(reason) => {
            (StatusCode::BAD_REQUEST, reason.clone())
        }
        HandlerError::Store(_) | HandlerError::Document { .. } => {
            tracing::error!(connection_id, room, %error, "connect failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error".to_string(),
            )
        }
    };
    tracing::info!(connection_id, room, status = status.as_u16(), %message, "connect refused");
    refuse(status, &message)
}

/// One connection's life after the upgrade.
async fn run(
    state: Arc<ServeState>,
    connection: Arc<Connection>,
    queue: crate::gateway::connections::OutgoingQueue,
    socket: WebSocket,
) {
    let (sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(write_frames(sink, queue, connection.clone()));
    let mut shutdown = state.shutdown.clone();
    let mut next_ping = Instant::now() + PING_EVERY;
    let mut awaiting_pong = false;
    let mut closing_deadline: Option<Instant> = None;
    let server_close = |code: u16, reason: &str| {
        connection.begin_close(CloseState {
            code,
            reason: reason.to_string(),
            send_frame: true,
        });
    };
    loop {
        tokio::select! {
            frame = stream.next() => {
                let message = match frame {
                    None => break,
                    Some(Ok(message)) => message,
                    Some(Err(error)) => {
                        read_failed(&connection, &error);
                        break;
                    }
                };
                // Any traffic shows the client is alive.
                next_ping = Instant::now() + PING_EVERY;
                awaiting_pong = false;
                match message {
                    Message::Binary(_) | Message::Text(_) if connection.is_closing() => {}
                    Message::Binary(bytes) => {
                        // The handler speaks API Gateway's frames: base64 text.
                        let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
                        Box::pin(handle(&state, &connection, &text)).await;
                    }
                    Message::Text(text) if is_signaling_frame(text.as_str()) => {
                        Box::pin(handle(&state, &connection, text.as_str())).await;
                    }
                    Message::Text(_) => server_close(
                        UNSUPPORTED_DATA,
                        "y-websocket messages are binary; text is y-webrtc signaling (JSON)",
                    ),
                    Message::Close(frame) => {
                        let (code, reason) = match frame {
                            Some(f) => (f.code, f.reason.as_str().to_string()),
                            None => (NO_STATUS, "Client-side close frame status not set".into()),
                        };
                        connection.begin_close(CloseState { code, reason, send_frame: false });
                    }
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            _ = tokio::time::sleep_until(next_ping), if closing_deadline.is_none() => {
                if awaiting_pong {
                    tracing::debug!(connection_id = connection.id(), "no pong: dropping the connection");
                    connection.begin_close(CloseState {
                        code: ABNORMAL,
                        reason: "No answer to ping".into(),
                        send_frame: false,
                    });
                    break;
                }
                awaiting_pong = true;
                next_ping = Instant::now() + PING_EVERY;
                let _ = connection.send(Outgoing::Ping);
            }
            _ = wait_for_stop(&mut shutdown), if closing_deadline.is_none() => {
                server_close(GOING_AWAY, "Server draining: reconnect");
            }
            _ = connection.closed(), if closing_deadline.is_none() => {
                closing_deadline = Some(Instant::now() + CLOSE_GRACE);
            }
            _ = sleep_until_opt(closing_deadline) => break,
        }
    }
    connection.begin_close(CloseState {
        code: ABNORMAL,
        reason: "Connection closed abnormally".into(),
        send_frame: false,
    });
    if tokio::time::timeout(CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    Box::pin(finish(state, connection)).await;
}

/// One message through the handler. Its errors are logged; the handler already closed the
/// connection where the error calls for it.
async fn handle(state: &ServeState, connection: &Connection, text: &str) {
    if let Err(error) = state
        .handler
        .on_message(connection.id(), &state.endpoint, text)
        .await
    {
        match error {
            HandlerError::BadRequest(_) | HandlerError::PolicyViolation(_) => {}
            other => {
                tracing::warn!(connection_id = connection.id(), error = %other, "message failed")
            }
        }
    }
}

/// The departure (`$disconnect`), then the connection leaves the registry.
async fn finish(state: Arc<ServeState>, connection: Arc<Connection>) {
    if let Err(error) = state.handler.on_disconnect(connection.id()).await {
        tracing::warn!(connection_id = connection.id(), %error, "departure failed");
    }
    state.registry.remove(connection.id());
    let close = connection.close_state();
    tracing::info!(
        connection_id = connection.id(),
        room = connection.meta.room.as_deref().unwrap_or(""),
        close_code = close.as_ref().map(|c| c.code),
        "disconnected"
    );
}

async fn wait_for_stop(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stopping| *stopping).await;
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_names_the_room() {
        assert_eq!(room_of_path("/"), None);
        assert_eq!(room_of_path("/notes"), Some("notes".into()));
        assert_eq!(room_of_path("/my%20room"), Some("my room".into()));
        assert_eq!(room_of_path("/a/b"), Some("a/b".into()));
    }
}
