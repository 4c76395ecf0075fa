//! The handler core: `$connect`, `$default` and `$disconnect` logic, written once over the ports and
//! shared by the Lambdas and the local gateway.
mod compaction;
mod delivery;
mod departure;
mod doc_sync;
mod pieces;
mod retry;
mod room_cache;
mod signaling;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::{AuthError, Verifier};
use crate::config::Config;
use crate::ports::{
    ConnectionStore, DocStore, Fanout, Membership, Scope, SnapshotStore, StoreError,
};
use crate::protocol::is_signaling_frame;
use crate::protocol::pieces::is_piece_frame;

pub use compaction::Compaction;

/// Longest room name accepted (bytes). Names become keys in DynamoDB, Redis and S3.
pub const MAX_ROOM_NAME_BYTES: usize = 512;

/// The adapters a handler runs on.
#[derive(Clone)]
pub struct Ports {
    pub connections: Arc<dyn ConnectionStore>,
    pub docs: Arc<dyn DocStore>,
    pub snapshots: Arc<dyn SnapshotStore>,
    pub fanout: Arc<dyn Fanout>,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The client sent something we refuse. On `$connect` the connection is refused; on
    /// `$default` the handler has already closed it.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// `$connect` refused by access control: `status` is 401 (no or bad token) or 403 (a token
    /// for other rooms).
    #[error("refused ({status}): {reason}")]
    Refused { status: u16, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored document data yrs cannot read (should never happen: updates are validated first).
    #[error("stored document for room {room:?} is unreadable: {reason}")]
    Document { room: String, reason: String },
}

pub type HandlerResult<T> = Result<T, HandlerError>;

pub struct Handler {
    ports: Ports,
    config: Config,
    rooms: room_cache::RoomCache,
    /// Checks tokens when `YLAMBDA_AUTH_SECRET` or `YLAMBDA_AUTH_JWKS_URL` is set.
    verifier: Option<Verifier>,
}

impl Handler {
    pub fn new(ports: Ports, config: Config) -> Self {
        Handler {
            ports,
            verifier: Verifier::from_config(&config),
            config,
            rooms: room_cache::RoomCache::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// `$connect`. `query` holds the URL's query parameters. With `room` (or `doc`, which earlier
    /// serverless Yjs ports used) it is a y-websocket connection and joins the room now, before
    /// it can read any state (ARCHITECTURE.md invariant 2); without, it is a signaling connection that joins
    /// topics as it subscribes.
    pub async fn on_connect(
        &self,
        connection_id: &str,
        endpoint: &str,
        query: &HashMap<String, String>,
    ) -> HandlerResult<()> {
        let token = query.get("token").map(String::as_str);
        let Some(room) = requested_room(|name| query.get(name).map(String::as_str)) else {
            // A signaling connection: with access control on, it needs a valid token too.
            if let Some(verifier) = &self.verifier {
                verifier.check(token).await.map_err(refused)?;
            }
            return Ok(());
        };
        validate_room_name(room)?;
        let grant = match &self.verifier {
            Some(verifier) => Some(verifier.verify(token, room).await.map_err(refused)?),
            None => None,
        };
        // `?readonly=1` can only lower what the token grants.
        let readonly = grant.as_ref().is_some_and(|g| g.readonly)
            || matches!(
                query
                    .get("readonly")
                    .map(|v| v.to_ascii_lowercase())
                    .as_deref(),
                Some("1" | "true" | "yes")
            );
        let mut membership = self.membership(
            Scope::Room(room.to_string()),
            connection_id,
            endpoint,
            readonly,
        );
        if let Some(grant) = &grant {
            // The records die with the token: its next message after `exp` finds no membership
            // and the connection is closed.
            membership.expires_at = membership.expires_at.min(grant.expires_at);
        }
        self.ports.connections.join(membership).await?;
        Ok(())
    }

    /// `$default`: one text frame from a connection. Replies go out through the fanout port.
    pub async fn on_message(
        &self,
        connection_id: &str,
        endpoint: &str,
        body: &str,
    ) -> HandlerResult<()> {
        let result = if is_signaling_frame(body) {
            self.on_signaling(connection_id, endpoint, body).await
        } else if is_piece_frame(body) {
            self.on_piece(connection_id, endpoint, body).await
        } else {
            self.on_doc_frame(connection_id, endpoint, body).await
        };
        if let Err(HandlerError::BadRequest(reason)) = &result {
            tracing::warn!(connection_id, %reason, "closing connection after bad input");
            if let Err(e) = self.ports.fanout.close(endpoint, connection_id).await {
                tracing::debug!(connection_id, error = %e, "close after bad input failed");
            }
        }
        result
    }

    /// `$disconnect` (best-effort on API Gateway: records also carry a TTL). Removes every
    /// membership with one index query, tells each room the connection's awareness clients left,
    /// and compacts a room its last connection left.
    pub async fn on_disconnect(&self, connection_id: &str) -> HandlerResult<()> {
        self.depart(vec![connection_id.to_string()]).await
    }

    fn membership(
        &self,
        scope: Scope,
        connection_id: &str,
        endpoint: &str,
        readonly: bool,
    ) -> Membership {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Membership {
            scope,
            connection_id: connection_id.to_string(),
            endpoint: endpoint.to_string(),
            readonly,
            joined_at_ms: now.as_millis() as u64,
            expires_at: now.as_secs() + self.config.connection_ttl.as_secs(),
        }
    }
}

fn refused(error: AuthError) -> HandlerError {
    HandlerError::Refused {
        status: error.status(),
        reason: error.to_string(),
    }
}

/// The room a connection asks for, from its query parameters (`param` looks one up by name):
/// `room`, or `doc`, which earlier serverless Yjs ports used. The one place that decides it, for
/// the handler's `$connect` and the local gateway's logs alike.
pub fn requested_room<'q>(param: impl Fn(&str) -> Option<&'q str>) -> Option<&'q str> {
    ["room", "doc"].into_iter().find_map(param)
}

/// Room names come from URLs: refuse empty, oversized and control-character names up front.
pub fn validate_room_name(room: &str) -> HandlerResult<()> {
    if room.is_empty() {
        return Err(HandlerError::BadRequest("room name is empty".into()));
    }
    if room.len() > MAX_ROOM_NAME_BYTES {
        return Err(HandlerError::BadRequest(format!(
            "room name is {} bytes, more than {MAX_ROOM_NAME_BYTES}",
            room.len()
        )));
    }
    if room.chars().any(char::is_control) {
        return Err(HandlerError::BadRequest(
            "room name contains control characters".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
