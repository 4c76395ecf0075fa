//! `ylambda dev`'s gateway: a local stand-in for an API Gateway WebSocket API and its Lambdas.
//! Every route goes through an [`Invoker`], with events shaped like AWS's, and API Gateway's
//! limits are enforced. The invoker is either [`InProcess`] (the Lambdas' own entry point,
//! [`ylambda_shared::lambda::handle_websocket_event`], called directly) or any other
//! [`Invoker`] the caller composes in (`ylambda dev --lambdas` passes the Lambda binaries as
//! child processes, `crate::lambdas::Lambdas`). The gateway knows nothing of processes.
mod clock;
pub mod connections;
pub mod events;
pub(crate) mod ids;
mod in_process;
mod management;
mod outgoing;
pub(crate) mod server;
mod static_files;
mod throttle;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use ylambda_shared::adapters::{FsSnapshotStore, MemoryConnectionStore, MemoryDocStore};
use ylambda_shared::api::Api;
use ylambda_shared::backends::Stores;
use ylambda_shared::config::Config;
use ylambda_shared::handler::Handler;
use ylambda_shared::ports::StoreError;

use connections::{GatewayFanout, Registry};
pub use in_process::InProcess;

use crate::invoker::{Invoker, ShutdownReport};

/// How long shutdown waits for connections to finish their close and `$disconnect`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot use the data directory: {0}")]
    DataDir(#[from] StoreError),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// State shared by every request and connection task.
pub(crate) struct Shared {
    pub config: Config,
    pub invoker: Arc<dyn Invoker>,
    pub registry: Arc<Registry>,
    /// This server's API id (`requestContext.apiId`).
    pub api_id: String,
    pub local_port: u16,
    /// Every room a connection was accepted into since start: compacted on shutdown.
    pub rooms: Mutex<BTreeSet<String>>,
    /// Turns true when shutdown begins.
    pub shutdown: watch::Receiver<bool>,
    /// API Gateway's route throttling.
    pub throttles: throttle::RouteThrottles,
    /// The HTTP API (`/api/...`), when this gateway serves it.
    pub api: Option<Arc<Api>>,
    /// The directory served at `/examples/`, if any.
    pub examples_dir: Option<std::path::PathBuf>,
}

/// Serves the gateway on `listener` until `shutdown` completes, then closes every connection with
/// 1001, runs their `$disconnect`, compacts every room seen, and returns what it did. Routes run
/// in-process on the embedded adapters; see [`Gateway`] for the other ways.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ShutdownReport, GatewayError> {
    Gateway::new(config, listener)?.serve(shutdown).await
}

/// A gateway bound to a listener, not yet serving.
pub struct Gateway {
    shared: Arc<Shared>,
    listener: TcpListener,
    stop: watch::Sender<bool>,
}

impl Gateway {
    /// Routes run in this process on the embedded adapters: connections and doc logs in
    /// memory, snapshots as files under `config.data_dir`; shutdown compacts every room seen.
    pub fn new(config: Config, listener: TcpListener) -> Result<Gateway, GatewayError> {
        let stores = Stores {
            connections: Arc::new(MemoryConnectionStore::new()),
            docs: Arc::new(MemoryDocStore::new()),
            snapshots: Arc::new(FsSnapshotStore::new(&config.data_dir)?),
        };
        Gateway::with_stores(config, listener, stores)
    }

    /// Routes run in this process on `stores` (see `ylambda_shared::backends::stores`: embedded,
    /// or DynamoDB + Redis + S3); posts go straight to this gateway's connections.
    pub fn with_stores(
        config: Config,
        listener: TcpListener,
        stores: Stores,
    ) -> Result<Gateway, GatewayError> {
        let registry = Arc::new(Registry::new());
        let fanout = Arc::new(GatewayFanout::new(
            registry.clone(),
            config.max_message_bytes,
        ));
        let handler = Arc::new(Handler::new(stores.with_fanout(fanout), config.clone()));
        let api = Arc::new(Api::new(handler.clone()));
        let invoker = Arc::new(InProcess::new(handler));
        let mut gateway = Gateway::build(config, listener, registry, invoker)?;
        gateway.set_api(api);
        Ok(gateway)
    }

    /// Serves the HTTP API in this process on `stores`, for a gateway whose routes run through
    /// an invoker (the Lambda binaries): the API reads the backend they use and posts straight
    /// to this gateway's connections.
    pub fn with_api_on(mut self, stores: Stores) -> Gateway {
        let fanout = Arc::new(GatewayFanout::new(
            self.shared.registry.clone(),
            self.shared.config.max_message_bytes,
        ));
        let handler = Handler::new(stores.with_fanout(fanout), self.shared.config.clone());
        self.set_api(Arc::new(Api::new(Arc::new(handler))));
        self
    }

    /// Serves the files under `dir` at `/examples/` (the example pages, on the API's origin).
    pub fn with_examples(mut self, dir: std::path::PathBuf) -> Gateway {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.examples_dir = Some(dir);
        }
        self
    }

    fn set_api(&mut self, api: Arc<Api>) {
        // Not serving yet: this is the only reference.
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.api = Some(api);
        }
    }

    /// Routes run through `invoker`; posts reach connections through the `@connections` API.
    pub fn with_invoker(
        config: Config,
        listener: TcpListener,
        invoker: Arc<dyn Invoker>,
    ) -> Result<Gateway, GatewayError> {
        Gateway::build(config, listener, Arc::new(Registry::new()), invoker)
    }

    fn build(
        config: Config,
        listener: TcpListener,
        registry: Arc<Registry>,
        invoker: Arc<dyn Invoker>,
    ) -> Result<Gateway, GatewayError> {
        let local = listener.local_addr()?;
        let (stop, stopping) = watch::channel(false);
        let shared = Arc::new(Shared {
            invoker,
            throttles: throttle::RouteThrottles::new(&config.throttle),
            config,
            registry,
            api_id: ids::api_id(),
            local_port: local.port(),
            rooms: Mutex::new(BTreeSet::new()),
            shutdown: stopping,
            api: None,
            examples_dir: None,
        });
        Ok(Gateway {
            shared,
            listener,
            stop,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A read-only view of the open connections, usable while the gateway serves.
    pub fn connections(&self) -> Connections {
        Connections(self.shared.registry.clone())
    }

    /// Serves until `shutdown` completes; see [`serve`].
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<ShutdownReport, GatewayError> {
        let Gateway {
            shared,
            listener,
            stop,
        } = self;
        let config = &shared.config;
        tracing::info!(
            listen = %listener.local_addr()?,
            data_dir = %config.data_dir.display(),
            max_message_bytes = config.max_message_bytes,
            idle_timeout_secs = config.idle_timeout.as_secs(),
            max_connection_secs = config.max_connection.as_secs(),
            "gateway ready"
        );
        let app = server::router(shared.clone());
        let signal = async move {
            shutdown.await;
            // Connection tasks watch this and start their 1001 close.
            stop.send_replace(true);
        };
        // Returns once the listener is closed and in-flight HTTP requests are done; upgraded
        // WebSockets are not HTTP requests any more, they are drained below.
        // Yjs traffic is many small frames: without TCP_NODELAY, Nagle's algorithm holds each
        // small write back until the previous one is acknowledged (a ~15 ms floor at light load,
        // see BENCHMARKS.md).
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::warn!(%error, "could not set TCP_NODELAY on an accepted connection");
            }
        });
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await;
        // Drained even if serving failed: Lambda processes must not outlive us.
        let report = drain(&shared).await;
        served?;
        Ok(report)
    }
}

/// The URL of the `@connections` API a gateway listening on `listen` serves, as a process on
/// this machine reaches it (what an invoker's Lambdas post to: `YLAMBDA_MANAGEMENT_ENDPOINT`).
pub fn management_endpoint(listen: SocketAddr) -> String {
    format!("http://{}", reachable(listen))
}

/// The address clients on this machine reach a listener on: a wildcard bind (`0.0.0.0`, `::`)
/// is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// One open connection, as [`Connections::list`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionSummary {
    pub connection_id: String,
    pub stage: String,
    pub room: Option<String>,
}

/// A view of the gateway's open connections (tests use it to learn connection ids, which API
/// Gateway never tells a client).
#[derive(Clone)]
pub struct Connections(Arc<Registry>);

impl Connections {
    /// Open connections, closing ones excluded.
    pub fn list(&self) -> Vec<ConnectionSummary> {
        self.0
            .all()
            .into_iter()
            .filter(|c| !c.is_closing())
            .map(|c| ConnectionSummary {
                connection_id: c.meta.connection_id.clone(),
                stage: c.meta.stage.clone(),
                room: c.meta.room.clone(),
            })
            .collect()
    }

    /// Whether the registry still holds this id (open, or closing with `$disconnect` pending).
    pub fn contains(&self, connection_id: &str) -> bool {
        self.0.all().iter().any(|c| c.id() == connection_id)
    }
}

async fn drain(shared: &Shared) -> ShutdownReport {
    let mut report = ShutdownReport {
        connections_closed: shared.registry.len(),
        ..ShutdownReport::default()
    };
    tracing::info!(
        connections = report.connections_closed,
        "shutting down: stopped accepting, closing connections with 1001"
    );
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    if !shared.registry.wait_empty(deadline).await {
        report.connections_abandoned = shared.registry.len();
        tracing::warn!(
            remaining = report.connections_abandoned,
            "connections still open after the shutdown grace period; their $disconnect may not run"
        );
    }

    let rooms: Vec<String> = shared
        .rooms
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default();
    shared.invoker.shutdown(rooms, &mut report).await;
    tracing::info!(
        connections_closed = report.connections_closed,
        rooms_compacted = report.rooms_compacted,
        rooms_failed = report.rooms_failed,
        "shutdown complete"
    );
    report
}
