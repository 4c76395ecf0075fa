//! Posting to connections: ordered replies to one connection and concurrent broadcasts to many.
//! Connections API Gateway reports gone (410) are handed to `departure`.
use futures::stream::{FuturesUnordered, StreamExt};

use super::{Handler, HandlerResult};
use crate::adapters::unix_now_ms;
use crate::ports::{Fanout, FanoutError, Membership};

/// Pauses before re-posting an update to the connections whose post failed (not 410).
const POST_RETRY_DELAYS_MS: [u64; 2] = [100, 400];

/// How long after its membership was written a connection may still be in its `$connect`:
/// API Gateway's integration timeout (29 s), rounded up. API Gateway answers 410 to a post to a
/// connection whose `$connect` has not returned yet, though the membership is already in the
/// store, so a 410 within this window does not mean the connection is gone (invariant 9).
const CONNECT_WINDOW_MS: u64 = 30_000;

/// Whether a 410 for this member may only mean its `$connect` is still running.
fn may_still_be_connecting(member: &Membership) -> bool {
    unix_now_ms().saturating_sub(member.joined_at_ms) < CONNECT_WINDOW_MS
}

/// Posts to one target and says which (by index: the results outlive the borrow of `frame`).
async fn post_one(
    fanout: &dyn Fanout,
    index: usize,
    member: &Membership,
    frame: &str,
) -> (usize, Result<(), FanoutError>) {
    (
        index,
        fanout
            .post(&member.endpoint, &member.connection_id, frame)
            .await,
    )
}

impl Handler {
    /// Posts frames to one connection in order. Stops at the first failure: later frames would
    /// arrive out of order or not at all.
    pub(super) async fn reply(
        &self,
        endpoint: &str,
        connection_id: &str,
        frames: &[String],
    ) -> HandlerResult<()> {
        for frame in frames {
            match self.ports.fanout.post(endpoint, connection_id, frame).await {
                Ok(()) => {}
                Err(FanoutError::Gone(_)) => {
                    self.depart_gone(vec![connection_id.to_string()]).await?;
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(connection_id, error = %e, "reply not delivered");
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Posts one frame to every member (but `except`), with bounded concurrency. Returns how many
    /// posts were delivered. A failed post is logged and not repeated: awareness and signaling
    /// messages are superseded by the next ones, and a repeated WebRTC signal can confuse a peer.
    pub(super) async fn broadcast(
        &self,
        members: &[Membership],
        frame: &str,
        except: Option<&str>,
    ) -> HandlerResult<usize> {
        self.post_with_retries(members, frame, except, &[]).await
    }

    /// Like `broadcast`, for document updates: a peer that misses one would not get it until it
    /// reconnects (y-websocket clients sync only then), so failed posts are retried a few times.
    /// Repeats are harmless: applying a Yjs update twice changes nothing.
    pub(super) async fn broadcast_update(
        &self,
        members: &[Membership],
        frame: &str,
        except: Option<&str>,
    ) -> HandlerResult<usize> {
        self.post_with_retries(members, frame, except, &POST_RETRY_DELAYS_MS)
            .await
    }

    /// Posts to every member but `except`, then re-posts to those whose post failed (not 410)
    /// after each of `retry_delays_ms`. Returns how many posts were delivered.
    async fn post_with_retries(
        &self,
        members: &[Membership],
        frame: &str,
        except: Option<&str>,
        retry_delays_ms: &[u64],
    ) -> HandlerResult<usize> {
        let mut targets: Vec<&Membership> = members
            .iter()
            .filter(|m| Some(m.connection_id.as_str()) != except)
            .collect();
        let mut delivered = 0;
        let mut gone = Vec::new();
        let mut delays = retry_delays_ms.iter();
        let undelivered = loop {
            let round = self.post_to_each(&targets, frame).await;
            delivered += round.delivered;
            gone.extend(round.gone);
            match delays.next() {
                Some(&delay_ms) if !round.failed.is_empty() => {
                    tracing::debug!(
                        failed = round.failed.len(),
                        delay_ms,
                        "posts failed: retrying"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                    targets = round.failed.into_iter().map(|(member, _)| member).collect();
                }
                _ => break round.failed,
            }
        };
        for (member, error) in undelivered {
            tracing::warn!(
                connection_id = %member.connection_id,
                scope = %member.scope,
                %error,
                attempts = retry_delays_ms.len() + 1,
                "post not delivered"
            );
        }
        self.depart_gone(gone).await?;
        Ok(delivered)
    }

    /// Posts to every target with bounded concurrency. Returns how many posts were delivered,
    /// which failed, and the connections that answered 410 (the caller has them depart).
    /// Targets that hear the relay channel (direct instances' clients) are skipped: whatever a
    /// broadcast carries was published there first (invariant 25).
    pub(super) async fn post_to_each<'a>(
        &self,
        targets: &[&'a Membership],
        frame: &str,
    ) -> PostResults<'a> {
        // Borrowed as is unless a member hears the channel: no allocation on the Lambdas' path.
        let targets: std::borrow::Cow<'_, [&'a Membership]> =
            if targets.iter().any(|m| m.hears_the_channel()) {
                targets
                    .iter()
                    .copied()
                    .filter(|m| !m.hears_the_channel())
                    .collect::<Vec<_>>()
                    .into()
            } else {
                targets.into()
            };
        let fanout: &dyn Fanout = self.ports.fanout.as_ref();
        let mut pending = targets.iter().copied().enumerate();
        // A named async fn instead of a closure-built stream: the latter trips rustc's
        // higher-ranked `Send` inference when callers box the handler's future.
        let mut in_flight = FuturesUnordered::new();
        let mut results = Vec::with_capacity(targets.len());
        loop {
            while in_flight.len() < self.config.fanout_concurrency {
                match pending.next() {
                    Some((index, m)) => in_flight.push(post_one(fanout, index, m, frame)),
                    None => break,
                }
            }
            match in_flight.next().await {
                Some(result) => results.push(result),
                None => break,
            }
        }
        let mut outcome = PostResults::default();
        for (index, result) in results {
            let member = targets[index];
            match result {
                Ok(()) => outcome.delivered += 1,
                // Not yet connected, not gone: its sync, which comes after its `$connect`,
                // reads what this post carried from the log. Removing its records here would
                // leave it in no room (its next message closed as from a stranger).
                Err(FanoutError::Gone(_)) if may_still_be_connecting(member) => {
                    tracing::debug!(
                        connection_id = %member.connection_id,
                        "410 from a connection that joined a moment ago: still connecting, kept"
                    );
                }
                Err(FanoutError::Gone(_)) => outcome.gone.push(member.connection_id.clone()),
                Err(e) => outcome.failed.push((member, e)),
            }
        }
        outcome
    }
}

/// What one round of posts came to.
#[derive(Default)]
pub(super) struct PostResults<'a> {
    pub delivered: usize,
    pub failed: Vec<(&'a Membership, FanoutError)>,
    /// Connections that answered 410 Gone.
    pub gone: Vec<String>,
}
