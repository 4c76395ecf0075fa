//! y-webrtc signaling: topics are memberships of `topic#T`, so disconnect cleanup and TTLs work
//! exactly as for rooms.
//!
//! With access control on, a signaling connection's token (kept in its `peer#` record) must open
//! every topic it subscribes or publishes to (others are ignored), and must not have expired.
use super::admission::credential_opens;
use super::{Handler, HandlerError, HandlerResult};
use crate::ports::{Channel, Credential, Membership, Scope};
use crate::protocol::relay::{self, RelayKind};
use crate::protocol::signaling::{self, SignalingMessage};

impl Handler {
    pub(super) async fn on_signaling(
        &self,
        connection_id: &str,
        endpoint: &str,
        body: &str,
    ) -> HandlerResult<()> {
        let message =
            signaling::decode(body).map_err(|e| HandlerError::BadRequest(e.to_string()))?;
        match message {
            SignalingMessage::Subscribe(topics) => {
                let credential = self.signaling_credential(connection_id, endpoint).await?;
                for topic in &topics {
                    self.validate_room_name(topic)?;
                }
                let topics: Vec<String> = topics
                    .into_iter()
                    .filter(|topic| granted(credential.as_ref(), connection_id, topic))
                    .collect();
                self.check_topic_count(connection_id, endpoint, &topics)
                    .await?;
                for topic in topics {
                    let mut m =
                        self.membership(Scope::Topic(topic), connection_id, endpoint, false);
                    m.credential = credential.clone();
                    self.ports.connections.join(m).await?;
                }
            }
            SignalingMessage::Unsubscribe(topics) => {
                for topic in topics {
                    self.ports
                        .connections
                        .leave(&Scope::Topic(topic), connection_id)
                        .await?;
                }
            }
            SignalingMessage::Publish { topic, message } => {
                let credential = self.signaling_credential(connection_id, endpoint).await?;
                if !granted(credential.as_ref(), connection_id, &topic) {
                    return Ok(());
                }
                // As y-webrtc's server does: to every subscriber, the sender included, with the
                // subscriber count in `clients`.
                let members = self
                    .ports
                    .connections
                    .members(&Scope::Topic(topic.clone()))
                    .await?;
                if !members.is_empty() {
                    let frame = signaling::encode_publish(&message, members.len());
                    // Direct instances' subscribers hear it on the topic's channel
                    // (invariant 25); the others get posts.
                    if members.iter().any(Membership::hears_the_channel) {
                        let published =
                            relay::encode_relay(RelayKind::Signaling, None, frame.as_bytes());
                        self.ports
                            .docs
                            .publish(&Channel::Topic(topic), &published)
                            .await?;
                    }
                    self.broadcast(&members, &frame, None).await?;
                }
            }
            SignalingMessage::Ping => {
                self.reply(endpoint, connection_id, &[signaling::encode_pong()])
                    .await?
            }
            SignalingMessage::Unknown(kind) => {
                tracing::debug!(connection_id, kind, "ignoring unknown signaling message")
            }
        }
        Ok(())
    }
}

impl Handler {
    /// The signaling connection's credential with access control on (`None` when it is off);
    /// a connection whose token expired is closed here.
    async fn signaling_credential(
        &self,
        connection_id: &str,
        endpoint: &str,
    ) -> HandlerResult<Option<Credential>> {
        if self.verifier.is_none() {
            return Ok(None);
        }
        let Some(record) = self
            .own_record(connection_id, |scope| matches!(scope, Scope::Peer(_)))
            .await?
        else {
            let reason = "signaling connection without a token record".to_string();
            return Err(self.violation(connection_id, endpoint, false, reason).await);
        };
        self.check_credential(&record, endpoint, false).await?;
        Ok(record.credential)
    }

    /// At most `max_topics_per_connection` topics once `topics` are joined.
    async fn check_topic_count(
        &self,
        connection_id: &str,
        endpoint: &str,
        topics: &[String],
    ) -> HandlerResult<()> {
        let most = self.config.limits.max_topics_per_connection;
        if topics.len() > most {
            let reason = format!("more than {most} topics");
            return Err(self.violation(connection_id, endpoint, false, reason).await);
        }
        let mut joined: std::collections::HashSet<String> = self
            .ports
            .connections
            .memberships_of(connection_id)
            .await?
            .into_iter()
            .filter_map(|m| match m.scope {
                Scope::Topic(t) => Some(t),
                _ => None,
            })
            .collect();
        joined.extend(topics.iter().cloned());
        if joined.len() > most {
            let reason = format!("more than {most} topics");
            return Err(self.violation(connection_id, endpoint, false, reason).await);
        }
        Ok(())
    }
}

/// Whether the connection's token (if access control is on) opens `topic`. A topic it does not
/// open is left out, logged, and the connection kept: closing it would send y-webrtc, which
/// reconnects at once after a connection that opened, into a tight reconnect loop.
fn granted(credential: Option<&Credential>, connection_id: &str, topic: &str) -> bool {
    match credential {
        Some(c) if !credential_opens(c, topic) => {
            tracing::warn!(
                connection_id,
                topic,
                "the token does not open this topic: ignored"
            );
            false
        }
        _ => true,
    }
}
