//! The embedded stand-in for Redis pub/sub, and the listener `ylambda serve` uses on the
//! embedded backend. A publish goes straight into each listening listener's event queue: nothing
//! is allocated per channel but the list of its listeners (a broadcast ring per channel was
//! ~256 KB of every open room, BENCHMARKS.md idle connections), and no task runs per channel.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::ports::{Channel, ChannelEvent, RelayListener, StoreResult};

/// Events waiting for a listener's owner. Past that the owner is behind: later messages are
/// dropped until there is room, and then it is told it missed some ([`ChannelEvent::Resumed`]).
pub const LISTENER_BACKLOG: usize = 4096;

/// One listener's end, as the channels hold it.
struct Inbox {
    events: mpsc::Sender<ChannelEvent>,
    /// Set when a message was dropped for a full queue; cleared once `Resumed` is queued.
    missed: AtomicBool,
}

impl Inbox {
    /// Queues a message; says false once the owner is gone.
    fn offer(&self, channel: &Channel, message: &[u8]) -> bool {
        if self.missed.load(Ordering::Acquire) {
            match self.events.try_send(ChannelEvent::Resumed) {
                Ok(()) => self.missed.store(false, Ordering::Release),
                Err(TrySendError::Full(_)) => return true,
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        let event = ChannelEvent::Message {
            channel: channel.clone(),
            payload: message.to_vec(),
        };
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::warn!(%channel, "relay listener fell behind: a message was dropped");
                self.missed.store(true, Ordering::Release);
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// Channel → the listeners listening to it, by listener id.
type Listening = HashMap<Channel, Vec<(u64, Arc<Inbox>)>>;

#[derive(Default)]
pub struct MemoryChannels {
    listening: Mutex<Listening>,
    next_listener: AtomicU64,
}

impl MemoryChannels {
    fn listening(&self) -> MutexGuard<'_, Listening> {
        // Pushes and removals only: a poisoned map is still consistent.
        self.listening.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes on a channel; nobody listening is not an error, as in Redis.
    pub fn publish(&self, channel: &Channel, message: &[u8]) {
        let mut listening = self.listening();
        if let Some(inboxes) = listening.get_mut(channel) {
            inboxes.retain(|(_, inbox)| inbox.offer(channel, message));
            if inboxes.is_empty() {
                listening.remove(channel);
            }
        }
    }

    /// A listener and the receiver of its events.
    pub fn listener(self: &Arc<Self>) -> (MemoryRelayListener, mpsc::Receiver<ChannelEvent>) {
        let (events, rx) = mpsc::channel(LISTENER_BACKLOG);
        let listener = MemoryRelayListener {
            channels: self.clone(),
            id: self.next_listener.fetch_add(1, Ordering::Relaxed),
            inbox: Arc::new(Inbox {
                events,
                missed: AtomicBool::new(false),
            }),
        };
        (listener, rx)
    }
}

/// See the module documentation.
pub struct MemoryRelayListener {
    channels: Arc<MemoryChannels>,
    id: u64,
    inbox: Arc<Inbox>,
}

impl Drop for MemoryRelayListener {
    fn drop(&mut self) {
        let mut listening = self.channels.listening();
        listening.retain(|_, inboxes| {
            inboxes.retain(|(id, _)| *id != self.id);
            !inboxes.is_empty()
        });
    }
}

#[async_trait]
impl RelayListener for MemoryRelayListener {
    async fn listen(&self, channel: &Channel) -> StoreResult<()> {
        let mut listening = self.channels.listening();
        let inboxes = listening.entry(channel.clone()).or_default();
        if !inboxes.iter().any(|(id, _)| *id == self.id) {
            inboxes.push((self.id, self.inbox.clone()));
        }
        Ok(())
    }

    async fn stop_listening(&self, channel: &Channel) -> StoreResult<()> {
        let mut listening = self.channels.listening();
        if let Some(inboxes) = listening.get_mut(channel) {
            inboxes.retain(|(id, _)| *id != self.id);
            if inboxes.is_empty() {
                listening.remove(channel);
            }
        }
        Ok(())
    }

    fn connected(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listener_that_falls_behind_is_told_it_missed_messages() {
        let channels = Arc::new(MemoryChannels::default());
        let (listener, mut events) = channels.listener();
        let room = Channel::Room("r".into());
        listener.listen(&room).await.unwrap();
        for i in 0..LISTENER_BACKLOG + 10 {
            channels.publish(&room, &(i as u64).to_le_bytes());
        }
        for i in 0..LISTENER_BACKLOG {
            let expected = ChannelEvent::Message {
                channel: room.clone(),
                payload: (i as u64).to_le_bytes().to_vec(),
            };
            assert_eq!(events.recv().await, Some(expected));
        }
        assert!(
            events.try_recv().is_err(),
            "dropped messages are not queued"
        );
        channels.publish(&room, b"after");
        assert_eq!(events.recv().await, Some(ChannelEvent::Resumed));
        assert_eq!(
            events.recv().await,
            Some(ChannelEvent::Message {
                channel: room.clone(),
                payload: b"after".to_vec()
            })
        );
    }

    #[tokio::test]
    async fn channels_are_forgotten_when_nobody_listens() {
        let channels = Arc::new(MemoryChannels::default());
        let (listener, _events) = channels.listener();
        let room = Channel::Room("r".into());
        listener.listen(&room).await.unwrap();
        assert_eq!(channels.listening().len(), 1);
        listener.stop_listening(&room).await.unwrap();
        assert!(channels.listening().is_empty());
        listener.listen(&room).await.unwrap();
        drop(listener);
        assert!(
            channels.listening().is_empty(),
            "a dropped listener leaves nothing"
        );
    }
}
