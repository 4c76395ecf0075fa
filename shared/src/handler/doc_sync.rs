//! y-websocket frames: sync, updates, awareness.
use yrs::updates::encoder::Encode;

use super::retry::retry_store;
use super::{Handler, HandlerError, HandlerResult};
use crate::doc::{self, Validated};
use crate::ports::{AwarenessEntry, Channel, Membership, RosterVersion, Scope};
use crate::protocol::relay::{self, RelayKind};
use crate::protocol::transport::{self, max_binary_for_text};
use crate::protocol::ywebsocket::{self, Incoming};

/// Back-off while the connection index catches up with a fresh `$connect` (about 1.5 s in all;
/// DynamoDB's global secondary indexes usually lag well under a second).
const INDEX_RETRY_DELAYS_MS: [u64; 5] = [50, 100, 200, 400, 800];

/// Bytes a sync message adds around its payload (two tags and a length varint).
const SYNC_MESSAGE_OVERHEAD: usize = 8;

fn bad(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::BadRequest(e.to_string())
}

impl Handler {
    pub(super) async fn on_doc_frame(
        &self,
        connection_id: &str,
        endpoint: &str,
        body: &str,
    ) -> HandlerResult<()> {
        let bytes = transport::decode_frame(body).map_err(bad)?;
        let messages = ywebsocket::decode_messages(&bytes).map_err(bad)?;
        // Validate every update of the frame before acting on any, so a bad frame is refused
        // whole and never partly applied (ARCHITECTURE.md invariant 4).
        let mut checked = Vec::with_capacity(messages.len());
        for message in messages {
            let validated = match &message {
                Incoming::SyncStep2(update) | Incoming::Update(update) => {
                    Some(doc::validate_update(update).map_err(bad)?)
                }
                _ => None,
            };
            checked.push((message, validated));
        }
        let member = self.room_membership(connection_id).await?;
        let Scope::Room(room) = &member.scope else {
            return Err(bad("not a room membership"));
        };
        self.check_credential(&member, endpoint, true).await?;
        for (message, validated) in checked {
            match message {
                Incoming::SyncStep1(state_vector) => {
                    self.answer_sync_step1(room, endpoint, connection_id, &state_vector.encode_v1())
                        .await?
                }
                Incoming::SyncStep2(update) | Incoming::Update(update) => {
                    if validated == Some(Validated::Content) {
                        self.accept_update(&member, room, update).await?;
                    }
                }
                Incoming::Awareness { update, .. } => {
                    let states = ywebsocket::awareness_states(&update);
                    self.relay_awareness(room, connection_id, states).await?
                }
                Incoming::QueryAwareness => {
                    let frames = self.awareness_frames(room).await?;
                    self.reply(endpoint, connection_id, &frames).await?
                }
                Incoming::Auth(_) => {
                    tracing::debug!(connection_id, "ignoring auth message from a client")
                }
                Incoming::Unknown(tag) => {
                    tracing::debug!(connection_id, tag, "ignoring unknown message type")
                }
            }
        }
        Ok(())
    }

    /// The room this connection joined at `$connect`. `$default` events carry no query string,
    /// so the membership record is the only place the room is known (remembered per process
    /// once found, see `room_cache`). It is found through the connection index, which on
    /// DynamoDB is eventually consistent: a client's first message can arrive before its fresh
    /// membership shows there, so an empty answer is retried for a moment before the connection
    /// is taken to have joined no room.
    async fn room_membership(&self, connection_id: &str) -> HandlerResult<Membership> {
        self.own_record(connection_id, |scope| matches!(scope, Scope::Room(_)))
            .await?
            .ok_or_else(|| {
                bad("y-websocket message from a connection that joined no room (connect with ?room=NAME)")
            })
    }

    /// The connection's record of the kind `wanted` picks (its room membership, or a signaling
    /// connection's `peer#` record), remembered per process once found. `None` once the index
    /// has had time to catch up and still has none.
    pub(super) async fn own_record(
        &self,
        connection_id: &str,
        wanted: impl Fn(&Scope) -> bool,
    ) -> HandlerResult<Option<Membership>> {
        if let Some(record) = self.rooms.get(connection_id).filter(|m| wanted(&m.scope)) {
            return Ok(Some(record));
        }
        for delay_ms in INDEX_RETRY_DELAYS_MS.iter().copied().chain([0]) {
            let found = self
                .ports
                .connections
                .memberships_of(connection_id)
                .await?
                .into_iter()
                .find(|m| wanted(&m.scope));
            if let Some(record) = found {
                self.rooms.remember(&record);
                return Ok(Some(record));
            }
            if delay_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            }
        }
        Ok(None)
    }

    /// Sync step 1: answer with what the client lacks (sync step 2, cut to fit the message limit),
    /// the server's own sync step 1 (so the client sends what the server lacks), then the room's
    /// awareness states.
    async fn answer_sync_step1(
        &self,
        room: &str,
        endpoint: &str,
        connection_id: &str,
        client_state_vector: &[u8],
    ) -> HandlerResult<()> {
        let had_epoch = self.ports.docs.ensure_epoch(room).await?;
        let state = self.read_state(room).await?;
        let document = |e: doc::DocError| HandlerError::Document {
            room: room.to_string(),
            reason: e.to_string(),
        };
        let answer = doc::answer_sync_step1(state, client_state_vector, self.sync_piece_budget())
            .map_err(document)?;
        let (mut frames, server_step1) = self.sync_frames(room, answer);
        frames.extend(self.awareness_frames(room).await?);
        self.reply(endpoint, connection_id, &frames).await?;
        if !had_epoch {
            // The live store had no trace of this room. If other connections are in it, the store
            // lost its data (failover, flush): ask each of them for what the server lacks
            // (ARCHITECTURE.md invariant 6). For a new room this finds only the caller and does nothing.
            let members = self
                .ports
                .connections
                .members(&Scope::Room(room.to_string()))
                .await?;
            if members.iter().any(|m| m.connection_id != connection_id) {
                tracing::warn!(
                    room,
                    "no live data for a room that has other connections (lost by the store, or \
                     a new room joined by several at once): asking each of them to resend"
                );
                self.publish_to_room(room, Some(connection_id), &server_step1)
                    .await?;
                let frame = transport::encode_frame(&server_step1);
                self.broadcast(&members, &frame, Some(connection_id))
                    .await?;
            }
        }
        Ok(())
    }

    /// What a direct instance sends each of its clients of a room after its relay listener
    /// missed messages (invariant 25): the room's whole state as sync step 2 (cut to fit) and
    /// the server's sync step 1, so the client gets what it missed and sends back what the
    /// server lacks (the invariant-6 path, should the store have lost data too).
    pub async fn resync_frames(&self, room: &str) -> HandlerResult<Vec<String>> {
        let state = self.read_state(room).await?;
        // An empty state vector (no clients): the answer is everything.
        const NOTHING: [u8; 1] = [0];
        let answer =
            doc::answer_sync_step1(state, &NOTHING, self.sync_piece_budget()).map_err(|e| {
                HandlerError::Document {
                    room: room.to_string(),
                    reason: e.to_string(),
                }
            })?;
        Ok(self.sync_frames(room, answer).0)
    }

    /// The frames of a sync answer: its pieces as sync step 2, then the server's sync step 1,
    /// whose message is returned too (the invariant-6 path asks other connections with it).
    fn sync_frames(&self, room: &str, answer: doc::SyncAnswer) -> (Vec<String>, Vec<u8>) {
        if let Some(why) = &answer.over_limit {
            // Sending it may still fail at the gateway, but the client keeps its own state and
            // the server keeps the document: nothing is lost.
            tracing::error!(room, error = %why, "a sync answer over the message limit");
        }
        let mut frames: Vec<String> = answer
            .pieces
            .iter()
            .map(|piece| transport::encode_frame(&ywebsocket::encode_sync_step2(piece)))
            .collect();
        let step1 = ywebsocket::encode_sync_step1(&answer.server_state_vector);
        frames.push(transport::encode_frame(&step1));
        (frames, step1)
    }

    /// The largest update that fits one sync or update message after base64.
    fn sync_piece_budget(&self) -> usize {
        max_binary_for_text(self.config.max_message_bytes) - SYNC_MESSAGE_OVERHEAD
    }

    /// Cuts a client's update too large for one message into valid pieces that each fit one.
    fn cut_to_fit(&self, room: &str, update: Vec<u8>) -> Vec<Vec<u8>> {
        let bytes = update.len();
        let (pieces, uncut) = doc::cut_or_keep_whole(update, self.sync_piece_budget());
        if let Some(e) = uncut {
            tracing::error!(room, error = %e, bytes, "cannot cut an update to fit the message limit");
        }
        pieces
    }

    /// An update from a client: append it to the log, then fan it out (ARCHITECTURE.md invariant 1).
    async fn accept_update(
        &self,
        member: &Membership,
        room: &str,
        update: Vec<u8>,
    ) -> HandlerResult<()> {
        if member.readonly {
            let connection_id = member.connection_id.as_str();
            tracing::debug!(
                connection_id,
                room,
                "dropping update from read-only connection"
            );
            if self.told_readonly.first_time(connection_id) {
                let reason = "read-only connection: its document updates are dropped";
                self.tell_denied(connection_id, &member.endpoint, reason)
                    .await;
            }
            return Ok(());
        }
        self.append_and_relay(room, update, Some(&member.connection_id))
            .await
    }

    /// A validated update with content, from a connection (`from`, which it is not relayed back
    /// to) or from a server-side writer (the HTTP API): append it, relay it to the room, move
    /// the room's activity, and compact past the thresholds.
    pub(super) async fn append_and_relay(
        &self,
        room: &str,
        update: Vec<u8>,
        from: Option<&str>,
    ) -> HandlerResult<()> {
        let relay = ywebsocket::encode_update(&update);
        let published = relay::encode_relay(RelayKind::Doc, from, &relay);
        let appended = self.ports.docs.append(room, &update, &published).await?;
        let scope = Scope::Room(room.to_string());
        let members = self
            .members_for_relay(&scope, room, appended.roster)
            .await?;
        let frame = transport::encode_frame(&relay);
        if frame.len() <= self.config.max_message_bytes {
            self.broadcast_update(&members, &frame, from).await?;
        } else {
            // Larger than one message (it came in pieces): relayed as several valid updates.
            for piece in self.cut_to_fit(room, update) {
                let frame = transport::encode_frame(&ywebsocket::encode_update(&piece));
                self.broadcast_update(&members, &frame, from).await?;
            }
        }
        self.report_update(room).await;
        if self.activity.due(room) {
            let now = crate::adapters::unix_now_ms();
            if let Err(e) = self.ports.connections.touch_room(room, now).await {
                // Informational: the update is logged and relayed either way.
                tracing::warn!(room, error = %e, "cannot record the room's activity");
            }
        }
        if appended.entries > self.config.compact_log_entries
            || appended.bytes > self.config.compact_log_bytes
        {
            if let Err(e) = Box::pin(self.compact(room)).await {
                // The update is safe in the log; compaction is retried on the next append.
                tracing::warn!(room, error = %e, "compaction failed");
            }
        }
        Ok(())
    }

    /// The room's members to relay an update to: the list this process read under the roster
    /// version the append reported, else a fresh read, kept under that version (invariant 21).
    async fn members_for_relay(
        &self,
        scope: &Scope,
        room: &str,
        roster: Option<RosterVersion>,
    ) -> HandlerResult<Vec<Membership>> {
        if let Some(members) = roster.and_then(|version| self.rosters.get(room, version)) {
            return Ok(members);
        }
        // The update is durable now; failing here would leave it unrelayed until each peer
        // reconnects, so a transient failure reading the room is retried.
        let connections = &self.ports.connections;
        let members = retry_store("room members", || connections.members(scope)).await?;
        if let Some(version) = roster {
            self.rosters.remember(room, version, &members);
        }
        Ok(members)
    }

    /// Awareness: keep what is new, store it under the connection that owns those clients, and
    /// relay it to the whole room, the sender included (the y-websocket client reconnects after
    /// ~30 s of silence, and its own echoed awareness is what a lone client hears).
    ///
    /// y-websocket clients re-send every awareness change they receive, so a message also carries
    /// other connections' clients. As in the reference server, a connection owns only the client
    /// ids it introduced, and an entry that is not newer than what the room has is dropped: a
    /// forwarded state is neither stored under the wrong connection (its removal would be
    /// broadcast when that one leaves) nor relayed again (N peers would echo it N times).
    async fn relay_awareness(
        &self,
        room: &str,
        connection_id: &str,
        states: Vec<ywebsocket::AwarenessState>,
    ) -> HandlerResult<()> {
        let known = self.ports.docs.awareness(room).await?;
        let owner_of = |client: u64| {
            known.iter().find_map(|entry| {
                entry
                    .clients
                    .iter()
                    .find(|(id, _)| *id == client)
                    .map(|(_, clock)| (entry.connection_id.as_str(), *clock))
            })
        };
        let accepted: Vec<ywebsocket::AwarenessState> = states
            .into_iter()
            .filter(|state| match owner_of(state.client) {
                Some((owner, clock)) => {
                    owner == connection_id
                        && (state.clock > clock || (state.clock == clock && state.is_removal()))
                }
                None => !state.is_removal(),
            })
            .collect();
        if accepted.is_empty() {
            tracing::trace!(connection_id, room, "awareness message carried nothing new");
            return Ok(());
        }
        let encoded = ywebsocket::encode_awareness_update(&accepted);
        let message = ywebsocket::encode_awareness(&encoded);
        self.ports
            .docs
            .put_awareness(
                room,
                AwarenessEntry {
                    connection_id: connection_id.to_string(),
                    clients: accepted.iter().map(|s| (s.client, s.clock)).collect(),
                    update: encoded,
                },
            )
            .await?;
        self.publish_to_room(room, None, &message).await?;
        let members = self
            .ports
            .connections
            .members(&Scope::Room(room.to_string()))
            .await?;
        self.broadcast(&members, &transport::encode_frame(&message), None)
            .await?;
        Ok(())
    }

    /// Publishes a y-websocket message on the room's relay channel, for the direct instances'
    /// clients (all but `from`), which no broadcast posts to (invariant 25).
    pub(super) async fn publish_to_room(
        &self,
        room: &str,
        from: Option<&str>,
        message: &[u8],
    ) -> HandlerResult<()> {
        let published = relay::encode_relay(RelayKind::Doc, from, message);
        self.ports
            .docs
            .publish(&Channel::Room(room.to_string()), &published)
            .await?;
        Ok(())
    }

    async fn awareness_frames(&self, room: &str) -> HandlerResult<Vec<String>> {
        Ok(self
            .ports
            .docs
            .awareness(room)
            .await?
            .iter()
            .map(|entry| transport::encode_frame(&ywebsocket::encode_awareness(&entry.update)))
            .collect())
    }
}
