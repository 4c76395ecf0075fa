//! One connection's outgoing frames: a bounded first-in first-out queue between the posts of any
//! task and the connection's writer.
//!
//! Not a tokio `mpsc` channel: that allocates its shared state and a first block of 32 slots when
//! it is made, about 0.8 KB of every idle connection (heaptrack, BENCHMARKS.md idle connections).
//! This queue is a `VecDeque` behind a mutex, which allocates nothing until a frame is queued and
//! gives back a burst's room once it has drained.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::connections::{DeliveryError, Outgoing, OUTGOING_QUEUE};

/// Frames kept room for after the queue drains; a larger buffer left by a burst is given back.
const KEPT_CAPACITY: usize = 8;

/// The queue both ends share.
#[derive(Default)]
struct Shared {
    frames: Mutex<VecDeque<Outgoing>>,
    /// Wakes the writer; a wake-up with no writer waiting is kept for its next wait.
    ready: Notify,
    /// The writer is gone: posts fail as they would to a dead socket.
    receiver_gone: AtomicBool,
}

impl Shared {
    fn frames(&self) -> MutexGuard<'_, VecDeque<Outgoing>> {
        // Only short pushes and pops happen under the lock, none of which can leave the deque
        // inconsistent: a poisoned lock is still usable.
        self.frames.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The posting end, held by the connection.
pub struct FrameSender(Arc<Shared>);

/// The writer's end. Dropping it (the writer ended) makes later posts fail with
/// [`DeliveryError::Gone`].
pub struct OutgoingQueue(Arc<Shared>);

/// A new, empty queue.
pub fn frame_queue() -> (FrameSender, OutgoingQueue) {
    let shared = Arc::new(Shared::default());
    (FrameSender(shared.clone()), OutgoingQueue(shared))
}

impl FrameSender {
    /// Queues a frame, or refuses it when [`OUTGOING_QUEUE`] frames are waiting (a client that
    /// does not read) or the writer is gone.
    pub fn try_send(&self, frame: Outgoing) -> Result<(), DeliveryError> {
        if self.0.receiver_gone.load(Ordering::Acquire) {
            return Err(DeliveryError::Gone);
        }
        {
            let mut frames = self.0.frames();
            if frames.len() >= OUTGOING_QUEUE {
                return Err(DeliveryError::QueueFull);
            }
            frames.push_back(frame);
        }
        self.0.ready.notify_one();
        Ok(())
    }
}

impl OutgoingQueue {
    /// The next frame, waiting for one.
    pub async fn recv(&mut self) -> Outgoing {
        loop {
            if let Some(frame) = self.try_recv() {
                return frame;
            }
            // A frame queued between the check and this wait left a wake-up behind (one
            // writer, `notify_one`), so the wait ends at once.
            self.0.ready.notified().await;
        }
    }

    /// The next frame if one is waiting.
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let mut frames = self.0.frames();
        let frame = frames.pop_front();
        if frames.is_empty() && frames.capacity() > KEPT_CAPACITY {
            frames.shrink_to(KEPT_CAPACITY);
        }
        frame
    }
}

impl Drop for OutgoingQueue {
    fn drop(&mut self) {
        self.0.receiver_gone.store(true, Ordering::Release);
        // What nobody will write goes now, not when the connection's last handle does.
        self.0.frames().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(frame: Outgoing) -> String {
        match frame {
            Outgoing::Text(t) => t,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn frames_come_out_in_order_and_wake_a_waiting_writer() {
        let (tx, mut rx) = frame_queue();
        tx.try_send(Outgoing::Text("a".into())).unwrap();
        tx.try_send(Outgoing::Text("b".into())).unwrap();
        assert_eq!(text(rx.recv().await), "a");
        assert_eq!(text(rx.try_recv().unwrap()), "b");
        assert!(rx.try_recv().is_none());
        let waiting = tokio::spawn(async move { text(rx.recv().await) });
        tokio::task::yield_now().await;
        tx.try_send(Outgoing::Text("late".into())).unwrap();
        assert_eq!(waiting.await.unwrap(), "late");
    }

    #[test]
    fn a_full_queue_refuses_and_a_drained_one_gives_its_room_back() {
        let (tx, mut rx) = frame_queue();
        for _ in 0..OUTGOING_QUEUE {
            tx.try_send(Outgoing::Text("x".into())).unwrap();
        }
        assert_eq!(
            tx.try_send(Outgoing::Text("x".into())),
            Err(DeliveryError::QueueFull)
        );
        while rx.try_recv().is_some() {}
        assert!(rx.0.frames().capacity() <= KEPT_CAPACITY);
        tx.try_send(Outgoing::Text("again".into())).unwrap();
    }

    #[test]
    fn posts_after_the_writer_ended_are_gone() {
        let (tx, rx) = frame_queue();
        tx.try_send(Outgoing::Text("unsent".into())).unwrap();
        let shared = rx.0.clone();
        drop(rx);
        assert!(
            shared.frames().is_empty(),
            "unsent frames are dropped with the writer"
        );
        assert_eq!(
            tx.try_send(Outgoing::Text("x".into())),
            Err(DeliveryError::Gone)
        );
    }
}
