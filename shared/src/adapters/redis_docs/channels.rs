//! The relay listener on Redis pub/sub, for `ylambda serve`: one dedicated connection per
//! process, subscribed to the channels of the rooms and topics its clients are in. When that
//! connection drops, it reconnects (with backoff), subscribes again to everything, and says
//! [`ChannelEvent::Resumed`] so the owner resyncs what it may have missed (invariant 25).
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::{mpsc, watch};

use super::wire::{room_tag, RoomKeys};
use crate::ports::{Channel, ChannelEvent, RelayListener, StoreError, StoreResult};

/// Events waiting for the listener's owner.
const LISTENER_BACKLOG: usize = 4096;
/// Pauses between reconnect attempts: doubling from the first to the last.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_LAST: Duration = Duration::from_secs(5);
/// How long opening the pub/sub connection, or one SUBSCRIBE, may take.
const PUBSUB_TIMEOUT: Duration = Duration::from_secs(5);

/// The Redis channel of a relay channel. A room's is `yl:{R}`, where `append` publishes; a
/// topic's `ylt:{T}`, so a topic never shares a room's channel.
pub(super) fn channel_name(channel: &Channel) -> String {
    match channel {
        Channel::Room(room) => RoomKeys::new(room).channel,
        Channel::Topic(topic) => format!("ylt:{{{}}}", room_tag(topic)),
    }
}

#[derive(Default)]
struct State {
    /// The live connection's subscribing half; `None` while reconnecting.
    sink: Option<PubSubSink>,
    /// Redis channel name → the channel it stands for, for everything listened to.
    channels: HashMap<String, Channel>,
}

/// See the module documentation. Dropping it ends its connection task.
pub struct RedisRelayListener {
    state: Arc<Mutex<State>>,
    /// Whether the pub/sub connection is up and subscribed to everything wanted.
    connected: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Map inserts and removals only: a poisoned lock is still consistent.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl RedisRelayListener {
    /// Starts the listener's connection task on `client`; events arrive on the receiver.
    pub(super) fn start(
        client: redis::Client,
        target: String,
    ) -> (RedisRelayListener, mpsc::Receiver<ChannelEvent>) {
        let (events, rx) = mpsc::channel(LISTENER_BACKLOG);
        let state = Arc::new(Mutex::new(State::default()));
        let (set_connected, connected) = watch::channel(false);
        let task = tokio::spawn(run(client, target, state.clone(), set_connected, events));
        let listener = RedisRelayListener {
            state,
            connected,
            task,
        };
        (listener, rx)
    }
}

impl Drop for RedisRelayListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects, subscribes to everything wanted, forwards messages until the connection drops, and
/// again, until the owner's receiver is gone.
async fn run(
    client: redis::Client,
    target: String,
    state: Arc<Mutex<State>>,
    connected: watch::Sender<bool>,
    events: mpsc::Sender<ChannelEvent>,
) {
    let mut pause = RECONNECT_FIRST;
    let mut first = true;
    loop {
        let opened = tokio::time::timeout(PUBSUB_TIMEOUT, client.get_async_pubsub()).await;
        let pubsub = match opened {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => {
                tracing::warn!(url = %target, error = %e, "relay listener cannot connect to Redis");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RECONNECT_LAST);
                continue;
            }
            Err(_) => {
                tracing::warn!(url = %target, "relay listener timed out connecting to Redis");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RECONNECT_LAST);
                continue;
            }
        };
        let (sink, mut stream) = pubsub.split();
        // The sink is published before the list is read: a channel added from now on is either
        // in the list or subscribed by its own `listen` (subscribing twice is harmless).
        let wanted: Vec<String> = {
            let mut state = lock(&state);
            state.sink = Some(sink.clone());
            state.channels.keys().cloned().collect()
        };
        let mut resubscribed = true;
        for name in &wanted {
            let mut sink = sink.clone();
            if !matches!(
                tokio::time::timeout(PUBSUB_TIMEOUT, sink.subscribe(name)).await,
                Ok(Ok(()))
            ) {
                resubscribed = false;
                break;
            }
        }
        if resubscribed {
            connected.send_replace(true);
            pause = RECONNECT_FIRST;
            if !first {
                tracing::info!(url = %target, channels = wanted.len(), "relay listener reconnected");
                if events.send(ChannelEvent::Resumed).await.is_err() {
                    return;
                }
            }
            first = false;
            while let Some(message) = stream.next().await {
                let name = message.get_channel_name().to_string();
                let channel = lock(&state).channels.get(&name).cloned();
                // A message of a channel just left, still in flight: nobody wants it.
                let Some(channel) = channel else { continue };
                let event = ChannelEvent::Message {
                    channel,
                    payload: message.get_payload_bytes().to_vec(),
                };
                if events.send(event).await.is_err() {
                    return;
                }
            }
        }
        connected.send_replace(false);
        lock(&state).sink = None;
        // Whatever is published from here until the next subscription is missed: the next
        // connection says `Resumed`.
        tracing::warn!(url = %target, "relay listener lost its Redis connection: reconnecting");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RECONNECT_LAST);
    }
}

#[async_trait]
impl RelayListener for RedisRelayListener {
    async fn listen(&self, channel: &Channel) -> StoreResult<()> {
        let name = channel_name(channel);
        // A listener just made, or reconnecting, gets a moment to (re)connect.
        let mut connected = self.connected.clone();
        let _ = tokio::time::timeout(PUBSUB_TIMEOUT, connected.wait_for(|up| *up)).await;
        let sink = {
            let mut state = lock(&self.state);
            state.channels.insert(name.clone(), channel.clone());
            state.sink.clone()
        };
        let subscribed = match sink {
            None => Err(format!(
                "relay listener is reconnecting to Redis: cannot listen to {channel}"
            )),
            Some(mut sink) => {
                match tokio::time::timeout(PUBSUB_TIMEOUT, sink.subscribe(&name)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(format!("cannot subscribe to {channel}: {e}")),
                    Err(_) => Err(format!("timed out subscribing to {channel}")),
                }
            }
        };
        subscribed.map_err(|reason| {
            // Not listened to, so the owner will never stop listening: forget it.
            lock(&self.state).channels.remove(&name);
            StoreError::Backend(reason)
        })
    }

    async fn stop_listening(&self, channel: &Channel) -> StoreResult<()> {
        let name = channel_name(channel);
        let sink = {
            let mut state = lock(&self.state);
            state.channels.remove(&name);
            state.sink.clone()
        };
        if let Some(mut sink) = sink {
            // Not hearing it any more is what matters, and the message loop already drops a
            // channel not in the list: a failed UNSUBSCRIBE costs only its traffic.
            if let Err(e) = sink.unsubscribe(&name).await {
                tracing::debug!(%channel, error = %e, "unsubscribe failed");
            }
        }
        Ok(())
    }

    fn connected(&self) -> bool {
        *self.connected.borrow()
    }
}
