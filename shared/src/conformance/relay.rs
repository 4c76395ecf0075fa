//! The relay listener suite: what `ylambda serve` relies on from a doc store's channels.
use std::time::Duration;

use tokio::sync::mpsc;

use super::unique;
use crate::ports::{Channel, ChannelEvent, DocStore, RelayListener};

const WAIT: Duration = Duration::from_secs(5);

/// The next event, or a panic naming what was expected.
pub async fn next_event(
    events: &mut mpsc::Receiver<ChannelEvent>,
    expecting: &str,
) -> ChannelEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap_or_else(|_| panic!("no event within 5 s: expected {expecting}"))
        .expect("the listener's event stream ended")
}

/// Whether anything arrives within a short wait (for "nothing more is heard").
async fn quiet(events: &mut mpsc::Receiver<ChannelEvent>) -> Option<ChannelEvent> {
    tokio::time::timeout(Duration::from_millis(300), events.recv())
        .await
        .ok()
        .flatten()
}

fn message(channel: &Channel, payload: &[u8]) -> ChannelEvent {
    ChannelEvent::Message {
        channel: channel.clone(),
        payload: payload.to_vec(),
    }
}

/// `store`'s appends and publishes reach `listener` (made by the same store), in order, on the
/// channels it listens to only; a room and a topic of the same name are different channels;
/// after `stop_listening` nothing more of that channel arrives.
pub async fn relay_listener_suite(
    store: &dyn DocStore,
    listener: &dyn RelayListener,
    events: &mut mpsc::Receiver<ChannelEvent>,
) {
    let name = unique("relay");
    let (room, topic, other) = (
        Channel::Room(name.clone()),
        Channel::Topic(name.clone()),
        Channel::Room(unique("relay")),
    );
    listener.listen(&room).await.expect("listen to a room");
    listener.listen(&topic).await.expect("listen to a topic");
    assert!(
        listener.connected(),
        "a listener that just listened is connected"
    );

    store
        .append(&name, b"update", b"relayed-update")
        .await
        .unwrap();
    store.publish(&room, b"awareness").await.unwrap();
    store.publish(&other, b"other room").await.unwrap();
    store.publish(&topic, b"signal").await.unwrap();
    let every_byte: Vec<u8> = (0..=255u8).collect();
    store.publish(&room, &every_byte).await.unwrap();

    // Each channel's messages in publish order; channels may interleave.
    let mut heard = Vec::new();
    for _ in 0..4 {
        heard.push(next_event(events, "the four messages published on listened channels").await);
    }
    let of = |channel: &Channel| -> Vec<ChannelEvent> {
        heard
            .iter()
            .filter(|e| matches!(e, ChannelEvent::Message { channel: c, .. } if c == channel))
            .cloned()
            .collect()
    };
    assert_eq!(
        of(&room),
        vec![
            message(&room, b"relayed-update"),
            message(&room, b"awareness"),
            message(&room, &every_byte),
        ],
        "the room's messages, in order, byte for byte"
    );
    assert_eq!(
        of(&topic),
        vec![message(&topic, b"signal")],
        "a topic must not be mixed with its room"
    );
    assert!(
        !heard
            .iter()
            .any(|e| matches!(e, ChannelEvent::Message { channel, .. } if *channel == other)),
        "a channel not listened to was heard"
    );

    listener.stop_listening(&room).await.unwrap();
    store.publish(&room, b"nobody listens").await.unwrap();
    store.publish(&topic, b"still heard").await.unwrap();
    assert_eq!(
        next_event(events, "the topic, still listened to").await,
        message(&topic, b"still heard"),
        "a channel left is still heard"
    );
    listener.stop_listening(&topic).await.unwrap();
    store.publish(&topic, b"gone").await.unwrap();
    assert_eq!(quiet(events).await, None, "a channel left is still heard");
}
