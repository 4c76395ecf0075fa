//! The live connection registry (connection id -> outgoing queue) and the [`Fanout`] the handler
//! posts through, standing in for API Gateway's `@connections` API inside the process.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;
use ylambda_shared::ports::{Fanout, FanoutError};

pub use super::outgoing::OutgoingQueue;
use super::outgoing::{frame_queue, FrameSender};

/// Frames queued for one connection before a post is refused. A client that lets this many pile
/// up is not reading; API Gateway answers `LimitExceededException` ("client side buffer is full")
/// in that case, and so do we, instead of buffering without bound.
pub const OUTGOING_QUEUE: usize = 1024;

/// Close code when the server side closes a connection on purpose: the handler's
/// [`Fanout::close`] and `DELETE @connections/{id}` are the same API Gateway operation
/// (`DeleteConnection`), which kicks a client; 1008 (policy violation) tells the client it was
/// the server's decision rather than a failure.
pub const SERVER_CLOSE_CODE: u16 = 1008;

/// What is known about a connection from its upgrade request.
#[derive(Clone, Debug)]
pub struct ConnectionMeta {
    pub connection_id: String,
    pub api_id: String,
    pub stage: String,
    /// The Host header of the upgrade request (API Gateway's `domainName`).
    pub domain_name: String,
    pub source_ip: String,
    pub user_agent: Option<String>,
    /// The `room` (or legacy `doc`) query parameter, for logs and shutdown compaction.
    pub room: Option<String>,
    pub connected_at: SystemTime,
}

/// A frame waiting in a connection's outgoing queue.
#[derive(Debug)]
pub enum Outgoing {
    Text(String),
    Binary(Bytes),
    /// A keep-alive ping (`ylambda serve`, as `@y/websocket-server` pings every 30 s).
    Ping,
}

impl Outgoing {
    /// Payload size in bytes, what API Gateway's message limit counts.
    pub fn byte_len(&self) -> usize {
        match self {
            Outgoing::Text(t) => t.len(),
            Outgoing::Binary(b) => b.len(),
            Outgoing::Ping => 0,
        }
    }
}

/// Why and how a connection ends. Set once; the first reason wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseState {
    /// The close code reported in `$disconnect` (and sent, if `send_frame`).
    pub code: u16,
    pub reason: String,
    /// Whether the server still has to send a close frame: false when the client closed first
    /// (tungstenite answers its close frame itself) or the socket is already dead.
    pub send_frame: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeliveryError {
    #[error("connection is gone")]
    Gone,
    #[error("message of {len} bytes exceeds the {limit}-byte WebSocket message limit")]
    TooLarge { len: usize, limit: usize },
    #[error("outgoing queue is full ({OUTGOING_QUEUE} frames): the client is not reading")]
    QueueFull,
}

/// One live connection, as the registry holds it.
pub struct Connection {
    pub meta: ConnectionMeta,
    last_active: Mutex<SystemTime>,
    outgoing: FrameSender,
    /// Set once, by the first reason to close. A `OnceLock` and a `Notify` rather than a tokio
    /// `watch` channel, whose shared state (nine `Notify`s) was ~0.4 KB of every idle connection.
    close: OnceLock<CloseState>,
    closing: Notify,
}

impl Connection {
    /// A connection and the receiving end of its outgoing queue (for its writer task).
    pub fn new(meta: ConnectionMeta) -> (Arc<Connection>, OutgoingQueue) {
        let (tx, rx) = frame_queue();
        let connection = Connection {
            last_active: Mutex::new(meta.connected_at),
            meta,
            outgoing: tx,
            close: OnceLock::new(),
            closing: Notify::new(),
        };
        (Arc::new(connection), rx)
    }

    pub fn id(&self) -> &str {
        &self.meta.connection_id
    }

    /// Queues a frame. A closing connection is already gone as far as senders are concerned.
    pub fn send(&self, frame: Outgoing) -> Result<(), DeliveryError> {
        if self.is_closing() {
            return Err(DeliveryError::Gone);
        }
        self.outgoing.try_send(frame)
    }

    /// Starts closing the connection. Returns false if it was already closing (the first reason
    /// is the one reported).
    pub fn begin_close(&self, state: CloseState) -> bool {
        let first = self.close.set(state).is_ok();
        if first {
            self.closing.notify_waiters();
        }
        first
    }

    pub fn is_closing(&self) -> bool {
        self.close.get().is_some()
    }

    pub fn close_state(&self) -> Option<CloseState> {
        self.close.get().cloned()
    }

    /// Returns once [`Connection::begin_close`] has been called.
    pub async fn closed(&self) {
        let notified = self.closing.notified();
        tokio::pin!(notified);
        // Registered before the check, so a close between the check and the wait is not missed.
        notified.as_mut().enable();
        if !self.is_closing() {
            notified.await;
        }
    }

    /// Records client traffic (`lastActiveAt`).
    pub fn touch(&self) {
        if let Ok(mut t) = self.last_active.lock() {
            *t = SystemTime::now();
        }
    }

    pub fn last_active(&self) -> SystemTime {
        self.last_active
            .lock()
            .map(|t| *t)
            .unwrap_or(self.meta.connected_at)
    }
}

/// Every connection between its accepted `$connect` and the end of its `$disconnect`.
#[derive(Default)]
pub struct Registry {
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    /// Signalled whenever a connection is removed (shutdown waits for the registry to drain).
    removed: Notify,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Connection>>> {
        // The map is only touched in short non-panicking sections; a poisoned lock still holds a
        // consistent map, so keep serving rather than take the whole gateway down.
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn insert(&self, connection: Arc<Connection>) {
        self.map().insert(connection.id().to_string(), connection);
    }

    pub fn remove(&self, connection_id: &str) {
        self.map().remove(connection_id);
        self.removed.notify_waiters();
    }

    /// A connection that is open and not closing: what `@connections` calls can reach.
    pub fn live(&self, connection_id: &str) -> Option<Arc<Connection>> {
        self.map()
            .get(connection_id)
            .filter(|c| !c.is_closing())
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Connection>> {
        self.map().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues one frame for a connection, refusing anything over the message limit: API Gateway
    /// never delivers a message over its limit, so neither do we.
    pub fn deliver(
        &self,
        connection_id: &str,
        frame: Outgoing,
        limit: usize,
    ) -> Result<(), DeliveryError> {
        if frame.byte_len() > limit {
            return Err(DeliveryError::TooLarge {
                len: frame.byte_len(),
                limit,
            });
        }
        self.live(connection_id)
            .ok_or(DeliveryError::Gone)?
            .send(frame)
    }

    /// `DeleteConnection`: closes a live connection with [`SERVER_CLOSE_CODE`].
    pub fn disconnect(&self, connection_id: &str, reason: &str) -> Result<(), DeliveryError> {
        let connection = self.live(connection_id).ok_or(DeliveryError::Gone)?;
        if connection.begin_close(CloseState {
            code: SERVER_CLOSE_CODE,
            reason: reason.to_string(),
            send_frame: true,
        }) {
            Ok(())
        } else {
            Err(DeliveryError::Gone)
        }
    }

    /// Waits until no connection is left, or the deadline passes. Returns whether it drained.
    pub async fn wait_empty(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let removed = self.removed.notified();
            tokio::pin!(removed);
            // Register interest before checking, so a removal between the check and the wait
            // is not missed.
            removed.as_mut().enable();
            if self.is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, removed).await.is_err() {
                return self.is_empty();
            }
        }
    }
}

/// The handler's [`Fanout`]: posts go straight into the registry's outgoing queues.
pub struct GatewayFanout {
    registry: Arc<Registry>,
    max_message_bytes: usize,
}

impl GatewayFanout {
    pub fn new(registry: Arc<Registry>, max_message_bytes: usize) -> Self {
        GatewayFanout {
            registry,
            max_message_bytes,
        }
    }
}

fn fanout_error(connection_id: &str, e: DeliveryError) -> FanoutError {
    match e {
        DeliveryError::Gone => FanoutError::Gone(connection_id.to_string()),
        other => FanoutError::Failed(format!("post to {connection_id}: {other}")),
    }
}

#[async_trait]
impl Fanout for GatewayFanout {
    // The endpoint is ignored: every connection of this process is reachable through the
    // registry, whatever stage or host the handler derived from the event.
    async fn post(
        &self,
        _endpoint: &str,
        connection_id: &str,
        text: &str,
    ) -> Result<(), FanoutError> {
        self.registry
            .deliver(
                connection_id,
                Outgoing::Text(text.to_string()),
                self.max_message_bytes,
            )
            .map_err(|e| fanout_error(connection_id, e))
    }

    async fn close(&self, _endpoint: &str, connection_id: &str) -> Result<(), FanoutError> {
        self.registry
            .disconnect(connection_id, "Closed by the server")
            .map_err(|e| fanout_error(connection_id, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str) -> ConnectionMeta {
        ConnectionMeta {
            connection_id: id.to_string(),
            api_id: "api".into(),
            stage: "local".into(),
            domain_name: "localhost".into(),
            source_ip: "127.0.0.1".into(),
            user_agent: None,
            room: None,
            connected_at: SystemTime::now(),
        }
    }

    #[tokio::test]
    async fn fanout_posts_queue_frames_and_report_gone() {
        let registry = Arc::new(Registry::new());
        let (conn, mut rx) = Connection::new(meta("a="));
        registry.insert(conn.clone());
        let fanout = GatewayFanout::new(registry.clone(), 1024);

        fanout.post("e", "a=", "hello").await.unwrap();
        match rx.recv().await {
            Outgoing::Text(t) => assert_eq!(t, "hello"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            fanout.post("e", "nobody=", "x").await,
            Err(FanoutError::Gone(_))
        ));
        let big = "x".repeat(1025);
        match fanout.post("e", "a=", &big).await {
            Err(FanoutError::Failed(m)) => assert!(m.contains("1025"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }

        fanout.close("e", "a=").await.unwrap();
        assert_eq!(conn.close_state().map(|s| s.code), Some(SERVER_CLOSE_CODE));
        // Closing: gone for posts and for a second close.
        assert!(matches!(
            fanout.post("e", "a=", "x").await,
            Err(FanoutError::Gone(_))
        ));
        assert!(matches!(
            fanout.close("e", "a=").await,
            Err(FanoutError::Gone(_))
        ));
    }

    #[tokio::test]
    async fn full_queue_is_a_failure_not_a_block() {
        let registry = Registry::new();
        let (conn, _rx) = Connection::new(meta("b="));
        registry.insert(conn);
        for _ in 0..OUTGOING_QUEUE {
            registry
                .deliver("b=", Outgoing::Text("x".into()), 10)
                .unwrap();
        }
        assert_eq!(
            registry.deliver("b=", Outgoing::Text("x".into()), 10),
            Err(DeliveryError::QueueFull)
        );
    }

    #[tokio::test]
    async fn wait_empty_sees_removals() {
        let registry = Arc::new(Registry::new());
        let (conn, _rx) = Connection::new(meta("c="));
        registry.insert(conn);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(50);
        assert!(!registry.wait_empty(deadline).await);
        let r = registry.clone();
        let remover = tokio::spawn(async move { r.remove("c=") });
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        assert!(registry.wait_empty(deadline).await);
        remover.await.unwrap();
    }
}
