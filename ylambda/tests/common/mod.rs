//! Test harness: an in-process gateway on 127.0.0.1:0, a real WebSocket client and a real HTTP
//! client. Waits are on conditions with deadlines, never sleeps.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use ylambda::{Connections, Gateway, GatewayError, ShutdownReport};
use ylambda_shared::config::Config;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Generous upper bound for anything that should happen "soon".
pub const SOON: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub connections: Connections,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<ShutdownReport, GatewayError>>>,
    pub data_dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a gateway with the default config, adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            data_dir: data_dir.path().to_path_buf(),
            ..Config::default()
        };
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let gateway = Gateway::new(config, listener).expect("gateway");
        Self::serve(gateway, data_dir)
    }

    /// Serves an already built gateway (one running Lambdas, say).
    pub fn serve(gateway: Gateway, data_dir: tempfile::TempDir) -> TestServer {
        let addr = gateway.local_addr().expect("local addr");
        let connections = gateway.connections();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            connections,
            stop: Some(stop),
            task: Some(task),
            data_dir,
        }
    }

    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("ws://{}{}", self.addr, path_and_query)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Connects and returns the socket with the id the gateway gave it (found through the
    /// connection's unique room, since API Gateway never tells a client its id).
    pub async fn connect(&self, room: &str) -> (Ws, String) {
        self.connect_at("/", room).await
    }

    pub async fn connect_at(&self, path: &str, room: &str) -> (Ws, String) {
        let url = self.ws_url(&format!("{path}?room={room}"));
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connect");
        let id = self.connection_id_of(room).await;
        (ws, id)
    }

    pub async fn connection_id_of(&self, room: &str) -> String {
        let connections = self.connections.clone();
        let room = room.to_string();
        wait_for("connection registered", || {
            let found = connections
                .list()
                .into_iter()
                .find(|c| c.room.as_deref() == Some(room.as_str()))
                .map(|c| c.connection_id);
            async move { found }
        })
        .await
    }

    /// Waits until the gateway has forgotten a connection (its `$disconnect` ran).
    pub async fn wait_gone(&self, connection_id: &str) {
        let connections = self.connections.clone();
        wait_for("connection unregistered", || {
            let gone = !connections.contains(connection_id);
            async move { gone.then_some(()) }
        })
        .await
    }

    /// Triggers shutdown and returns the gateway's report.
    pub async fn shutdown(mut self) -> ShutdownReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("server task");
        timeout(Duration::from_secs(30), task)
            .await
            .expect("shutdown finishes")
            .expect("server task")
            .expect("serve result")
    }
}

/// Polls `check` until it yields a value or [`SOON`] passes.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + SOON;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        // A poll interval, not synchronisation: the condition is re-checked until the deadline.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next data frame (text or binary), skipping control frames. Panics on close or timeout.
pub async fn next_data(ws: &mut Ws) -> Message {
    let deadline = Instant::now() + SOON;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("socket ended")
            .expect("read error");
        match msg {
            Message::Text(_) | Message::Binary(_) => return msg,
            Message::Close(frame) => panic!("closed while waiting for data: {frame:?}"),
            _ => {}
        }
    }
}

/// Reads until the server's close frame arrives and returns it (`None` if the stream ended
/// without one). Data frames on the way are skipped.
pub async fn wait_close_within(ws: &mut Ws, within: Duration) -> Option<CloseFrame> {
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("timed out waiting for the server to close")
        {
            None | Some(Err(_)) => return None,
            Some(Ok(Message::Close(frame))) => {
                // Keep polling so tungstenite flushes its close reply, as a browser would at
                // once; the server otherwise waits out its close-handshake grace period.
                while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, ws.next()).await {}
                return frame;
            }
            Some(Ok(_)) => {}
        }
    }
}

pub async fn wait_close(ws: &mut Ws) -> Option<CloseFrame> {
    wait_close_within(ws, SOON).await
}

pub async fn close_code(ws: &mut Ws) -> u16 {
    u16::from(wait_close(ws).await.expect("a close frame").code)
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
}

/// A room name no other test uses.
pub fn room(prefix: &str) -> String {
    ylambda_shared::conformance::unique(prefix)
}

/// `=` in connection ids must be URL-encoded in paths, as the AWS SDK does.
pub fn encode_id(id: &str) -> String {
    id.replace('=', "%3D")
}

// ---------------------------------------------------------------------------------------------
// The `ylambda` binary as a child process

/// This crate's `ylambda` binary with the variables tests choose themselves cleared, logs at
/// `info`, stdout and stderr piped, killed if the test drops it.
pub fn ylambda_command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ylambda"));
    for var in [
        "YLAMBDA_LISTEN",
        "YLAMBDA_DATA_DIR",
        "YLAMBDA_MAX_MESSAGE_BYTES",
        "YLAMBDA_IDLE_TIMEOUT_SECS",
        "YLAMBDA_MAX_CONNECTION_SECS",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Reads `ylambda dev`'s first stdout line (`ylambda dev listening on ws://ADDR`) and returns
/// the URL. The reader stays usable for what follows (there should be nothing).
pub async fn listening_url<R: tokio::io::AsyncBufRead + Unpin>(stdout: &mut R) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    timeout(SOON, stdout.read_line(&mut line))
        .await
        .expect("listening line in time")
        .expect("read stdout");
    line.trim_end()
        .strip_prefix("ylambda dev listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string()
}

/// Sends SIGTERM (what `docker stop` and CI runners send) to a child process.
#[cfg(unix)]
pub fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success(), "kill -TERM {pid}");
}
