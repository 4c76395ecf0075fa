//! What a direct instance does with what its relay listener hears: each message goes to this
//! instance's connections on that channel but its sender, once (invariant 25); after the
//! listener missed messages, every room's connections are resynced.
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use ylambda_shared::handler::Handler;
use ylambda_shared::ports::{Channel, ChannelEvent};
use ylambda_shared::protocol::relay::{decode_relay, RelayKind};

use super::local_rooms::LocalRooms;
use crate::gateway::connections::{DeliveryError, Outgoing, Registry};

/// Delivers until the listener's events end (the listener was dropped).
pub async fn deliver_relayed(
    mut events: mpsc::Receiver<ChannelEvent>,
    local: Arc<LocalRooms>,
    registry: Arc<Registry>,
    handler: Arc<Handler>,
    endpoint: String,
) {
    while let Some(event) = events.recv().await {
        match event {
            ChannelEvent::Message { channel, payload } => {
                deliver(&local, &registry, &channel, &payload)
            }
            ChannelEvent::Resumed => {
                // Off the delivery loop: reading every room's state takes a while, and new
                // messages must keep flowing meanwhile.
                tokio::spawn(resync(local.clone(), handler.clone(), endpoint.clone()));
            }
        }
    }
}

fn deliver(local: &LocalRooms, registry: &Registry, channel: &Channel, payload: &[u8]) {
    let relayed = match decode_relay(payload) {
        Ok(relayed) => relayed,
        Err(e) => {
            tracing::warn!(%channel, error = %e, "dropping a relay message this server did not write");
            return;
        }
    };
    // One buffer for every target: `Bytes` clones share it.
    let bytes = Bytes::copy_from_slice(relayed.payload);
    let frame = || match relayed.kind {
        RelayKind::Doc => Outgoing::Binary(bytes.clone()),
        // decode_relay checked it is UTF-8.
        RelayKind::Signaling => Outgoing::Text(String::from_utf8_lossy(&bytes).into_owned()),
    };
    for connection_id in local.connections_on(channel) {
        if Some(connection_id.as_str()) == relayed.from {
            continue;
        }
        let Some(connection) = registry.live(&connection_id) else {
            // Joined, not yet upgraded, or already gone: its sync (or departure) covers it.
            continue;
        };
        match connection.send(frame()) {
            Ok(()) | Err(DeliveryError::Gone) => {}
            Err(e) => {
                tracing::warn!(connection_id, %channel, error = %e, "relayed message not delivered")
            }
        }
    }
}

/// Sends each room's connections the room's whole state and the server's sync step 1, so
/// whatever the listener missed reaches them (and they send back what the store lacks).
async fn resync(local: Arc<LocalRooms>, handler: Arc<Handler>, endpoint: String) {
    for channel in local.channels() {
        let Channel::Room(room) = &channel else {
            // Signaling messages are not kept anywhere; y-webrtc peers announce themselves again.
            continue;
        };
        let frames = match handler.resync_frames(room).await {
            Ok(frames) => frames,
            Err(e) => {
                tracing::warn!(room, error = %e, "cannot resync the room after missed relay messages");
                continue;
            }
        };
        let members = local.connections_on(&channel);
        tracing::info!(
            room,
            connections = members.len(),
            "resyncing after missed relay messages"
        );
        let fanout = &handler.ports().fanout;
        for connection_id in members {
            for frame in &frames {
                if let Err(e) = fanout.post(&endpoint, &connection_id, frame).await {
                    tracing::debug!(connection_id, error = %e, "resync not delivered");
                    break;
                }
            }
        }
    }
}
