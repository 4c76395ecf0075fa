//! Posting to connections: ordered replies to one connection, concurrent broadcasts to many, and
//! cleanup of connections API Gateway reports gone (410).
use futures::stream::{FuturesUnordered, StreamExt};

use super::{Handler, HandlerResult};
use crate::ports::{Fanout, FanoutError, Membership, Scope};

async fn post_one<'a>(
    fanout: &'a dyn Fanout,
    member: &'a Membership,
    frame: &'a str,
) -> (&'a Membership, Result<(), FanoutError>) {
    (
        member,
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
                    self.forget_gone(connection_id).await?;
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
    /// posts were delivered.
    pub(super) async fn broadcast(
        &self,
        members: &[Membership],
        frame: &str,
        except: Option<&str>,
    ) -> HandlerResult<usize> {
        let fanout: &dyn Fanout = self.ports.fanout.as_ref();
        let mut targets = members
            .iter()
            .filter(|m| Some(m.connection_id.as_str()) != except);
        // A named async fn instead of a closure-built stream: the latter trips rustc's
        // higher-ranked `Send` inference when callers box the handler's future.
        let mut in_flight = FuturesUnordered::new();
        let mut results = Vec::with_capacity(members.len());
        loop {
            while in_flight.len() < self.config.fanout_concurrency {
                match targets.next() {
                    Some(m) => in_flight.push(post_one(fanout, m, frame)),
                    None => break,
                }
            }
            match in_flight.next().await {
                Some(result) => results.push(result),
                None => break,
            }
        }
        let mut delivered = 0;
        for (member, result) in results {
            match result {
                Ok(()) => delivered += 1,
                Err(FanoutError::Gone(_)) => self.forget_gone(&member.connection_id).await?,
                Err(e) => tracing::warn!(
                    connection_id = %member.connection_id,
                    scope = %member.scope,
                    error = %e,
                    "broadcast post failed"
                ),
            }
        }
        Ok(delivered)
    }

    /// A post answered 410: the connection is gone and its `$disconnect` may never run. Delete
    /// its records and awareness now. Peers are not told of its awareness clients here (that
    /// could cascade into more gone posts); their own 30 s awareness timeout removes them.
    async fn forget_gone(&self, connection_id: &str) -> HandlerResult<()> {
        tracing::info!(connection_id, "connection gone (410): removing its records");
        for membership in self
            .ports
            .connections
            .remove_connection(connection_id)
            .await?
        {
            if let Scope::Room(room) = &membership.scope {
                self.ports
                    .docs
                    .remove_awareness(room, connection_id)
                    .await?;
            }
        }
        Ok(())
    }
}
