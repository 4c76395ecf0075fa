use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ylambda_shared::adapters::{MemoryConnectionStore, MemoryDocStore};
use ylambda_shared::config::Config;
use ylambda_shared::doc::validate_update;
use ylambda_shared::handler::{Handler, HandlerError, Ports};
use ylambda_shared::ports::{
    Fanout, FanoutError, PutOutcome, Snapshot, SnapshotStore, StoreResult, StoredSnapshot,
};
use ylambda_shared::protocol::pieces::split_into_pieces;
use ylambda_shared::protocol::transport::{decode_frame, encode_frame};
use ylambda_shared::protocol::ywebsocket::{decode_messages, Incoming};
use ylambda_shared::protocol::{is_signaling_frame, signaling};

/// Separates the operations of an input.
pub const OP_SEPARATOR: &[u8] = b"\n#\n";
const ENDPOINT: &str = "https://fuzz.invalid/local";
const ROOM: &str = "r";

/// Operations separated by [`OP_SEPARATOR`], each `[op byte] [payload]`, run through one
/// `Handler` over the embedded connection and doc stores (a fresh one per input). Connections
/// `c0`, `c1` (room `r`), `c2` (room `r`, `?readonly=1`) and `c3` (signaling, no room) connect
/// first. The op byte's low two bits pick the connection; bits 2-3 what it does:
/// 0. send the payload (made UTF-8) as a text frame: signaling JSON, a piece, base64...;
/// 1. send the payload as a binary y-websocket message (base64-encoded, as the client adapter
///    does);
/// 2. the same, cut into pieces of 64-byte frames (`split_into_pieces`), sent in order;
/// 3. disconnect, then connect again.
///
/// A connection the handler closed is disconnected (as API Gateway would) and connects again
/// before its next operation; every connection disconnects at the end (the last one out
/// compacts the room). Limits are small so that pieces, splitting and compaction all happen.
///
/// Properties: no error but `BadRequest` or `PolicyViolation` (a backend or "stored document
/// unreadable" error means bad data got in); every frame the server posts is signaling JSON, or
/// base64 y-websocket that decodes, whose updates validate.
pub fn on_message(data: &[u8]) {
    runtime().block_on(run(data));
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        // Paused time: the handler's back-offs (a message from a connection that joined no room
        // waits for the connection index) take no real time.
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a tokio runtime")
    })
}

fn config() -> Config {
    Config {
        max_message_bytes: 1024,
        max_frame_bytes: 1024,
        compact_log_entries: 3,
        compact_log_bytes: 2048,
        max_assembled_bytes: 4096,
        max_pieces: 16,
        max_open_messages: 2,
        ..Config::default()
    }
}

const CONNECTIONS: [(&str, Option<&str>); 4] = [
    ("c0", Some("0")),
    ("c1", Some("0")),
    ("c2", Some("1")),
    ("c3", None),
];

async fn run(data: &[u8]) {
    let fanout = Arc::new(CheckingFanout::default());
    let handler = Handler::new(
        Ports {
            connections: Arc::new(MemoryConnectionStore::new()),
            docs: Arc::new(MemoryDocStore::new()),
            snapshots: Arc::new(MemorySnapshots::default()),
            fanout: fanout.clone(),
        },
        config(),
    );
    for index in 0..CONNECTIONS.len() {
        connect(&handler, index).await;
    }
    for op in split(data, OP_SEPARATOR) {
        let Some((&code, payload)) = op.split_first() else {
            continue;
        };
        let index = usize::from(code & 3);
        let id = CONNECTIONS[index].0;
        if fanout.take_closed(id) {
            disconnect(&handler, id).await;
            connect(&handler, index).await;
        }
        match (code >> 2) & 3 {
            0 => send(&handler, id, &String::from_utf8_lossy(payload)).await,
            1 => send(&handler, id, &encode_frame(payload)).await,
            2 => {
                let text = encode_frame(payload);
                for frame in split_into_pieces(&text, "m", 64).unwrap_or_default() {
                    send(&handler, id, &frame).await;
                }
            }
            _ => {
                disconnect(&handler, id).await;
                connect(&handler, index).await;
            }
        }
    }
    for (id, _) in CONNECTIONS {
        disconnect(&handler, id).await;
    }
}

async fn connect(handler: &Handler, index: usize) {
    let (id, readonly) = CONNECTIONS[index];
    let query: HashMap<String, String> = match readonly {
        Some(readonly) => HashMap::from([
            ("room".to_string(), ROOM.to_string()),
            ("readonly".to_string(), readonly.to_string()),
        ]),
        None => HashMap::new(),
    };
    handler
        .on_connect(id, ENDPOINT, &query)
        .await
        .unwrap_or_else(|e| panic!("$connect of {id}: {e}"));
}

async fn disconnect(handler: &Handler, id: &str) {
    if let Err(e) = handler.on_disconnect(id).await {
        panic!("$disconnect of {id}: {e}");
    }
}

async fn send(handler: &Handler, id: &str, body: &str) {
    match handler.on_message(id, ENDPOINT, body).await {
        // The handler closes the connection for either: bad input, or a limit it broke (the
        // message rate counts every frame, and an input can hold more than 1,000 of them).
        Ok(()) | Err(HandlerError::BadRequest(_) | HandlerError::PolicyViolation(_)) => {}
        Err(e) => panic!("$default from {id} failed with more than a bad request: {e}"),
    }
}

fn split<'a>(data: &'a [u8], separator: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let current = rest?;
        match current
            .windows(separator.len())
            .position(|window| window == separator)
        {
            Some(at) => {
                rest = Some(&current[at + separator.len()..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Checks every frame the server posts; remembers the connections it closes.
#[derive(Default)]
struct CheckingFanout {
    closed: Mutex<Vec<String>>,
}

impl CheckingFanout {
    /// Whether `id` was closed since it last connected (and forgets it).
    fn take_closed(&self, id: &str) -> bool {
        let mut closed = self.closed.lock().expect("fanout lock");
        let was = closed.iter().any(|c| c == id);
        closed.retain(|c| c != id);
        was
    }
}

#[async_trait]
impl Fanout for CheckingFanout {
    async fn post(&self, _endpoint: &str, id: &str, text: &str) -> Result<(), FanoutError> {
        if is_signaling_frame(text) {
            if let Err(e) = signaling::decode(text) {
                panic!("posted signaling to {id} that does not decode ({e}): {text:?}");
            }
            return Ok(());
        }
        let bytes = decode_frame(text)
            .unwrap_or_else(|e| panic!("posted a frame to {id} that is not base64 ({e})"));
        let messages = decode_messages(&bytes)
            .unwrap_or_else(|e| panic!("posted a y-websocket frame to {id} that is bad ({e})"));
        for message in messages {
            if let Incoming::SyncStep2(update) | Incoming::Update(update) = message {
                if let Err(e) = validate_update(&update) {
                    panic!("posted an update to {id} that does not validate ({e})");
                }
            }
        }
        Ok(())
    }

    async fn close(&self, _endpoint: &str, id: &str) -> Result<(), FanoutError> {
        self.closed
            .lock()
            .expect("fanout lock")
            .push(id.to_string());
        Ok(())
    }
}

/// Snapshots in memory, with the port's compare-and-swap (the embedded adapter writes files,
/// which would leave a trace of every input).
#[derive(Default)]
struct MemorySnapshots {
    rooms: Mutex<HashMap<String, StoredSnapshot>>,
}

#[async_trait]
impl SnapshotStore for MemorySnapshots {
    async fn get(&self, room: &str) -> StoreResult<Option<StoredSnapshot>> {
        Ok(self.rooms.lock().expect("snapshot lock").get(room).cloned())
    }

    async fn put(
        &self,
        room: &str,
        snapshot: &Snapshot,
        expected: Option<&str>,
    ) -> StoreResult<PutOutcome> {
        let mut rooms = self.rooms.lock().expect("snapshot lock");
        let current = rooms.get(room).map(|s| s.version.clone());
        if current.as_deref() != expected {
            return Ok(PutOutcome::Conflict);
        }
        let version = current
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(1, |v| v + 1)
            .to_string();
        rooms.insert(
            room.to_string(),
            StoredSnapshot {
                snapshot: snapshot.clone(),
                version: version.clone(),
            },
        );
        Ok(PutOutcome::Written { version })
    }
}
