//! One simulated editor: connects, syncs, types a fixed-size edit at its pace during the send
//! window, and applies what the others type, timing each edit from its send to its receipt.
//!
//! Every edit appends [`EDIT_LEN`] ASCII characters, so a client's clock after its edit `n`
//! (from 0) is `EDIT_LEN * (n + 1)`: the state vector of a received update says which edits of
//! which client it carries, even when a server merges several into one update.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async_with_config, MaybeTlsStream, WebSocketStream};
use ylambda_shared::doc::guard;
use ylambda_shared::protocol::ywebsocket::{encode_sync_step1, encode_sync_step2, encode_update};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ClientID, Doc, GetString, Options, ReadTxn, Text, TextRef, Transact, Update};

use super::wire::{SyncIn, Wire};

/// Characters per edit (see the module comment).
pub const EDIT_LEN: u32 = 8;
/// The shared text's name in every room's document.
pub const TEXT: &str = "bench";
/// How long a client may take to connect and get the server's sync step 2.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// The generator's own read buffer: small, so thousands of idle clients fit.
const READ_BUFFER: usize = 8 * 1024;

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// What one client does.
pub struct Plan {
    /// Position among all clients; its yrs client id is `index + 1`.
    pub index: usize,
    pub room: String,
    pub url: String,
    /// Time between its edits; `None` for an idle client.
    pub interval: Option<Duration>,
    /// When in its interval its first edit goes (spreads the clients' edits evenly).
    pub phase: Duration,
}

/// What all clients of a run share.
pub struct Run {
    pub wire: Wire,
    /// Times are microseconds since this instant.
    pub epoch: Instant,
    /// For each client, the send time of each of its edits, in order.
    pub sends: Vec<Mutex<Vec<u64>>>,
    /// Edits received by a client other than their author, over all clients.
    pub delivered: AtomicU64,
    /// Set once every client has synced: the send window's start.
    pub go: watch::Receiver<Option<Instant>>,
    pub window: Duration,
    /// Set when the run is over: clients close.
    pub finish: watch::Receiver<bool>,
    /// Limits simultaneous handshakes (a server's accept backlog is finite).
    pub connecting: Semaphore,
}

impl Run {
    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }
}

/// Progress reports to the orchestrator.
#[derive(Debug)]
pub enum Event {
    /// Connected and has the server's state (or gave up: see its outcome).
    Ready,
    /// Will send no more edits.
    DoneSending,
}

/// What a client saw.
pub struct Outcome {
    pub room: String,
    pub connect: Option<Duration>,
    pub synced: bool,
    pub sent: u64,
    /// Send-to-receipt times of the others' edits, microseconds.
    pub latency: Histogram<u64>,
    pub errors: Vec<String>,
    /// The shared text at the end.
    pub text: String,
}

pub async fn client(plan: Plan, run: Arc<Run>, events: mpsc::UnboundedSender<Event>) -> Outcome {
    let mut editor = Editor::new(&plan, run.clone());
    let socket = editor.connect(&plan).await;
    let _ = events.send(Event::Ready);
    let Some(socket) = socket else {
        let _ = events.send(Event::DoneSending);
        return editor.outcome;
    };
    editor.edit_and_listen(&plan, socket, &events).await;
    editor.finish()
}

/// Microseconds from 1 to an hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}

struct Editor {
    run: Arc<Run>,
    doc: Doc,
    text: TextRef,
    room: String,
    /// Per other client (by yrs client id): how many of its edits this one has.
    seen: HashMap<u64, u64>,
    outcome: Outcome,
}

impl Editor {
    fn new(plan: &Plan, run: Arc<Run>) -> Editor {
        let doc = Doc::with_options(Options {
            client_id: ClientID::new(plan.index as u64 + 1),
            ..Options::default()
        });
        let text = doc.get_or_insert_text(TEXT);
        let latency = new_histogram();
        Editor {
            run,
            doc,
            text,
            room: plan.room.clone(),
            seen: HashMap::new(),
            outcome: Outcome {
                room: plan.room.clone(),
                connect: None,
                synced: false,
                sent: 0,
                latency,
                errors: Vec::new(),
                text: String::new(),
            },
        }
    }

    /// Connects and syncs; `None` (with the error recorded) if either fails.
    async fn connect(&mut self, plan: &Plan) -> Option<Socket> {
        let started = Instant::now();
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        let connected = {
            let _permit = self.run.connecting.acquire().await.ok()?;
            timeout(
                SYNC_TIMEOUT,
                connect_async_with_config(plan.url.as_str(), Some(config), true),
            )
            .await
        };
        let mut socket = match connected {
            Ok(Ok((socket, _))) => socket,
            Ok(Err(error)) => return self.failed(format!("connect: {error}")),
            Err(_) => return self.failed("connect: timed out".into()),
        };
        self.outcome.connect = Some(started.elapsed());
        let wire = self.run.wire;
        let step1 = encode_sync_step1(&self.doc.transact().state_vector().encode_v1());
        let mut opening = wire.opening(&self.room);
        opening.push(wire.frame(&self.room, &step1));
        for frame in opening {
            if let Err(error) = socket.send(frame).await {
                return self.failed(format!("send: {error}"));
            }
        }
        let synced = timeout(SYNC_TIMEOUT, async {
            while let Some(frame) = socket.next().await {
                let frame = frame.map_err(|e| format!("receive: {e}"))?;
                if self.receive(&mut socket, frame).await? {
                    return Ok(());
                }
            }
            Err("closed before sync".to_string())
        })
        .await;
        match synced {
            Ok(Ok(())) => {
                self.outcome.synced = true;
                Some(socket)
            }
            Ok(Err(error)) => self.failed(error),
            Err(_) => self.failed("sync: timed out".into()),
        }
    }

    fn failed(&mut self, error: String) -> Option<Socket> {
        self.outcome.errors.push(error);
        None
    }

    async fn edit_and_listen(
        &mut self,
        plan: &Plan,
        mut socket: Socket,
        events: &mpsc::UnboundedSender<Event>,
    ) {
        let mut go = self.run.go.clone();
        let mut finish = self.run.finish.clone();
        let start = loop {
            if let Some(start) = *go.borrow_and_update() {
                break start;
            }
            tokio::select! {
                changed = go.changed() => if changed.is_err() { return },
                frame = socket.next() => if !self.on_frame(&mut socket, frame).await { return },
            }
        };
        let end = start + self.run.window;
        let mut next = plan.interval.map(|_| start + plan.phase);
        if next.is_none() {
            let _ = events.send(Event::DoneSending);
        }
        loop {
            if *finish.borrow_and_update() {
                break;
            }
            let due = next.filter(|at| *at < end);
            tokio::select! {
                _ = sleep_until(due.unwrap_or(end)), if due.is_some() => {
                    if let Err(error) = self.send_edit(&mut socket).await {
                        self.outcome.errors.push(error);
                        break;
                    }
                    next = next.zip(plan.interval).map(|(at, every)| at + every);
                    if next.is_none_or(|at| at >= end) {
                        let _ = events.send(Event::DoneSending);
                    }
                }
                frame = socket.next() => if !self.on_frame(&mut socket, frame).await { break },
                changed = finish.changed() => if changed.is_err() { break },
            }
        }
        if next.is_some_and(|at| at < end) {
            // Left early (an error): the orchestrator must not wait for this one's edits.
            let _ = events.send(Event::DoneSending);
        }
        let _ = timeout(Duration::from_secs(1), socket.close(None)).await;
    }

    /// Handles one item of the stream; false when the connection is over.
    async fn on_frame(
        &mut self,
        socket: &mut Socket,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> bool {
        match frame {
            Some(Ok(frame)) => match self.receive(socket, frame).await {
                Ok(_) => true,
                Err(error) => {
                    self.outcome.errors.push(error);
                    true
                }
            },
            Some(Err(error)) => {
                self.outcome.errors.push(format!("receive: {error}"));
                false
            }
            None => {
                if !*self.run.finish.borrow() {
                    self.outcome.errors.push("closed by the server".into());
                }
                false
            }
        }
    }

    /// Acts on one frame; true if it held the server's sync step 2.
    async fn receive(&mut self, socket: &mut Socket, frame: Message) -> Result<bool, String> {
        if let Message::Close(close) = &frame {
            return Err(format!("closed by the server: {close:?}"));
        }
        let now = self.run.micros(Instant::now());
        let mut got_step2 = false;
        let messages = self
            .run
            .wire
            .sync_messages(&frame)
            .map_err(|e| e.to_string())?;
        for message in messages {
            match message {
                SyncIn::Step1(sv) => {
                    let diff = self.doc.transact().encode_diff_v1(&sv);
                    let reply = self.run.wire.frame(&self.room, &encode_sync_step2(&diff));
                    socket.send(reply).await.map_err(|e| format!("send: {e}"))?;
                }
                SyncIn::Step2(update) => {
                    got_step2 = true;
                    self.apply(&update, now)?;
                }
                SyncIn::Update(update) => self.apply(&update, now)?,
            }
        }
        Ok(got_step2)
    }

    /// Applies an update, then counts and times the others' edits it made visible: the
    /// document's state vector says how many of each client's edits it now holds (however the
    /// server merged or ordered them).
    fn apply(&mut self, bytes: &[u8], now: u64) -> Result<(), String> {
        let update = guard("decode update", || Update::decode_v1(bytes))
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("undecodable update: {e}"))?;
        {
            let mut txn = self.doc.transact_mut();
            guard("apply update", || txn.apply_update(update))
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("update does not apply: {e}"))?;
        }
        let own = self.doc.client_id().get();
        let state = self.doc.transact().state_vector();
        for (client, &clock) in state.iter() {
            let client = client.get();
            if client == own {
                continue;
            }
            let edits = u64::from(clock / EDIT_LEN);
            let seen = self.seen.entry(client).or_insert(0);
            if edits <= *seen {
                continue;
            }
            let sends = usize::try_from(client.wrapping_sub(1))
                .ok()
                .and_then(|i| self.run.sends.get(i));
            if let Some(Ok(sends)) = sends.map(|s| s.lock()) {
                for edit in *seen..edits {
                    if let Some(sent) = usize::try_from(edit).ok().and_then(|e| sends.get(e)) {
                        self.outcome
                            .latency
                            .saturating_record(now.saturating_sub(*sent).max(1));
                    }
                }
            }
            self.run
                .delivered
                .fetch_add(edits - *seen, Ordering::Relaxed);
            *seen = edits;
        }
        Ok(())
    }

    async fn send_edit(&mut self, socket: &mut Socket) -> Result<(), String> {
        let index = usize::try_from(self.doc.client_id().get() - 1).unwrap_or(usize::MAX);
        let update = {
            let mut txn = self.doc.transact_mut();
            let at = self.text.len(&txn);
            let edit = format!("{:>4}{:>4}", index % 10_000, self.outcome.sent % 10_000);
            self.text.insert(&mut txn, at, &edit);
            txn.encode_update_v1()
        };
        let frame = self.run.wire.frame(&self.room, &encode_update(&update));
        if let Some(Ok(mut sends)) = self.run.sends.get(index).map(|s| s.lock()) {
            sends.push(self.run.micros(Instant::now()));
        }
        self.outcome.sent += 1;
        socket.send(frame).await.map_err(|e| format!("send: {e}"))
    }

    fn finish(mut self) -> Outcome {
        self.outcome.text = self.text.get_string(&self.doc.transact());
        self.outcome
    }
}
