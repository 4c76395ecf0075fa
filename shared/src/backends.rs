//! Choosing the adapters: the embedded ones, or DynamoDB + S3 with the doc store on DynamoDB or
//! Redis. The Lambdas and
//! `ylambda dev` both build their stores here, once per process (a Lambda's cold start).
use std::sync::Arc;

use crate::adapters::aws::{
    self, DynamoConnectionStore, DynamoDocStore, ManagementApiFanout, S3SnapshotStore,
};
use crate::adapters::RedisDocStore;
use crate::adapters::{FsSnapshotStore, HttpFanout, MemoryConnectionStore, MemoryDocStore};
use crate::config::{AwsDocStore, Backend, Config, ConfigError};
use crate::handler::Ports;
use crate::ports::{
    ChannelEvent, ConnectionStore, DocStore, Fanout, RelayListener, SnapshotStore, StoreError,
};

/// Prefix of snapshot object keys in the bucket.
pub const SNAPSHOT_PREFIX: &str = "snapshots/";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `ylambda serve` needs relay channels, which the DynamoDB doc store does not have.
    #[error("ylambda serve relays through Redis pub/sub: set YLAMBDA_REDIS_URL (YLAMBDA_DOC_STORE=redis), or use the embedded backend")]
    NoRelay,
}

/// The three stores of a backend; the fanout depends on who runs the handler.
#[derive(Clone)]
pub struct Stores {
    pub connections: Arc<dyn ConnectionStore>,
    pub docs: Arc<dyn DocStore>,
    pub snapshots: Arc<dyn SnapshotStore>,
}

impl Stores {
    pub fn with_fanout(self, fanout: Arc<dyn Fanout>) -> Ports {
        Ports {
            connections: self.connections,
            docs: self.docs,
            snapshots: self.snapshots,
            fanout,
        }
    }
}

/// Builds the stores `config.backend` names. For `aws`, endpoints come from the standard
/// `AWS_ENDPOINT_URL*` variables (moto, LocalStack) or default to AWS.
pub async fn stores(config: &Config) -> Result<Stores, StartError> {
    match config.backend {
        Backend::Embedded => Ok(Stores {
            connections: Arc::new(MemoryConnectionStore::new()),
            docs: Arc::new(MemoryDocStore::new()),
            snapshots: Arc::new(FsSnapshotStore::new(&config.data_dir)?),
        }),
        Backend::Aws => {
            let settings = config.aws_settings()?;
            let sdk = aws::sdk_config().await;
            Ok(Stores {
                connections: Arc::new(DynamoConnectionStore::new(
                    aws::dynamodb_client(&sdk),
                    settings.table,
                )),
                docs: match settings.doc_store {
                    AwsDocStore::Dynamodb => Arc::new(DynamoDocStore::new(
                        aws::dynamodb_client(&sdk),
                        settings.table,
                    )),
                    AwsDocStore::Redis { url } => Arc::new(RedisDocStore::connect(url).await?),
                },
                snapshots: Arc::new(S3SnapshotStore::new(
                    aws::s3_client(&sdk),
                    settings.bucket,
                    SNAPSHOT_PREFIX,
                )),
            })
        }
    }
}

/// The fanout a Lambda uses: the SDK's management API client on AWS (signed requests); the plain
/// HTTP one with embedded stores, which only a local gateway (`ylambda dev`) accepts.
pub async fn lambda_fanout(config: &Config) -> Arc<dyn Fanout> {
    match config.backend {
        Backend::Aws => Arc::new(ManagementApiFanout::new(&aws::sdk_config().await)),
        Backend::Embedded => Arc::new(HttpFanout::new()),
    }
}

/// A direct server's backend: the stores, and a listener of the doc store's relay channels with
/// the receiver of what it hears.
pub struct DirectBackend {
    pub stores: Stores,
    pub listener: Arc<dyn RelayListener>,
    pub events: tokio::sync::mpsc::Receiver<ChannelEvent>,
}

/// Builds what `ylambda serve` runs on: [`stores`], with the doc store's relay listener. The
/// DynamoDB doc store has no channel, so it is refused ([`StartError::NoRelay`]).
pub async fn direct(config: &Config) -> Result<DirectBackend, StartError> {
    match config.backend {
        Backend::Embedded => {
            let docs = Arc::new(MemoryDocStore::new());
            let (listener, events) = docs.relay_listener();
            Ok(DirectBackend {
                stores: Stores {
                    connections: Arc::new(MemoryConnectionStore::new()),
                    docs,
                    snapshots: Arc::new(FsSnapshotStore::new(&config.data_dir)?),
                },
                listener: Arc::new(listener),
                events,
            })
        }
        Backend::Aws => {
            let settings = config.aws_settings()?;
            let AwsDocStore::Redis { url } = settings.doc_store else {
                return Err(StartError::NoRelay);
            };
            let docs = Arc::new(RedisDocStore::connect(url).await?);
            let (listener, events) = docs.relay_listener();
            let sdk = aws::sdk_config().await;
            Ok(DirectBackend {
                stores: Stores {
                    connections: Arc::new(DynamoConnectionStore::new(
                        aws::dynamodb_client(&sdk),
                        settings.table,
                    )),
                    docs,
                    snapshots: Arc::new(S3SnapshotStore::new(
                        aws::s3_client(&sdk),
                        settings.bucket,
                        SNAPSHOT_PREFIX,
                    )),
                },
                listener: Arc::new(listener),
                events,
            })
        }
    }
}
