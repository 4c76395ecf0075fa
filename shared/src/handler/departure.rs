//! Connections leaving: on `$disconnect`, and when a post finds a connection gone (410) whose
//! `$disconnect` may never run (or runs later and finds nothing left to do). Either way the same
//! work: delete its records, tell each of its rooms that its awareness clients left, and compact a
//! room it was the last one in.
use std::collections::HashSet;

use super::{Handler, HandlerResult};
use crate::ports::{DashboardEvent, Membership, Scope};
use crate::protocol::{transport, ywebsocket};

impl Handler {
    /// Connections that answered 410 Gone.
    pub(super) async fn depart_gone(&self, gone: Vec<String>) -> HandlerResult<()> {
        for connection_id in &gone {
            tracing::info!(connection_id, "connection gone (410): removing its records");
        }
        self.depart(gone).await
    }

    /// Removes each connection and announces its departure. Announcing can find more connections
    /// gone; they join the same loop (each handled once), so a room full of dead connections
    /// costs one pass, not a cascade of nested ones.
    pub(super) async fn depart(&self, connection_ids: Vec<String>) -> HandlerResult<()> {
        let mut pending = connection_ids;
        let mut handled: HashSet<String> = HashSet::new();
        while let Some(connection_id) = pending.pop() {
            if !handled.insert(connection_id.clone()) {
                continue;
            }
            self.rooms.forget(&connection_id);
            self.told_readonly.forget(&connection_id);
            let removed = self
                .ports
                .connections
                .remove_connection(&connection_id)
                .await?;
            for membership in removed {
                if let Scope::Room(room) = &membership.scope {
                    self.report(DashboardEvent::Closed {
                        room: room.clone(),
                        connection_id: connection_id.clone(),
                        at_ms: crate::adapters::unix_now_ms(),
                    })
                    .await;
                    // Not needed for correctness (a post to a connection that left answers
                    // 410), but it spares every relay of the room that post (invariant 21).
                    self.rosters.forget(room);
                    if let Err(e) = self.ports.docs.mark_roster_changed(room).await {
                        tracing::warn!(room, error = %e, "cannot mark the room's members changed");
                    }
                    let gone = self.leave_room(room, &connection_id, &handled).await?;
                    pending.extend(gone);
                }
            }
        }
        Ok(())
    }

    /// One connection left a room: broadcast the removal of its awareness clients (as y-protocols
    /// does: `null` state, last clock) and compact the room if nobody is left. Returns the
    /// connections found gone while broadcasting.
    async fn leave_room(
        &self,
        room: &str,
        connection_id: &str,
        already_left: &HashSet<String>,
    ) -> HandlerResult<Vec<String>> {
        let members = self
            .ports
            .connections
            .members(&Scope::Room(room.to_string()))
            .await?;
        // Everyone else in the room. The leaving connections are already deleted, so the store
        // should not list them; the filter keeps a late listing from being posted to.
        let others: Vec<&Membership> = members
            .iter()
            .filter(|m| {
                m.connection_id != connection_id && !already_left.contains(&m.connection_id)
            })
            .collect();
        let mut gone = Vec::new();
        if let Some(entry) = self
            .ports
            .docs
            .remove_awareness(room, connection_id)
            .await?
        {
            if !entry.clients.is_empty() {
                let message = ywebsocket::encode_awareness_removal(&entry.clients);
                self.publish_to_room(room, None, &message).await?;
                let posted = self
                    .post_to_each(&others, &transport::encode_frame(&message))
                    .await;
                for (member, error) in posted.failed {
                    tracing::warn!(
                        connection_id = %member.connection_id,
                        room,
                        %error,
                        "awareness removal not delivered"
                    );
                }
                gone = posted.gone;
            }
        }
        if others.iter().all(|m| gone.contains(&m.connection_id)) {
            // Boxed: a compaction's state (merge, snapshot write) is large, and the departure loop
            // is already deep in a Lambda worker's stack (debug builds overflowed 2 MiB).
            Box::pin(self.compact(room)).await?;
        }
        Ok(gone)
    }
}
