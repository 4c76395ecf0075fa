//! The handler core: `$connect`, `$default` and `$disconnect` logic, written once over the ports and
//! shared by the Lambdas and the local gateway.
mod activity_clock;
mod admission;
mod compaction;
mod dashboard;
mod delivery;
mod departure;
mod doc_sync;
mod documents;
mod pieces;
mod retry;
mod room_cache;
mod roster_cache;
mod signaling;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::{AuthError, Verifier};
use crate::config::Config;
use crate::ports::{
    ConnectionStore, DocStore, Fanout, Membership, Scope, SnapshotStore, StoreError,
};
use crate::protocol::is_signaling_frame;
use crate::protocol::pieces::is_piece_frame;

pub use admission::{Accepted, TOKEN_PROTOCOL_PREFIX};
pub use compaction::Compaction;
pub use dashboard::WATCH_FOR;
pub use documents::ServerUpdate;

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
    /// A connection broke a rule after `$connect` (too many messages, an expired token, a topic
    /// its token does not open): the handler has closed it (1008 on `ylambda dev`).
    #[error("policy violation: {0}")]
    PolicyViolation(String),
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
    /// Each room's members under its roster version (invariant 21).
    rosters: roster_cache::RosterCache,
    /// Read-only connections told (once) that their updates are dropped.
    told_readonly: admission::ToldOnce,
    /// When edits last moved each room's activity in the directory.
    activity: activity_clock::ActivityClock,
    /// The dashboard's watch flag as last read, and update counts (see `dashboard.rs`).
    dashboard: dashboard::DashboardState,
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
            rosters: roster_cache::RosterCache::default(),
            told_readonly: admission::ToldOnce::default(),
            activity: activity_clock::ActivityClock::default(),
            dashboard: dashboard::DashboardState::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The token checker, when access control is on.
    pub fn verifier(&self) -> Option<&Verifier> {
        self.verifier.as_ref()
    }

    /// `$default`: one text frame from a connection. Replies go out through the fanout port.
    pub async fn on_message(
        &self,
        connection_id: &str,
        endpoint: &str,
        body: &str,
    ) -> HandlerResult<()> {
        let signaling = is_signaling_frame(body);
        let result = match self.admit_message(connection_id, endpoint, signaling).await {
            Err(e) => Err(e),
            Ok(()) if signaling => self.on_signaling(connection_id, endpoint, body).await,
            Ok(()) if is_piece_frame(body) => self.on_piece(connection_id, endpoint, body).await,
            Ok(()) => self.on_doc_frame(connection_id, endpoint, body).await,
        };
        let closing = match &result {
            Err(HandlerError::BadRequest(reason)) => {
                tracing::warn!(connection_id, %reason, "closing connection after bad input");
                true
            }
            Err(HandlerError::PolicyViolation(reason)) => {
                tracing::warn!(connection_id, %reason, "closing connection (policy violation)");
                true
            }
            _ => false,
        };
        if closing {
            if let Err(e) = self.ports.fanout.close(endpoint, connection_id).await {
                tracing::debug!(connection_id, error = %e, "close failed");
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
            credential: None,
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

#[cfg(test)]
mod tests;
