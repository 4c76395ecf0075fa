//! Which of this instance's connections are in which room or topic, kept by the handler's own
//! writes: [`ObservedConnections`] wraps the connection store, and every membership written for
//! a connection of this instance (its endpoint is this instance's) is mirrored here. The first
//! local member of a room or topic makes the instance listen to its relay channel, the last one
//! leaving stops it, so memory and subscriptions follow the live rooms only (invariant 25).
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use ylambda_shared::ports::{
    Channel, ConnectionStore, Membership, RelayListener, RoomActivity, RoomEvent, RoomMeta,
    RoomPage, Scope, SnapshotRecord, StoreResult,
};

/// The relay channel of a membership's scope (a signaling connection's own `peer#` record has
/// none: nothing is relayed to it).
fn channel_of(scope: &Scope) -> Option<Channel> {
    match scope {
        Scope::Room(room) => Some(Channel::Room(room.clone())),
        Scope::Topic(topic) => Some(Channel::Topic(topic.clone())),
        Scope::Peer(_) => None,
    }
}

/// Vectors, not sets: a connection is in one room (or a few topics) and most rooms have a few
/// connections, and an empty-ish `HashSet` costs more memory than a short `Vec` (this index is
/// part of every idle connection's cost, BENCHMARKS.md).
#[derive(Default)]
struct Index {
    /// Channel → this instance's connections on it.
    members: HashMap<Channel, Vec<String>>,
    /// Connection → its channels, so a departure finds them without a walk over every room.
    channels_of: HashMap<String, Vec<Channel>>,
}

/// This instance's connections by channel.
pub struct LocalRooms {
    index: Mutex<Index>,
    listener: Arc<dyn RelayListener>,
    /// Held across a membership change and the listen / stop it causes, so a join never returns
    /// before its channel is heard and a stop never undoes a listen that came after it.
    changing: tokio::sync::Mutex<()>,
}

impl LocalRooms {
    pub fn new(listener: Arc<dyn RelayListener>) -> Self {
        LocalRooms {
            index: Mutex::new(Index::default()),
            listener,
            changing: tokio::sync::Mutex::new(()),
        }
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        // Inserts and removals only: a poisoned map is still consistent.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This instance's connections on a channel.
    pub fn connections_on(&self, channel: &Channel) -> Vec<String> {
        self.index()
            .members
            .get(channel)
            .cloned()
            .unwrap_or_default()
    }

    /// Every channel with a connection of this instance.
    pub fn channels(&self) -> Vec<Channel> {
        self.index().members.keys().cloned().collect()
    }

    /// How many channels and connection entries are held (what the memory bound is about).
    pub fn size(&self) -> (usize, usize) {
        let index = self.index();
        (index.members.len(), index.channels_of.len())
    }

    /// Removes a connection from every channel it is on.
    pub async fn remove_connection(&self, connection_id: &str) {
        let channels = self
            .index()
            .channels_of
            .get(connection_id)
            .cloned()
            .unwrap_or_default();
        for channel in channels {
            self.remove(&channel, connection_id).await;
        }
    }

    /// Adds a connection to a channel; the first one listens to it (before returning, so the
    /// connection's sync, which comes later, cannot miss a relayed update).
    async fn add(&self, channel: Channel, connection_id: &str) -> StoreResult<()> {
        let _changing = self.changing.lock().await;
        let first = {
            let mut index = self.index();
            let channels = index
                .channels_of
                .entry(connection_id.to_string())
                .or_default();
            if !channels.contains(&channel) {
                channels.push(channel.clone());
            }
            let ids = index.members.entry(channel.clone()).or_default();
            let first = ids.is_empty();
            if !ids.iter().any(|id| id == connection_id) {
                ids.push(connection_id.to_string());
            }
            first
        };
        if first {
            if let Err(e) = self.listener.listen(&channel).await {
                self.forget(&channel, connection_id);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Removes a connection from a channel; the last one stops listening.
    async fn remove(&self, channel: &Channel, connection_id: &str) {
        let _changing = self.changing.lock().await;
        if self.forget(channel, connection_id) {
            if let Err(e) = self.listener.stop_listening(channel).await {
                tracing::debug!(%channel, error = %e, "stop listening failed");
            }
        }
    }

    /// Takes a connection off a channel in the index; says whether it was the channel's last.
    fn forget(&self, channel: &Channel, connection_id: &str) -> bool {
        let mut index = self.index();
        if let Some(channels) = index.channels_of.get_mut(connection_id) {
            channels.retain(|c| c != channel);
            if channels.is_empty() {
                index.channels_of.remove(connection_id);
            }
        }
        match index.members.get_mut(channel) {
            Some(ids) => {
                ids.retain(|id| id != connection_id);
                let last = ids.is_empty();
                if last {
                    index.members.remove(channel);
                }
                last
            }
            None => false,
        }
    }
}

/// The connection store, with this instance's memberships mirrored into [`LocalRooms`].
pub struct ObservedConnections {
    inner: Arc<dyn ConnectionStore>,
    local: Arc<LocalRooms>,
    /// This instance's endpoint (`direct:{instance}`).
    endpoint: String,
}

impl ObservedConnections {
    pub fn new(inner: Arc<dyn ConnectionStore>, local: Arc<LocalRooms>, endpoint: String) -> Self {
        ObservedConnections {
            inner,
            local,
            endpoint,
        }
    }
}

#[async_trait]
impl ConnectionStore for ObservedConnections {
    async fn join(&self, membership: Membership) -> StoreResult<()> {
        let local = (membership.endpoint == self.endpoint)
            .then(|| channel_of(&membership.scope))
            .flatten()
            .map(|channel| (channel, membership.connection_id.clone()));
        // Listening first: once the record is visible to others, their relays reach it.
        if let Some((channel, id)) = &local {
            self.local.add(channel.clone(), id).await?;
        }
        let joined = self.inner.join(membership).await;
        if let (Err(_), Some((channel, id))) = (&joined, &local) {
            self.local.remove(channel, id).await;
        }
        joined
    }

    async fn leave(&self, scope: &Scope, connection_id: &str) -> StoreResult<()> {
        let left = self.inner.leave(scope, connection_id).await;
        if let Some(channel) = channel_of(scope) {
            self.local.remove(&channel, connection_id).await;
        }
        left
    }

    async fn members(&self, scope: &Scope) -> StoreResult<Vec<Membership>> {
        self.inner.members(scope).await
    }

    async fn memberships_of(&self, connection_id: &str) -> StoreResult<Vec<Membership>> {
        self.inner.memberships_of(connection_id).await
    }

    async fn remove_connection(&self, connection_id: &str) -> StoreResult<Vec<Membership>> {
        let removed = self.inner.remove_connection(connection_id).await;
        // Whatever the store managed, the connection is gone from this instance.
        self.local.remove_connection(connection_id).await;
        removed
    }

    async fn record_snapshot(&self, room: &str, record: &SnapshotRecord) -> StoreResult<()> {
        self.inner.record_snapshot(room, record).await
    }

    async fn room_meta(&self, room: &str) -> StoreResult<Option<RoomMeta>> {
        self.inner.room_meta(room).await
    }

    async fn active_rooms(&self, limit: usize, after: Option<&str>) -> StoreResult<RoomPage> {
        self.inner.active_rooms(limit, after).await
    }

    async fn room_activity(&self, room: &str) -> StoreResult<Option<RoomActivity>> {
        self.inner.room_activity(room).await
    }

    async fn touch_room(&self, room: &str, at_ms: u64) -> StoreResult<()> {
        self.inner.touch_room(room, at_ms).await
    }

    async fn room_events(&self, room: &str, limit: usize) -> StoreResult<Vec<RoomEvent>> {
        self.inner.room_events(room, limit).await
    }
}
