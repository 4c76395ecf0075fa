//! A room's document as a whole, for the HTTP API: its merged state, whether the room exists,
//! and updates from server-side writers, which take exactly the path of a WebSocket update
//! (validated, appended, relayed to every connection of the room).
use super::{Handler, HandlerError, HandlerResult};
use crate::doc::{self, Validated};
use crate::ports::Scope;

/// What an update from a server-side writer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerUpdate {
    /// Appended and relayed to the room's connections.
    Applied,
    /// Valid, with nothing to apply (an empty update): nothing stored or sent.
    Empty,
}

impl Handler {
    /// The room's merged document (snapshot and log), as one Yjs update v1.
    pub async fn room_state(&self, room: &str) -> HandlerResult<Vec<u8>> {
        self.read_state(room).await
    }

    /// Whether anything was ever kept for the room: a connection, a snapshot or a logged update.
    pub async fn room_exists(&self, room: &str) -> HandlerResult<bool> {
        if self.ports.connections.room_activity(room).await?.is_some()
            || self.ports.connections.room_meta(room).await?.is_some()
        {
            return Ok(true);
        }
        if !self
            .ports
            .connections
            .members(&Scope::Room(room.to_string()))
            .await?
            .is_empty()
        {
            return Ok(true);
        }
        if self.ports.snapshots.get(room).await?.is_some() {
            return Ok(true);
        }
        Ok(!self.ports.docs.read_log(room).await?.updates.is_empty())
    }

    /// An update from a server-side writer (a Yjs update v1): refused whole if the room name or
    /// the update is invalid (`BadRequest`), else handled like a connection's update.
    pub async fn apply_server_update(
        &self,
        room: &str,
        update: &[u8],
    ) -> HandlerResult<ServerUpdate> {
        self.validate_room_name(room)?;
        match doc::validate_update(update) {
            Err(e) => Err(HandlerError::BadRequest(format!("invalid Yjs update: {e}"))),
            Ok(Validated::Empty) => Ok(ServerUpdate::Empty),
            Ok(Validated::Content) => {
                self.append_and_relay(room, update.to_vec(), None).await?;
                Ok(ServerUpdate::Applied)
            }
        }
    }
}
