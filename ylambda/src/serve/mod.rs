//! `ylambda serve`: the direct mode. A long-lived WebSocket server for stock y-websocket clients
//! (binary frames, the room in the URL path, as `@y/websocket-server` takes them) and y-webrtc
//! signaling on the same port, on the same handler core and backends as the Lambdas. Instances
//! share rooms through the doc store's relay channels (Redis pub/sub; in memory on the embedded
//! backend), and API Gateway clients of a mixed room are posted to as a Lambda would
//! (ARCHITECTURE.md invariant 25). TLS is the load balancer's.
mod delivery;
mod fanout;
mod http;
mod local_rooms;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use ylambda_shared::backends::{self, DirectBackend};
use ylambda_shared::config::{Backend, Config};
use ylambda_shared::handler::{Handler, Ports};
use ylambda_shared::ports::{Channel, RelayListener, DIRECT_ENDPOINT_PREFIX};

use crate::gateway::connections::Registry;
use crate::invoker::ShutdownReport;
use fanout::DirectFanout;
use local_rooms::{LocalRooms, ObservedConnections};

/// How long a drain waits for closed connections' departures before it compacts.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// What every request and connection task shares.
pub(crate) struct ServeState {
    handler: Arc<Handler>,
    registry: Arc<Registry>,
    local: Arc<LocalRooms>,
    listener: Arc<dyn RelayListener>,
    /// `direct:{instance}`: the endpoint of this instance's memberships.
    endpoint: String,
    config: Config,
    /// Set at SIGTERM: `/readyz` says 503 and upgrades are refused.
    draining: AtomicBool,
    /// Connection tasks watch it to close with 1001.
    shutdown: watch::Receiver<bool>,
}

impl ServeState {
    fn ready(&self) -> bool {
        !self.draining.load(Ordering::Acquire) && self.listener.connected()
    }
}

/// A direct server bound to a listener, not yet serving.
pub struct DirectServer {
    state: Arc<ServeState>,
    tcp: TcpListener,
    stop: watch::Sender<bool>,
}

/// A view of a serving instance, for tests and logs.
#[derive(Clone)]
pub struct ServeHandle(Arc<ServeState>);

impl ServeHandle {
    /// Open connections.
    pub fn connections(&self) -> usize {
        self.0.registry.len()
    }

    /// Channels this instance listens to, and connections it tracks on them: both zero once
    /// every client left (idle rooms are unloaded).
    pub fn channels_and_tracked_connections(&self) -> (usize, usize) {
        self.0.local.size()
    }

    /// This instance's endpoint, as its memberships record it.
    pub fn endpoint(&self) -> &str {
        &self.0.endpoint
    }
}

impl DirectServer {
    /// An instance on `backend` (see `ylambda_shared::backends::direct`). On the aws backend,
    /// API Gateway connections of mixed rooms are reached through the management API.
    pub async fn new(
        config: Config,
        tcp: TcpListener,
        backend: DirectBackend,
    ) -> Result<DirectServer, ServeError> {
        let DirectBackend {
            stores,
            listener,
            events,
        } = backend;
        let endpoint = format!("{DIRECT_ENDPOINT_PREFIX}{:016x}", rand::random::<u64>());
        let registry = Arc::new(Registry::new());
        let local = Arc::new(LocalRooms::new(listener.clone()));
        let management = match config.backend {
            Backend::Aws => Some(backends::lambda_fanout(&config).await),
            Backend::Embedded => None,
        };
        let ports = Ports {
            connections: Arc::new(ObservedConnections::new(
                stores.connections,
                local.clone(),
                endpoint.clone(),
            )),
            docs: stores.docs,
            snapshots: stores.snapshots,
            fanout: Arc::new(DirectFanout::new(
                endpoint.clone(),
                registry.clone(),
                management,
            )),
        };
        let handler = Arc::new(Handler::new(ports, config.clone()));
        tokio::spawn(delivery::deliver_relayed(
            events,
            local.clone(),
            registry.clone(),
            handler.clone(),
            endpoint.clone(),
        ));
        let (stop, shutdown) = watch::channel(false);
        let state = Arc::new(ServeState {
            handler,
            registry,
            local,
            listener,
            endpoint,
            config,
            draining: AtomicBool::new(false),
            shutdown,
        });
        Ok(DirectServer { state, tcp, stop })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub fn handle(&self) -> ServeHandle {
        ServeHandle(self.state.clone())
    }

    /// Serves until `shutdown` completes, then drains: no new connections (`/readyz` 503),
    /// every client closed with 1001 (they reconnect, to another instance behind a load
    /// balancer), their departures run, and every room this instance served is compacted.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<ShutdownReport, ServeError> {
        let DirectServer { state, tcp, stop } = self;
        tracing::info!(
            listen = %tcp.local_addr()?,
            endpoint = state.endpoint,
            backend = ?state.config.backend,
            max_message_bytes = state.config.max_assembled_bytes,
            "direct server ready"
        );
        let app = http::router(state.clone());
        let signalled = state.clone();
        let signal = async move {
            shutdown.await;
            signalled.draining.store(true, Ordering::Release);
            stop.send_replace(true);
        };
        // Small frames both ways: no Nagle delay (see BENCHMARKS.md).
        let tcp = axum::serve::ListenerExt::tap_io(tcp, |stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::warn!(%error, "could not set TCP_NODELAY on an accepted connection");
            }
        });
        let served = axum::serve(tcp, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(signal)
            .await;
        let report = drain(&state).await;
        served?;
        Ok(report)
    }
}

/// After the listener closed: waits for the connections (told 1001) to depart, then compacts
/// the rooms they were in.
async fn drain(state: &ServeState) -> ShutdownReport {
    let rooms: Vec<String> = state
        .local
        .channels()
        .into_iter()
        .filter_map(|channel| match channel {
            Channel::Room(room) => Some(room),
            Channel::Topic(_) => None,
        })
        .collect();
    let mut report = ShutdownReport {
        connections_closed: state.registry.len(),
        ..ShutdownReport::default()
    };
    tracing::info!(
        connections = report.connections_closed,
        rooms = rooms.len(),
        "draining: stopped accepting, closing connections with 1001"
    );
    if !state
        .registry
        .wait_empty(tokio::time::Instant::now() + DRAIN_GRACE)
        .await
    {
        report.connections_abandoned = state.registry.len();
        tracing::warn!(
            remaining = report.connections_abandoned,
            "connections still open after the drain grace period"
        );
    }
    for room in rooms {
        match state.handler.compact(&room).await {
            Ok(outcome) => {
                report.rooms_compacted += 1;
                tracing::debug!(room, ?outcome, "compacted at drain");
            }
            Err(e) => {
                report.rooms_failed += 1;
                tracing::warn!(room, error = %e, "compaction at drain failed");
            }
        }
    }
    tracing::info!(
        connections_closed = report.connections_closed,
        rooms_compacted = report.rooms_compacted,
        rooms_failed = report.rooms_failed,
        "drained"
    );
    report
}
