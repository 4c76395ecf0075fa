//! The embedded stand-in for Redis pub/sub: a broadcast channel per room or topic, and the
//! listener `ylambda serve` uses on the embedded backend.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::ports::{Channel, ChannelEvent, RelayListener, StoreResult};

/// Messages a channel holds for a listener that has not read them yet; a listener further
/// behind is told it missed some ([`ChannelEvent::Resumed`]).
const CHANNEL_BACKLOG: usize = 4096;

/// Events waiting for the listener's owner.
pub const LISTENER_BACKLOG: usize = 4096;

#[derive(Default)]
pub struct MemoryChannels {
    senders: Mutex<HashMap<Channel, broadcast::Sender<Vec<u8>>>>,
}

impl MemoryChannels {
    fn senders(&self) -> MutexGuard<'_, HashMap<Channel, broadcast::Sender<Vec<u8>>>> {
        // Inserts and clones only: a poisoned map is still consistent.
        self.senders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes on a channel; nobody listening is not an error, as in Redis.
    pub fn publish(&self, channel: &Channel, message: &[u8]) {
        let mut senders = self.senders();
        if let Some(tx) = senders.get(channel) {
            if tx.send(message.to_vec()).is_err() {
                // Its last listener left: forget the channel, so memory follows the listeners.
                senders.remove(channel);
            }
        }
    }

    fn subscribe(&self, channel: &Channel) -> broadcast::Receiver<Vec<u8>> {
        self.senders()
            .entry(channel.clone())
            .or_insert_with(|| broadcast::channel(CHANNEL_BACKLOG).0)
            .subscribe()
    }

    /// A listener and the receiver of its events.
    pub fn listener(self: &Arc<Self>) -> (MemoryRelayListener, mpsc::Receiver<ChannelEvent>) {
        let (events, rx) = mpsc::channel(LISTENER_BACKLOG);
        let listener = MemoryRelayListener {
            channels: self.clone(),
            events,
            tasks: Mutex::new(HashMap::new()),
        };
        (listener, rx)
    }
}

/// One task per channel listened to, forwarding its messages to the owner's receiver.
pub struct MemoryRelayListener {
    channels: Arc<MemoryChannels>,
    events: mpsc::Sender<ChannelEvent>,
    tasks: Mutex<HashMap<Channel, JoinHandle<()>>>,
}

impl MemoryRelayListener {
    fn tasks(&self) -> MutexGuard<'_, HashMap<Channel, JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for MemoryRelayListener {
    fn drop(&mut self) {
        for (_, task) in self.tasks().drain() {
            task.abort();
        }
    }
}

#[async_trait]
impl RelayListener for MemoryRelayListener {
    async fn listen(&self, channel: &Channel) -> StoreResult<()> {
        let mut tasks = self.tasks();
        if tasks.contains_key(channel) {
            return Ok(());
        }
        // Subscribed before this returns: every later publish is heard.
        let mut rx = self.channels.subscribe(channel);
        let events = self.events.clone();
        let name = channel.clone();
        let task = tokio::spawn(async move {
            loop {
                let event = match rx.recv().await {
                    Ok(payload) => ChannelEvent::Message {
                        channel: name.clone(),
                        payload,
                    },
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(channel = %name, missed, "relay listener fell behind");
                        ChannelEvent::Resumed
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if events.send(event).await.is_err() {
                    return;
                }
            }
        });
        tasks.insert(channel.clone(), task);
        Ok(())
    }

    async fn stop_listening(&self, channel: &Channel) -> StoreResult<()> {
        if let Some(task) = self.tasks().remove(channel) {
            task.abort();
        }
        Ok(())
    }

    fn connected(&self) -> bool {
        true
    }
}
