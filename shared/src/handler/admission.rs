//! Who may connect, and who may go on sending: `$connect`'s checks (token, room name, room size)
//! and each message's (rate, token lifetime, topics). A refused `$connect` stores nothing; a
//! connection that breaks a rule later is closed ([`HandlerError::PolicyViolation`]), y-websocket
//! clients first told why in y-protocols' permission-denied message.
use std::collections::HashMap;

use super::{refused, requested_room, Handler, HandlerError, HandlerResult};
use crate::adapters::unix_now_secs;
use crate::auth::opens;
use crate::config::RATE_WINDOW_SECS;
use crate::ports::{Credential, DashboardEvent, Membership, Scope};
use crate::protocol::{transport, ywebsocket};

/// A `Sec-WebSocket-Protocol` entry that carries a token: `token.` then the JWT (a browser
/// cannot set an `Authorization` header on a WebSocket, but it can offer subprotocols, and a
/// JWT's characters are all valid in one).
pub const TOKEN_PROTOCOL_PREFIX: &str = "token.";

/// What `$connect` answers when it lets a connection open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// The `Sec-WebSocket-Protocol` to answer with. A browser that offered subprotocols fails
    /// the handshake unless the answer names one of them.
    pub subprotocol: Option<String>,
}

impl Handler {
    /// `$connect` with no subprotocols offered (see [`Handler::on_connect_offering`]).
    pub async fn on_connect(
        &self,
        connection_id: &str,
        endpoint: &str,
        query: &HashMap<String, String>,
    ) -> HandlerResult<()> {
        self.on_connect_offering(connection_id, endpoint, query, &[])
            .await
            .map(|_| ())
    }

    /// `$connect`. `query` holds the URL's query parameters and `offered` the subprotocols of the
    /// `Sec-WebSocket-Protocol` header. With `room` (or `doc`, which earlier serverless Yjs ports
    /// used) it is a y-websocket connection and joins the room now, before it can read any state
    /// (ARCHITECTURE.md invariant 2); without, it is a signaling connection that joins topics as
    /// it subscribes. With access control on, the token comes from `?token=` or a
    /// `token.<jwt>` subprotocol, and nothing is stored for a connection it does not admit.
    pub async fn on_connect_offering(
        &self,
        connection_id: &str,
        endpoint: &str,
        query: &HashMap<String, String>,
        offered: &[String],
    ) -> HandlerResult<Accepted> {
        let token = query
            .get("token")
            .map(String::as_str)
            .or_else(|| protocol_token(offered));
        let accepted = Accepted {
            subprotocol: answer_protocol(offered),
        };
        let Some(room) = requested_room(|name| query.get(name).map(String::as_str)) else {
            self.admit_signaling(connection_id, endpoint, token).await?;
            return Ok(accepted);
        };
        self.validate_room_name(room)?;
        let grant = match &self.verifier {
            Some(verifier) => Some(verifier.verify(token, room).await.map_err(refused)?),
            None => None,
        };
        let scope = Scope::Room(room.to_string());
        let present = self.ports.connections.members(&scope).await?.len();
        let most = self.config.limits.max_connections_per_room;
        if present >= most {
            tracing::warn!(
                connection_id,
                room,
                present,
                "room full: connection refused"
            );
            return Err(HandlerError::Refused {
                status: 403,
                reason: format!("room {room:?} is full ({most} connections)"),
            });
        }
        // `?readonly=1` can only lower what the token grants.
        let readonly = grant.as_ref().is_some_and(|g| g.readonly)
            || matches!(
                query
                    .get("readonly")
                    .map(|v| v.to_ascii_lowercase())
                    .as_deref(),
                Some("1" | "true" | "yes")
            );
        let mut membership = self.membership(scope, connection_id, endpoint, readonly);
        membership.credential = grant.map(|g| Credential {
            sub: g.sub,
            token_expires_at: g.expires_at,
            rooms: Vec::new(),
        });
        let opened = DashboardEvent::Opened {
            room: room.to_string(),
            connection_id: connection_id.to_string(),
            sub: membership.credential.as_ref().and_then(|c| c.sub.clone()),
            at_ms: membership.joined_at_ms,
        };
        self.ports.connections.join(membership).await?;
        // After the record is written, never before (invariant 21). Without the new version,
        // processes that remember the room's old member list would not relay to this
        // connection: refuse it rather than let it miss updates.
        if let Err(e) = self.ports.docs.mark_roster_changed(room).await {
            let scope = Scope::Room(room.to_string());
            if let Err(undo) = self.ports.connections.leave(&scope, connection_id).await {
                tracing::warn!(connection_id, room, error = %undo, "cannot remove a refused connection's record");
            }
            return Err(e.into());
        }
        self.report(opened).await;
        Ok(accepted)
    }

    /// A signaling connection with access control on needs a valid read-write token, kept in
    /// its own record (`peer#C`) so each later subscribe and publish is checked against it.
    async fn admit_signaling(
        &self,
        connection_id: &str,
        endpoint: &str,
        token: Option<&str>,
    ) -> HandlerResult<()> {
        let Some(verifier) = &self.verifier else {
            return Ok(());
        };
        let claims = verifier.check(token).await.map_err(refused)?;
        if claims.access == Some(crate::auth::Access::Ro) {
            // y-webrtc peers exchange edits directly: the server could not enforce it.
            return Err(HandlerError::Refused {
                status: 403,
                reason: "a read-only token cannot join y-webrtc signaling (peers send edits to \
                         each other directly, so read-only cannot be enforced)"
                    .into(),
            });
        }
        let patterns: Vec<String> = claims.patterns().into_iter().map(String::from).collect();
        if patterns.is_empty() {
            return Err(HandlerError::Refused {
                status: 401,
                reason: "invalid token: no room or rooms claim".into(),
            });
        }
        let scope = Scope::Peer(connection_id.to_string());
        let mut record = self.membership(scope, connection_id, endpoint, false);
        record.credential = Some(Credential {
            sub: claims.sub,
            token_expires_at: claims.exp,
            rooms: patterns,
        });
        self.ports.connections.join(record).await?;
        Ok(())
    }

    /// Room and topic names come from clients: refuse empty, oversized and control-character
    /// names up front (they become keys in DynamoDB, Redis and S3).
    pub fn validate_room_name(&self, room: &str) -> HandlerResult<()> {
        let most = self.config.limits.max_room_name_bytes;
        if room.is_empty() {
            return Err(HandlerError::BadRequest("room name is empty".into()));
        }
        if room.len() > most {
            return Err(HandlerError::BadRequest(format!(
                "room name is {} bytes, more than {most}",
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

    /// Counts a message against its connection's rate (one doc store round trip, shared by
    /// every Lambda instance): past the limit the connection is closed.
    pub(super) async fn admit_message(
        &self,
        connection_id: &str,
        endpoint: &str,
        signaling: bool,
    ) -> HandlerResult<()> {
        let window = unix_now_secs() / RATE_WINDOW_SECS;
        let count = self.ports.docs.count_message(connection_id, window).await?;
        let most = self.config.limits.messages_per_window();
        if count <= most {
            return Ok(());
        }
        let reason = format!(
            "more than {most} messages in {RATE_WINDOW_SECS} s ({} per second)",
            self.config.limits.max_messages_per_sec
        );
        Err(self
            .violation(connection_id, endpoint, !signaling, reason)
            .await)
    }

    /// A connection whose token has expired is closed at its next message.
    pub(super) async fn check_credential(
        &self,
        record: &Membership,
        endpoint: &str,
        tell_client: bool,
    ) -> HandlerResult<()> {
        match &record.credential {
            Some(c) if c.token_expires_at <= unix_now_secs() => Err(self
                .violation(
                    &record.connection_id,
                    endpoint,
                    tell_client,
                    "token expired".into(),
                )
                .await),
            _ => Ok(()),
        }
    }

    /// The error that closes a connection for breaking a rule; a y-websocket client
    /// (`tell_client`) is first sent the reason, which API Gateway's close cannot carry.
    pub(super) async fn violation(
        &self,
        connection_id: &str,
        endpoint: &str,
        tell_client: bool,
        reason: String,
    ) -> HandlerError {
        if tell_client {
            self.tell_denied(connection_id, endpoint, &reason).await;
        }
        HandlerError::PolicyViolation(reason)
    }

    /// Sends a y-websocket client y-protocols' permission-denied message with `reason`, which
    /// y-websocket logs and the ylambda-client adapter turns into an error event and a backoff.
    pub(super) async fn tell_denied(&self, connection_id: &str, endpoint: &str, reason: &str) {
        let denied = transport::encode_frame(&ywebsocket::encode_permission_denied(&format!(
            "ylambda: {reason}"
        )));
        if let Err(error) = self
            .ports
            .fanout
            .post(endpoint, connection_id, &denied)
            .await
        {
            tracing::debug!(connection_id, %error, "could not tell the client why");
        }
    }
}

/// Connections already told something once (a read-only connection's first dropped update),
/// per process. Bounded: past [`TOLD_CAPACITY`] it starts over, so a few connections may be told
/// twice, never without end.
#[derive(Default)]
pub(super) struct ToldOnce {
    connections: std::sync::Mutex<std::collections::HashSet<String>>,
}

const TOLD_CAPACITY: usize = 10_000;

impl ToldOnce {
    /// True the first time for `connection_id`.
    pub(super) fn first_time(&self, connection_id: &str) -> bool {
        let Ok(mut told) = self.connections.lock() else {
            return false;
        };
        if told.len() >= TOLD_CAPACITY {
            told.clear();
        }
        told.insert(connection_id.to_string())
    }

    pub(super) fn forget(&self, connection_id: &str) {
        if let Ok(mut told) = self.connections.lock() {
            told.remove(connection_id);
        }
    }
}

/// Whether a signaling credential opens `topic` (y-webrtc topics are room names).
pub(super) fn credential_opens(credential: &Credential, topic: &str) -> bool {
    credential.rooms.iter().any(|pattern| opens(pattern, topic))
}

/// The token of a `token.<jwt>` subprotocol, if one was offered.
fn protocol_token(offered: &[String]) -> Option<&str> {
    offered
        .iter()
        .find_map(|p| p.strip_prefix(TOKEN_PROTOCOL_PREFIX))
}

/// The subprotocol to answer: the first one offered that is not a token (an app's own protocol
/// name), else the token entry itself, since the answer must be one of those offered.
fn answer_protocol(offered: &[String]) -> Option<String> {
    offered
        .iter()
        .find(|p| !p.starts_with(TOKEN_PROTOCOL_PREFIX))
        .or_else(|| offered.first())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn a_token_travels_in_a_subprotocol_and_the_answer_is_one_offered() {
        let both = offered(&["ylambda", "token.aaa.bbb.ccc"]);
        assert_eq!(protocol_token(&both), Some("aaa.bbb.ccc"));
        assert_eq!(answer_protocol(&both).as_deref(), Some("ylambda"));
        let only = offered(&["token.aaa.bbb.ccc"]);
        assert_eq!(answer_protocol(&only).as_deref(), Some("token.aaa.bbb.ccc"));
        assert_eq!(protocol_token(&offered(&["ylambda"])), None);
        assert_eq!(answer_protocol(&[]), None);
    }
}
