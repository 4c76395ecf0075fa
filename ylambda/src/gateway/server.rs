//! The WebSocket side of the gateway: `$connect` before the upgrade, one task per connection
//! routing text frames to `$default` in order, API Gateway's limits enforced, `$disconnect` at
//! the end.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use base64::Engine;
use futures::stream::{SplitSink, StreamExt};
use futures::{Sink, SinkExt};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;
use ylambda_shared::api::ApiError;
use ylambda_shared::handler::requested_room;

use super::connections::{CloseState, Connection, ConnectionMeta, Outgoing, OutgoingQueue};
use super::throttle;
use super::{events, ids, management, Shared};

/// Room between API Gateway's message limit and the point where tungstenite itself gives up on a
/// message: anything in between is read whole, so we can answer it with a proper 1009 close.
const OVERSIZE_HEADROOM: usize = 64 * 1024;
/// The read buffer each connection starts with. tungstenite allocates it up front, and its
/// default (128 KiB) was most of an idle connection's memory (140 KB of RSS per connection; 4 KiB
/// still left 16 KB). Yjs updates and awareness messages are mostly well under 1 KiB; a larger
/// message grows the buffer as it arrives (see BENCHMARKS.md, idle connections).
pub(crate) const READ_BUFFER_BYTES: usize = 1024;
/// How long a closing connection gets to finish the close handshake before the socket is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

pub(crate) const GOING_AWAY: u16 = 1001;
pub(crate) const UNSUPPORTED_DATA: u16 = 1003;
pub(crate) const NO_STATUS: u16 = 1005;
pub(crate) const ABNORMAL: u16 = 1006;
const INVALID_PAYLOAD: u16 = 1007;
const PROTOCOL_ERROR: u16 = 1002;
const MESSAGE_TOO_BIG: u16 = 1009;

pub fn router(shared: Arc<Shared>) -> Router {
    let management = || {
        post(management::post)
            .get(management::get)
            .delete(management::delete)
    };
    Router::new()
        .route("/@connections/{id}", management())
        .route("/{stage}/@connections/{id}", management())
        .route("/api/events", get(api_events))
        .route("/dashboard", get(dashboard))
        .route("/examples/{*path}", get(example))
        .route("/api/{*rest}", any(api))
        // Everything else is the WebSocket endpoint: API Gateway's URL is the stage, no room path.
        .fallback(websocket)
        .with_state(shared)
}

/// The HTTP API (`/api/...`, `ylambda_shared::api`): the body is read up to the API's limit, the
/// answer is the API's as it is.
async fn api(State(shared): State<Arc<Shared>>, request: axum::extract::Request) -> Response {
    let Some(api) = shared.api.clone() else {
        return message_json(StatusCode::NOT_FOUND, "the HTTP API is not served here");
    };
    let limit = api.max_body_bytes();
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return into_axum(ApiError::too_large(limit).into_response());
    }
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        // Over the limit while streaming (no Content-Length), or the client went away.
        Err(_) => return into_axum(ApiError::too_large(limit).into_response()),
    };
    into_axum(api.handle(http::Request::from_parts(parts, body)).await)
}

/// `GET /examples/{path}`: a file of the examples directory, when one is configured.
async fn example(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Response {
    match &shared.examples_dir {
        Some(dir) => super::static_files::serve(dir, &path).await,
        None => message_json(
            StatusCode::NOT_FOUND,
            "no examples directory (--examples-dir)",
        ),
    }
}

/// The dashboard page (`ylambda/static/dashboard.html`, also deployable as a static file).
async fn dashboard() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../../static/dashboard.html"),
    )
        .into_response()
}

/// `GET /api/events`: the dashboard's server-sent events, streamed until the client leaves, the
/// stream's time is up, or the server shuts down (graceful shutdown waits for open requests).
async fn api_events(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
) -> Response {
    let Some(api) = shared.api.clone() else {
        return message_json(StatusCode::NOT_FOUND, "the HTTP API is not served here");
    };
    let (parts, _) = request.into_parts();
    let request = http::Request::from_parts(parts, bytes::Bytes::new());
    match api.events(&request).await {
        Ok(stream) => {
            let mut stop = shared.shutdown.clone();
            let stopping = async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            };
            let stream = stream
                .take_until(Box::pin(stopping))
                .map(Ok::<_, std::convert::Infallible>);
            let mut response = Response::new(Body::from_stream(stream));
            for (name, value) in ylambda_shared::api::stream_headers() {
                response
                    .headers_mut()
                    .insert(name, header::HeaderValue::from_static(value));
            }
            response
        }
        Err(error) => into_axum(error.into_response()),
    }
}

fn into_axum(response: ylambda_shared::api::ApiResponse) -> Response {
    response.map(Body::from)
}

/// The stage a path names: `/` is the default stage `local`, `/{stage}` names one. Deeper paths
/// do not exist on API Gateway (the room goes in `?room=`), so they are refused.
fn stage_of(path: &str) -> Option<String> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        Some("local".to_string())
    } else if trimmed.contains('/') {
        None
    } else {
        Some(trimmed.to_string())
    }
}

fn message_json(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

/// The room a connection asked for, as the handler reads it ([`requested_room`]); an empty name
/// is no room here (the handler refuses it).
fn room_of(event: &ApiGatewayWebsocketProxyRequest) -> Option<String> {
    let q = &event.query_string_parameters;
    requested_room(|name| q.first(name))
        .filter(|r| !r.is_empty())
        .map(str::to_string)
}

async fn websocket(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        // Not a WebSocket handshake (plain GET, wrong method...): axum's own answer says why.
        Err(rejection) => return rejection.into_response(),
    };
    if !shared.throttles.connect.try_take() {
        tracing::info!("refused upgrade: $connect throttled (429), as API Gateway would");
        return message_json(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    }
    let Some(stage) = stage_of(uri.path()) else {
        tracing::info!(
            path = uri.path(),
            "refused upgrade: API Gateway URLs are /{{stage}} only; put the room in ?room="
        );
        return message_json(StatusCode::FORBIDDEN, "Forbidden");
    };
    let header_str = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut meta = ConnectionMeta {
        connection_id: ids::connection_id(),
        api_id: shared.api_id.clone(),
        stage,
        domain_name: header_str(header::HOST)
            .unwrap_or_else(|| format!("127.0.0.1:{}", shared.local_port)),
        source_ip: peer.ip().to_string(),
        user_agent: header_str(header::USER_AGENT),
        room: None,
        connected_at: SystemTime::now(),
    };
    let event = events::connect(&meta, &headers, uri.query(), shared.local_port);
    meta.room = room_of(&event);

    let response = dispatch(&shared, event).await;
    if !(200..300).contains(&response.status_code) {
        tracing::info!(
            connection_id = meta.connection_id,
            room = meta.room.as_deref().unwrap_or(""),
            status = response.status_code,
            body = ?response.body,
            "connect refused by the $connect handler"
        );
        return refusal(response);
    }

    // $connect may pick a subprotocol by answering with the header, as on API Gateway.
    let upgrade = match response.headers.get(header::SEC_WEBSOCKET_PROTOCOL) {
        Some(p) => upgrade.protocols(p.to_str().ok().map(str::to_string)),
        None => upgrade,
    };
    let limit = shared.config.max_message_bytes + OVERSIZE_HEADROOM;
    let (connection, queue) = Connection::new(meta);
    // Registered before the 101 goes out: posts from other connections reach it as soon as its
    // $connect succeeded, and shutdown (which waits for in-flight requests) sees it.
    shared.registry.insert(connection.clone());
    if let Some(room) = &connection.meta.room {
        if let Ok(mut rooms) = shared.rooms.lock() {
            rooms.insert(room.clone());
        }
    }
    tracing::info!(
        connection_id = connection.id(),
        room = connection.meta.room.as_deref().unwrap_or(""),
        stage = connection.meta.stage,
        source_ip = connection.meta.source_ip,
        "connected"
    );

    let failed = (shared.clone(), connection.clone());
    upgrade
        .max_message_size(limit)
        .max_frame_size(shared.config.max_frame_bytes)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_failed_upgrade(move |error| {
            let (shared, connection) = failed;
            tracing::debug!(connection_id = connection.id(), %error, "upgrade failed");
            connection.begin_close(CloseState {
                code: ABNORMAL,
                reason: format!("Upgrade failed: {error}"),
                send_frame: false,
            });
            tokio::spawn(finish(shared, connection));
        })
        .on_upgrade(move |socket| run(shared, connection, queue, socket))
}

/// A `$connect` answer that refuses the connection, turned into the HTTP response API Gateway
/// gives the client.
fn refusal(response: ApiGatewayProxyResponse) -> Response {
    let status = u16::try_from(response.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .filter(|s| !s.is_informational());
    let Some(status) = status else {
        // API Gateway's answer to a malformed integration response.
        tracing::error!(
            status = response.status_code,
            "$connect handler returned an invalid HTTP status"
        );
        return message_json(StatusCode::BAD_GATEWAY, "Internal server error");
    };
    let body = match response.body {
        Some(LambdaBody::Text(text)) if response.is_base64_encoded => {
            match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
                Ok(bytes) => Body::from(bytes),
                Err(_) => Body::from(text),
            }
        }
        Some(LambdaBody::Text(text)) => Body::from(text),
        Some(LambdaBody::Binary(bytes)) => Body::from(bytes),
        // `Body` is non-exhaustive: whatever else it grows, an empty body is a safe answer.
        _ => Body::empty(),
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    // Single-value headers win over multi-value ones of the same name, as in API Gateway.
    for (name, value) in response.multi_value_headers.iter() {
        if !response.headers.contains_key(name) {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out.headers_mut().extend(response.headers);
    out
}

/// One connection's life after the upgrade.
async fn run(
    shared: Arc<Shared>,
    connection: Arc<Connection>,
    queue: OutgoingQueue,
    socket: WebSocket,
) {
    let config = &shared.config;
    let (sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(write_frames(sink, queue, connection.clone()));
    let mut shutdown = shared.shutdown.clone();

    let started = Instant::now();
    let max_deadline = started + config.max_connection;
    let mut idle_deadline = started + config.idle_timeout;
    // Set once the connection starts closing: the close handshake must finish by then.
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
                // Every frame from the client is traffic for the idle timeout.
                idle_deadline = Instant::now() + config.idle_timeout;
                connection.touch();
                match message {
                    // Nothing is routed once the connection is closing, as on API Gateway.
                    Message::Text(_) if connection.is_closing() => {}
                    Message::Text(text) if text.len() > config.max_message_bytes => {
                        tracing::debug!(
                            connection_id = connection.id(),
                            len = text.len(),
                            limit = config.max_message_bytes,
                            "message over the limit"
                        );
                        server_close(MESSAGE_TOO_BIG, "Message too big");
                    }
                    Message::Text(_) if !shared.throttles.message.try_take() => {
                        // Throttled: not routed, and the client is told (the connection stays).
                        let request_id = ids::request_id();
                        tracing::debug!(connection_id = connection.id(), "message throttled");
                        let frame = throttle::too_many_requests(connection.id(), &request_id);
                        let _ = connection.send(Outgoing::Text(frame));
                    }
                    Message::Text(text) => {
                        // Awaited before the next frame is read: one connection's messages are
                        // handled in order.
                        // Boxed: the event and the call's state would otherwise be part of
                        // every connection's task, idle or not (BENCHMARKS.md, idle connections).
                        let response = Box::pin(route_message(&shared, &connection, text.as_str())).await;
                        warn_on_error(connection.id(), "$default", &response);
                    }
                    Message::Binary(_) => {
                        server_close(UNSUPPORTED_DATA, "Binary frames are not supported")
                    }
                    Message::Close(frame) => {
                        let (code, reason) = match frame {
                            Some(f) => (f.code, f.reason.as_str().to_string()),
                            None => (NO_STATUS, "Client-side close frame status not set".into()),
                        };
                        // If the server closed first this is the client's echo and the server's
                        // reason stands. Tungstenite answers the client's close frame itself;
                        // keep reading so it gets flushed and the stream ends cleanly.
                        connection.begin_close(CloseState { code, reason, send_frame: false });
                    }
                    // Tungstenite answers pings on its own.
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            _ = tokio::time::sleep_until(idle_deadline), if closing_deadline.is_none() => {
                server_close(GOING_AWAY, "Going away");
            }
            _ = tokio::time::sleep_until(max_deadline), if closing_deadline.is_none() => {
                server_close(GOING_AWAY, "Going away");
            }
            _ = wait_for(&mut shutdown, |stopping| *stopping), if closing_deadline.is_none() => {
                server_close(GOING_AWAY, "Going away");
            }
            _ = connection.closed(), if closing_deadline.is_none() => {
                closing_deadline = Some(Instant::now() + CLOSE_GRACE);
            }
            _ = sleep_until_opt(closing_deadline) => {
                tracing::debug!(connection_id = connection.id(), "close handshake timed out");
                break;
            }
        }
    }

    connection.begin_close(CloseState {
        code: ABNORMAL,
        reason: "Connection closed abnormally".into(),
        send_frame: false,
    });
    // Let the writer flush what it still has (a close frame after a read error, say), but not
    // wait on a client that stopped reading.
    if tokio::time::timeout(CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    // Boxed, like `route_message`: not part of the task while the connection is open.
    Box::pin(finish(shared, connection)).await;
}

/// A client's message, to `$default`.
async fn route_message(
    shared: &Arc<Shared>,
    connection: &Connection,
    text: &str,
) -> ApiGatewayProxyResponse {
    let event = events::message(&connection.meta, text.to_string());
    dispatch(shared, event).await
}

/// Runs one event through the gateway's invoker, as API Gateway invokes a Lambda.
async fn dispatch(
    shared: &Arc<Shared>,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    shared.invoker.invoke(event).await
}

/// API Gateway shows a client nothing of a failed `$default` or `$disconnect` (no route
/// responses): the log is the only place the failure appears.
fn warn_on_error(connection_id: &str, route: &str, response: &ApiGatewayProxyResponse) {
    if !(200..300).contains(&response.status_code) {
        tracing::warn!(
            connection_id,
            route,
            status = response.status_code,
            body = ?response.body,
            "handler answered with an error"
        );
    }
}

/// Waits until a watched value satisfies `f` (or its sender is gone). The guard `wait_for` returns
/// is dropped here: it is not `Send`, and connection tasks must be.
async fn wait_for<T>(rx: &mut watch::Receiver<T>, f: impl FnMut(&T) -> bool) {
    let _ = rx.wait_for(f).await;
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Maps a read error to the close API Gateway would give it.
pub(crate) fn read_failed(connection: &Connection, error: &axum::Error) {
    use std::error::Error as _;
    use tungstenite::error::ProtocolError;
    use tungstenite::error::{CapacityError, Error as WsError};
    let cause = error.source().and_then(|e| e.downcast_ref::<WsError>());
    let (code, reason, send_frame) = match cause {
        // A frame over API Gateway's 32 KB, or a message past our headroom.
        Some(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
            (MESSAGE_TOO_BIG, "Message too big", true)
        }
        Some(WsError::Utf8(_)) => (INVALID_PAYLOAD, "Invalid UTF-8 in text frame", true),
        // The client dropped the TCP connection without a close frame.
        Some(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
            (ABNORMAL, "Connection closed abnormally", false)
        }
        Some(WsError::Protocol(_)) => (PROTOCOL_ERROR, "Protocol error", true),
        _ => (ABNORMAL, "Connection closed abnormally", false),
    };
    tracing::debug!(connection_id = connection.id(), %error, code, "read failed");
    connection.begin_close(CloseState {
        code,
        reason: reason.into(),
        send_frame,
    });
}

/// Writes queued frames until the connection starts closing, then the close frame.
pub(crate) async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: OutgoingQueue,
    connection: Arc<Connection>,
) {
    loop {
        tokio::select! {
            biased;
            frame = queue.recv() => {
                if write_queued(&mut sink, frame, &mut queue).await.is_err() {
                    return;
                }
            }
            _ = connection.closed() => break,
        }
    }
    // Frames posted before the close was requested still go out first.
    while let Some(frame) = queue.try_recv() {
        if sink.send(frame.into_message()).await.is_err() {
            return;
        }
    }
    if let Some(state) = connection.close_state().filter(|s| s.send_frame) {
        let frame = CloseFrame {
            code: state.code,
            reason: state.reason.into(),
        };
        // The peer may already be gone; nothing more to do then.
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
}

/// Frames written in one go before the socket is flushed.
const WRITE_BATCH: usize = 64;

/// Writes `first` and whatever else is already queued (up to [`WRITE_BATCH`] frames), then
/// flushes once: under load a busy room's frames leave in one write instead of one system call
/// each, and a lone frame still goes out at once (the flush does not wait for more).
async fn write_queued<S: Sink<Message> + Unpin>(
    sink: &mut S,
    first: Outgoing,
    queue: &mut OutgoingQueue,
) -> Result<(), S::Error> {
    sink.feed(first.into_message()).await?;
    for _ in 1..WRITE_BATCH {
        match queue.try_recv() {
            Some(frame) => sink.feed(frame.into_message()).await?,
            None => break,
        }
    }
    sink.flush().await
}

impl Outgoing {
    fn into_message(self) -> Message {
        match self {
            Outgoing::Text(text) => Message::Text(text.into()),
            Outgoing::Binary(bytes) => Message::Binary(bytes),
            Outgoing::Ping => Message::Ping(bytes::Bytes::new()),
        }
    }
}

/// `$disconnect`, then the connection leaves the registry (after the handler ran, so shutdown
/// waits for it).
async fn finish(shared: Arc<Shared>, connection: Arc<Connection>) {
    let state = connection.close_state().unwrap_or(CloseState {
        code: ABNORMAL,
        reason: "Connection closed abnormally".into(),
        send_frame: false,
    });
    let event = events::disconnect(&connection.meta, state.code, &state.reason);
    let response = dispatch(&shared, event).await;
    warn_on_error(connection.id(), "$disconnect", &response);
    shared.registry.remove(connection.id());
    let duration = SystemTime::now()
        .duration_since(connection.meta.connected_at)
        .unwrap_or_default();
    tracing::info!(
        connection_id = connection.id(),
        room = connection.meta.room.as_deref().unwrap_or(""),
        duration_ms = duration.as_millis() as u64,
        close_code = state.code,
        reason = state.reason,
        "disconnected"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(frame: &Message) -> String {
        match frame {
            Message::Text(t) => t.as_str().to_string(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    /// What is already queued goes out with the frame that woke the writer, in order, at most
    /// WRITE_BATCH frames per flush; a lone frame is written alone.
    #[tokio::test]
    async fn queued_frames_are_written_in_order_in_bounded_batches() {
        let (tx, mut queue) = crate::gateway::outgoing::frame_queue();
        let mut sink: Vec<Message> = Vec::new();
        write_queued(&mut sink, Outgoing::Text("alone".into()), &mut queue)
            .await
            .unwrap();
        assert_eq!(sink.iter().map(text).collect::<Vec<_>>(), ["alone"]);

        let total = WRITE_BATCH + 10;
        for i in 1..total {
            tx.try_send(Outgoing::Text(i.to_string())).unwrap();
        }
        sink.clear();
        write_queued(&mut sink, Outgoing::Text("0".into()), &mut queue)
            .await
            .unwrap();
        let first: Vec<String> = sink.iter().map(text).collect();
        assert_eq!(
            first,
            (0..WRITE_BATCH).map(|i| i.to_string()).collect::<Vec<_>>()
        );
        sink.clear();
        let next = queue.recv().await;
        write_queued(&mut sink, next, &mut queue).await.unwrap();
        let rest: Vec<String> = sink.iter().map(text).collect();
        assert_eq!(
            rest,
            (WRITE_BATCH..total)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn stages() {
        assert_eq!(stage_of("/").as_deref(), Some("local"));
        assert_eq!(stage_of("").as_deref(), Some("local"));
        assert_eq!(stage_of("/dev").as_deref(), Some("dev"));
        assert_eq!(stage_of("/dev/").as_deref(), Some("dev"));
        assert_eq!(stage_of("/dev/room"), None);
    }

    #[test]
    fn refusals_keep_status_and_body() {
        let mut r = ApiGatewayProxyResponse::default();
        r.status_code = 400;
        r.body = Some(LambdaBody::Text("no room".into()));
        assert_eq!(refusal(r).status(), StatusCode::BAD_REQUEST);
        // Status 0 is what a handler that forgot to set one returns.
        assert_eq!(
            refusal(ApiGatewayProxyResponse::default()).status(),
            StatusCode::BAD_GATEWAY
        );
    }
}
