//! `ylambda dev`'s gateway: a local stand-in for an API Gateway WebSocket API and its Lambdas.
//! Every route goes through [`ylambda_shared::lambda::handle_websocket_event`], the Lambdas' own
//! entry point, with events shaped like AWS's, and API Gateway's limits are enforced.
mod clock;
pub mod connections;
pub mod events;
mod ids;
mod management;
mod server;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use ylambda_shared::adapters::{FsSnapshotStore, MemoryConnectionStore, MemoryDocStore};
use ylambda_shared::config::Config;
use ylambda_shared::handler::{Handler, Ports};
use ylambda_shared::ports::StoreError;

use connections::{GatewayFanout, Registry};

/// How long shutdown waits for connections to finish their close and `$disconnect`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot use the data directory: {0}")]
    DataDir(#[from] StoreError),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// What a shutdown did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections open when shutdown began (each closed with 1001 and given its `$disconnect`).
    pub connections_closed: usize,
    /// Connections still open when the grace period ran out.
    pub connections_abandoned: usize,
    /// Rooms compacted successfully / that failed to compact.
    pub rooms_compacted: usize,
    pub rooms_failed: usize,
}

/// State shared by every request and connection task.
pub(crate) struct Shared {
    pub config: Config,
    pub handler: Handler,
    pub registry: Arc<Registry>,
    /// This server's API id (`requestContext.apiId`).
    pub api_id: String,
    pub local_port: u16,
    /// Every room a connection was accepted into since start: compacted on shutdown.
    pub rooms: Mutex<BTreeSet<String>>,
    /// Turns true when shutdown begins.
    pub shutdown: watch::Receiver<bool>,
}

/// Serves the gateway on `listener` until `shutdown` completes, then closes every connection with
/// 1001, runs their `$disconnect`, compacts every room seen, and returns what it did.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ShutdownReport, GatewayError> {
    Gateway::new(config, listener)?.serve(shutdown).await
}

/// A gateway bound to a listener, not yet serving. The embedded adapters back its handler:
/// connections and doc logs in memory, snapshots as files under `config.data_dir`.
pub struct Gateway {
    shared: Arc<Shared>,
    listener: TcpListener,
    stop: watch::Sender<bool>,
}

impl Gateway {
    pub fn new(config: Config, listener: TcpListener) -> Result<Gateway, GatewayError> {
        let local = listener.local_addr()?;
        let registry = Arc::new(Registry::new());
        let ports = Ports {
            connections: Arc::new(MemoryConnectionStore::new()),
            docs: Arc::new(MemoryDocStore::new()),
            snapshots: Arc::new(FsSnapshotStore::new(&config.data_dir)?),
            fanout: Arc::new(GatewayFanout::new(
                registry.clone(),
                config.max_message_bytes,
            )),
        };
        let (stop, stopping) = watch::channel(false);
        let shared = Arc::new(Shared {
            handler: Handler::new(ports, config.clone()),
            config,
            registry,
            api_id: ids::api_id(),
            local_port: local.port(),
            rooms: Mutex::new(BTreeSet::new()),
            shutdown: stopping,
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
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await?;
        Ok(drain(&shared).await)
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
    for room in rooms {
        match shared.handler.compact(&room).await {
            Ok(outcome) => {
                report.rooms_compacted += 1;
                tracing::info!(room, ?outcome, "compacted on shutdown");
            }
            Err(error) => {
                report.rooms_failed += 1;
                tracing::warn!(room, %error, "compaction on shutdown failed");
            }
        }
    }
    tracing::info!(
        connections_closed = report.connections_closed,
        rooms_compacted = report.rooms_compacted,
        rooms_failed = report.rooms_failed,
        "shutdown complete"
    );
    report
}
