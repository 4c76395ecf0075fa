//! y-webrtc signaling: topics are memberships of `topic#T`, so disconnect cleanup and TTLs work
//! exactly as for rooms.
use super::{Handler, HandlerError, HandlerResult, MAX_ROOM_NAME_BYTES};
use crate::ports::Scope;
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
                for topic in topics {
                    check_topic(&topic)?;
                    let m = self.membership(Scope::Topic(topic), connection_id, endpoint, false);
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
                // As y-webrtc's server does: to every subscriber, the sender included, with the
                // subscriber count in `clients`.
                let members = self.ports.connections.members(&Scope::Topic(topic)).await?;
                if !members.is_empty() {
                    let frame = signaling::encode_publish(&message, members.len());
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

fn check_topic(topic: &str) -> HandlerResult<()> {
    if topic.len() > MAX_ROOM_NAME_BYTES {
        return Err(HandlerError::BadRequest(format!(
            "topic is {} bytes, more than {MAX_ROOM_NAME_BYTES}",
            topic.len()
        )));
    }
    Ok(())
}
