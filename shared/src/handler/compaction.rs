//! Compaction: merge a room's log into its snapshot, then trim the log (ARCHITECTURE.md invariant 3).
use super::{Handler, HandlerError, HandlerResult};
use crate::adapters::unix_now_ms;
use crate::doc;
use crate::ports::{PutOutcome, Snapshot, SnapshotRecord};

/// How long a compaction may hold a room's lock before another may start.
const COMPACTION_LOCK_MS: u64 = 30_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compaction {
    /// The log was empty.
    NothingToDo,
    /// Another compaction holds the room's lock.
    Busy,
    /// The snapshot changed between read and write; nothing was written or trimmed.
    Conflict,
    /// `entries` log entries were merged into a snapshot of `snapshot_bytes`.
    Written {
        entries: usize,
        snapshot_bytes: usize,
    },
}

impl Handler {
    /// Merges the room's log into its snapshot and trims what was merged.
    ///
    /// Order matters: the log is read before the snapshot, the snapshot is written
    /// (compare-and-swap on the version read) before the log is trimmed, and only entries up to
    /// the position read are trimmed. An update appended meanwhile stays in the log; a racing
    /// compaction makes our write fail instead of replacing its snapshot with an older merge.
    pub async fn compact(&self, room: &str) -> HandlerResult<Compaction> {
        let docs = &self.ports.docs;
        let Some(token) = docs.try_lock(room, COMPACTION_LOCK_MS).await? else {
            return Ok(Compaction::Busy);
        };
        let result = self.compact_locked(room).await;
        if let Err(e) = docs.unlock(room, &token).await {
            tracing::warn!(room, error = %e, "could not release compaction lock; it will expire");
        }
        let outcome = result?;
        if let Compaction::Written {
            entries,
            snapshot_bytes,
        } = &outcome
        {
            tracing::info!(room, entries, snapshot_bytes, "compacted");
            self.report(crate::ports::DashboardEvent::Compacted {
                room: room.to_string(),
                updates: *entries as u64,
                bytes: *snapshot_bytes as u64,
                at_ms: unix_now_ms(),
            })
            .await;
        }
        Ok(outcome)
    }

    async fn compact_locked(&self, room: &str) -> HandlerResult<Compaction> {
        let log = self.ports.docs.read_log(room).await?;
        let Some(last) = log.last.clone() else {
            return Ok(Compaction::NothingToDo);
        };
        let stored = self.ports.snapshots.get(room).await?;
        let entries = log.updates.len();
        let merged = merge_room_state(
            room,
            stored.as_ref().map(|s| s.snapshot.update.clone()),
            log.updates,
        )?;
        let snapshot_bytes = merged.len();
        let snapshot = Snapshot {
            update: merged,
            covers: Some(last.clone()),
        };
        let expected = stored.as_ref().map(|s| s.version.as_str());
        match self.ports.snapshots.put(room, &snapshot, expected).await? {
            PutOutcome::Conflict => Ok(Compaction::Conflict),
            PutOutcome::Written { version } => {
                self.ports.docs.trim_log(room, &last).await?;
                let record = SnapshotRecord {
                    at_ms: unix_now_ms(),
                    updates_merged: entries as u64,
                    version,
                    bytes: snapshot_bytes as u64,
                };
                // Still under the lock, so records arrive in snapshot order. The record is
                // informational: the snapshot and trim already happened, so a failure is logged
                // and the next compaction brings the record up to date (its counts miss these).
                if let Err(e) = self.ports.connections.record_snapshot(room, &record).await {
                    tracing::warn!(room, error = %e, "could not record the snapshot in the room's meta item");
                }
                Ok(Compaction::Written {
                    entries,
                    snapshot_bytes,
                })
            }
        }
    }

    /// The room's whole state: log read first, then the snapshot, merged (ARCHITECTURE.md invariant 3).
    pub(super) async fn read_state(&self, room: &str) -> HandlerResult<Vec<u8>> {
        let log = self.ports.docs.read_log(room).await?;
        let stored = self.ports.snapshots.get(room).await?;
        merge_room_state(room, stored.map(|s| s.snapshot.update), log.updates)
    }
}

fn merge_room_state(
    room: &str,
    snapshot: Option<Vec<u8>>,
    log: Vec<Vec<u8>>,
) -> HandlerResult<Vec<u8>> {
    let merged = doc::merge_room(snapshot, log).map_err(|e| HandlerError::Document {
        room: room.to_string(),
        reason: e.to_string(),
    })?;
    if let Some(error) = &merged.unchecked {
        tracing::warn!(
            room,
            error,
            "a stored update the reader refuses: merged unchecked"
        );
    }
    if merged.gc_items > 0 {
        tracing::warn!(
            room,
            items = merged.gc_items,
            "items no Yjs client writes merged as GC (under a parent that is not a type, or \
             naming the inside of a live map entry)"
        );
    }
    Ok(merged.state)
}
