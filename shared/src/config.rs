//! Configuration, read once from environment variables (documented defaults in the README).
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::JwksUrl;
use crate::ports::PieceLimits;

/// API Gateway's limit on one WebSocket message (128 KB).
pub const API_GATEWAY_MAX_MESSAGE_BYTES: usize = 128 * 1024;
/// API Gateway's limit on one WebSocket frame (32 KB): a larger message must come in several
/// frames. Browsers send each message as one frame, so a browser's messages must stay under it.
pub const API_GATEWAY_MAX_FRAME_BYTES: usize = 32 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is not set ({why})")]
    Missing {
        name: &'static str,
        why: &'static str,
    },
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// Which adapters back the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// In-memory connections and doc log, snapshots in the data dir: no Docker, no AWS.
    Embedded,
    /// DynamoDB connections, S3 snapshots, and the doc store [`DocStoreKind`] names (endpoints
    /// from `AWS_ENDPOINT_URL*`).
    Aws,
}

/// `YLAMBDA_DOC_STORE`: where the `aws` backend keeps update logs, awareness and pieces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocStoreKind {
    /// In the connections table: no Redis, nothing billed by the hour (the default without a
    /// Redis URL).
    Dynamodb,
    /// On Redis at `YLAMBDA_REDIS_URL` (the default when it is set): for very busy rooms.
    Redis,
}

/// Everything ylambda reads from its environment. Binaries read it once at start.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `YLAMBDA_LISTEN`: where `ylambda dev` listens.
    pub listen: String,
    /// `YLAMBDA_DATA_DIR`: where the filesystem snapshot store keeps one file per room.
    pub data_dir: PathBuf,
    /// `YLAMBDA_MAX_MESSAGE_BYTES`: the largest WebSocket message accepted or sent (API Gateway: 128 KB).
    pub max_message_bytes: usize,
    /// `YLAMBDA_MAX_FRAME_BYTES`: the largest WebSocket frame accepted (API Gateway: 32 KB).
    pub max_frame_bytes: usize,
    /// `YLAMBDA_IDLE_TIMEOUT_SECS`: a connection with no traffic for this long is closed (API Gateway: 10 min).
    pub idle_timeout: Duration,
    /// `YLAMBDA_MAX_CONNECTION_SECS`: a connection is closed after this long (API Gateway: 2 h).
    pub max_connection: Duration,
    /// `YLAMBDA_COMPACT_LOG_BYTES`: compact a room when its update log passes this many bytes.
    pub compact_log_bytes: usize,
    /// `YLAMBDA_COMPACT_LOG_ENTRIES`: compact a room when its update log passes this many entries.
    pub compact_log_entries: usize,
    /// `YLAMBDA_CONNECTION_TTL_SECS`: lifetime of connection records whose `$disconnect` never runs.
    pub connection_ttl: Duration,
    /// `YLAMBDA_FANOUT_CONCURRENCY`: how many posts one broadcast has in flight at once.
    pub fanout_concurrency: usize,
    /// `YLAMBDA_DASHBOARD_CHECK_SECS`: how long a process trusts what it last read of the
    /// dashboard's watch flag (so events cost nothing per event while nobody watches, and start
    /// at most this long after the first viewer arrives).
    pub dashboard_check: Duration,
    /// `YLAMBDA_MAX_ASSEMBLED_BYTES`: the largest client message accepted in pieces (bytes of
    /// y-websocket message, before base64).
    pub max_assembled_bytes: usize,
    /// `YLAMBDA_MAX_PIECES`: the most pieces one message may come in.
    pub max_pieces: u32,
    /// `YLAMBDA_MAX_OPEN_MESSAGES`: the most messages one connection may have half-sent at once.
    pub max_open_messages: usize,
    /// `YLAMBDA_PIECE_TTL_SECS`: how long the pieces of an incomplete message are kept.
    pub piece_ttl: Duration,
    /// `YLAMBDA_AUTH_SECRET`: the HS256 secret tokens are signed with. Unset: no token checks.
    pub auth_secret: Option<Secret>,
    /// Abuse limits (`YLAMBDA_MAX_MESSAGES_PER_SEC` and friends).
    pub limits: AbuseLimits,
    /// API Gateway's route throttling, as `ylambda dev` emulates it (`YLAMBDA_THROTTLE_*`).
    pub throttle: Throttle,
    /// `YLAMBDA_AUTH_JWKS_URL`: where the identity provider publishes the public keys of RS256 /
    /// ES256 tokens (https; http only to a loopback host). May be set with the secret.
    pub auth_jwks_url: Option<JwksUrl>,
    /// `YLAMBDA_AUTH_ISSUER` (comma-separated): a token's `iss` must be one of these. Empty: not checked.
    pub auth_issuers: Vec<String>,
    /// `YLAMBDA_AUTH_AUDIENCE` (comma-separated): a token's `aud` must name one of these. Empty:
    /// a token with an `aud` is refused.
    pub auth_audiences: Vec<String>,
    /// `YLAMBDA_BACKEND`: `embedded` (default) or `aws`.
    pub backend: Backend,
    /// `YLAMBDA_TABLE`: the DynamoDB connections table (backend `aws`).
    pub table: Option<String>,
    /// `YLAMBDA_BUCKET`: the S3 snapshot bucket (backend `aws`).
    pub bucket: Option<String>,
    /// `YLAMBDA_REDIS_URL`: `redis://` or `rediss://` URL with auth (backend `aws`).
    pub redis_url: Option<String>,
    /// `YLAMBDA_DOC_STORE`: `dynamodb` or `redis` (backend `aws`); unset: see [`Config::doc_store`].
    pub doc_store: Option<DocStoreKind>,
    /// `YLAMBDA_MANAGEMENT_ENDPOINT`: where posts to connections go. Default: derived from each
    /// event, `https://{domainName}/{stage}`, as on AWS; set it for local emulators.
    pub management_endpoint: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:4001".to_string(),
            data_dir: PathBuf::from("./.ylambda"),
            max_message_bytes: API_GATEWAY_MAX_MESSAGE_BYTES,
            max_frame_bytes: API_GATEWAY_MAX_FRAME_BYTES,
            idle_timeout: Duration::from_secs(600),
            max_connection: Duration::from_secs(7200),
            compact_log_bytes: 1024 * 1024,
            compact_log_entries: 1000,
            // A connection lives at most 2 h; ten more minutes covers clock skew and slow cleanup.
            connection_ttl: Duration::from_secs(7800),
            dashboard_check: Duration::from_secs(10),
            fanout_concurrency: 32,
            max_assembled_bytes: 16 * 1024 * 1024,
            // 16 MiB in base64 is ~683 pieces of 32 KB.
            max_pieces: 1024,
            max_open_messages: 4,
            piece_ttl: Duration::from_secs(120),
            auth_secret: None,
            limits: AbuseLimits::default(),
            throttle: Throttle::default(),
            auth_jwks_url: None,
            auth_issuers: Vec::new(),
            auth_audiences: Vec::new(),
            management_endpoint: None,
            backend: Backend::Embedded,
            table: None,
            bucket: None,
            redis_url: None,
            doc_store: None,
        }
    }
}

/// Bounds on what one client may ask of the server; past one, its connection is refused
/// (`$connect`) or closed (1008), with a log line saying which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbuseLimits {
    /// `YLAMBDA_MAX_MESSAGES_PER_SEC`: messages (frames, pieces included) one connection may send
    /// per second, averaged over a [`RATE_WINDOW_SECS`] window so a large paste's burst of pieces
    /// passes. Counted in the doc store, so it holds across Lambda instances.
    pub max_messages_per_sec: u64,
    /// `YLAMBDA_MAX_CONNECTIONS_PER_ROOM`: connections one room may have (checked at `$connect`).
    pub max_connections_per_room: usize,
    /// `YLAMBDA_MAX_TOPICS_PER_CONNECTION`: y-webrtc topics one signaling connection may join.
    pub max_topics_per_connection: usize,
    /// `YLAMBDA_MAX_ROOM_NAME_BYTES`: the longest room or topic name (bytes of UTF-8).
    pub max_room_name_bytes: usize,
}

/// Stage throttling (token buckets, requests per second and burst) for the whole API, as
/// `template.yaml` sets it on API Gateway; `ylambda dev` applies the same numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// `YLAMBDA_THROTTLE_CONNECT_RATE` / `_BURST`: `$connect`s per second.
    pub connect_rate: u64,
    pub connect_burst: u64,
    /// `YLAMBDA_THROTTLE_MESSAGE_RATE` / `_BURST`: messages (`$default`) per second.
    pub message_rate: u64,
    pub message_burst: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        // template.yaml's defaults.
        Throttle {
            connect_rate: 100,
            connect_burst: 200,
            message_rate: 1000,
            message_burst: 2000,
        }
    }
}

/// The rate window of [`AbuseLimits::max_messages_per_sec`], in seconds.
pub const RATE_WINDOW_SECS: u64 = 10;

impl Default for AbuseLimits {
    fn default() -> Self {
        AbuseLimits {
            // A fast typist with a moving cursor sends ~20/s; 100/s over 10 s also lets a 20 MB
            // paste's ~700 pieces through.
            max_messages_per_sec: 100,
            max_connections_per_room: 1000,
            // y-webrtc joins one topic per room it opens.
            max_topics_per_connection: 64,
            max_room_name_bytes: 512,
        }
    }
}

impl AbuseLimits {
    /// Most messages one connection may send in one rate window.
    pub fn messages_per_window(&self) -> u64 {
        self.max_messages_per_sec.saturating_mul(RATE_WINDOW_SECS)
    }
}

/// A secret from the environment: compared and cloned like a string, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What the `aws` backend needs, every one of them set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AwsSettings<'a> {
    pub table: &'a str,
    pub bucket: &'a str,
    pub doc_store: AwsDocStore<'a>,
}

/// The `aws` backend's doc store, with what it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AwsDocStore<'a> {
    Dynamodb,
    Redis { url: &'a str },
}

impl Config {
    /// The `aws` backend's settings, or which one is missing: the one place that says what that
    /// backend requires ([`Config::from_lookup`] checks it up front, the backends read it).
    pub fn aws_settings(&self) -> Result<AwsSettings<'_>, ConfigError> {
        fn required<'a>(
            value: &'a Option<String>,
            name: &'static str,
        ) -> Result<&'a str, ConfigError> {
            value.as_deref().ok_or(ConfigError::Missing {
                name,
                why: "YLAMBDA_BACKEND=aws needs it",
            })
        }
        let doc_store = match self.doc_store() {
            DocStoreKind::Dynamodb => AwsDocStore::Dynamodb,
            DocStoreKind::Redis => AwsDocStore::Redis {
                url: self.redis_url.as_deref().ok_or(ConfigError::Missing {
                    name: "YLAMBDA_REDIS_URL",
                    why: "YLAMBDA_DOC_STORE=redis needs it",
                })?,
            },
        };
        Ok(AwsSettings {
            table: required(&self.table, "YLAMBDA_TABLE")?,
            bucket: required(&self.bucket, "YLAMBDA_BUCKET")?,
            doc_store,
        })
    }

    /// The doc store the `aws` backend uses: `YLAMBDA_DOC_STORE`, else Redis if a URL is set,
    /// else DynamoDB.
    pub fn doc_store(&self) -> DocStoreKind {
        self.doc_store.unwrap_or(if self.redis_url.is_some() {
            DocStoreKind::Redis
        } else {
            DocStoreKind::Dynamodb
        })
    }

    /// The bounds on messages that arrive in pieces, as the doc stores apply them.
    pub fn piece_limits(&self) -> PieceLimits {
        PieceLimits {
            // The assembled text is the message's base64.
            max_text_bytes: self.max_assembled_bytes.div_ceil(3).saturating_mul(4),
            max_open_messages: self.max_open_messages,
            ttl: self.piece_ttl,
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some(v) = lookup("YLAMBDA_LISTEN") {
            config.listen = v;
        }
        if let Some(v) = lookup("YLAMBDA_DATA_DIR") {
            config.data_dir = PathBuf::from(v);
        }
        let text = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        config.table = text("YLAMBDA_TABLE");
        config.bucket = text("YLAMBDA_BUCKET");
        config.redis_url = text("YLAMBDA_REDIS_URL");
        if let Some(value) = text("YLAMBDA_DOC_STORE") {
            config.doc_store = Some(match value.trim().to_ascii_lowercase().as_str() {
                "dynamodb" => DocStoreKind::Dynamodb,
                "redis" => DocStoreKind::Redis,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "YLAMBDA_DOC_STORE",
                        value,
                        reason: "must be `dynamodb` or `redis`".into(),
                    })
                }
            });
        }
        if let Some(value) = text("YLAMBDA_BACKEND") {
            config.backend = match value.trim().to_ascii_lowercase().as_str() {
                "embedded" => Backend::Embedded,
                "aws" => Backend::Aws,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "YLAMBDA_BACKEND",
                        value,
                        reason: "must be `embedded` or `aws`".into(),
                    })
                }
            };
        }
        if config.backend == Backend::Aws {
            config.aws_settings()?;
        }
        // A blank secret is no secret; any other is kept untrimmed: the exact bytes apps sign with.
        config.auth_secret = lookup("YLAMBDA_AUTH_SECRET")
            .filter(|v| !v.trim().is_empty())
            .map(Secret);
        if let Some(value) = text("YLAMBDA_AUTH_JWKS_URL") {
            config.auth_jwks_url =
                Some(
                    JwksUrl::parse(&value).map_err(|reason| ConfigError::Invalid {
                        name: "YLAMBDA_AUTH_JWKS_URL",
                        value,
                        reason,
                    })?,
                );
        }
        let list = |name: &str| -> Vec<String> {
            text(name)
                .iter()
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(String::from)
                .collect()
        };
        config.auth_issuers = list("YLAMBDA_AUTH_ISSUER");
        config.auth_audiences = list("YLAMBDA_AUTH_AUDIENCE");
        if config.auth_secret.is_none() && config.auth_jwks_url.is_none() {
            // Checks that would silently not run: refuse to start rather than run open.
            for (name, values) in [
                ("YLAMBDA_AUTH_ISSUER", &config.auth_issuers),
                ("YLAMBDA_AUTH_AUDIENCE", &config.auth_audiences),
            ] {
                if !values.is_empty() {
                    return Err(ConfigError::Invalid {
                        name,
                        value: values.join(","),
                        reason: "needs YLAMBDA_AUTH_SECRET or YLAMBDA_AUTH_JWKS_URL: without \
                                 either no token is checked"
                            .into(),
                    });
                }
            }
        }
        // Set by template.yaml: a deployed function whose key is missing must fail at start,
        // never run open.
        if let Some(mode) = text("YLAMBDA_AUTH_MODE") {
            let missing = |name, why| Err(ConfigError::Missing { name, why });
            match mode.trim() {
                "off" => {
                    config.auth_secret = None;
                    config.auth_jwks_url = None;
                    config.auth_issuers.clear();
                    config.auth_audiences.clear();
                }
                "hs256" if config.auth_secret.is_none() => {
                    return missing("YLAMBDA_AUTH_SECRET", "YLAMBDA_AUTH_MODE=hs256 needs it")
                }
                "hs256" => {}
                "jwks" if config.auth_jwks_url.is_none() => {
                    return missing("YLAMBDA_AUTH_JWKS_URL", "YLAMBDA_AUTH_MODE=jwks needs it")
                }
                "jwks" => {}
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "YLAMBDA_AUTH_MODE",
                        value: mode,
                        reason: "must be `hs256`, `jwks` or `off`".into(),
                    })
                }
            }
        }
        config.management_endpoint =
            lookup("YLAMBDA_MANAGEMENT_ENDPOINT").filter(|v| !v.is_empty());
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match lookup(name) {
                None => Ok(default),
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    Ok(_) => Err(ConfigError::Invalid {
                        name,
                        value,
                        reason: "must be greater than zero".into(),
                    }),
                    Err(e) => Err(ConfigError::Invalid {
                        name,
                        value,
                        reason: e.to_string(),
                    }),
                },
            }
        };
        config.max_message_bytes =
            number("YLAMBDA_MAX_MESSAGE_BYTES", config.max_message_bytes as u64)? as usize;
        config.max_frame_bytes =
            number("YLAMBDA_MAX_FRAME_BYTES", config.max_frame_bytes as u64)? as usize;
        config.idle_timeout = Duration::from_secs(number(
            "YLAMBDA_IDLE_TIMEOUT_SECS",
            config.idle_timeout.as_secs(),
        )?);
        config.max_connection = Duration::from_secs(number(
            "YLAMBDA_MAX_CONNECTION_SECS",
            config.max_connection.as_secs(),
        )?);
        config.compact_log_bytes =
            number("YLAMBDA_COMPACT_LOG_BYTES", config.compact_log_bytes as u64)? as usize;
        config.compact_log_entries = number(
            "YLAMBDA_COMPACT_LOG_ENTRIES",
            config.compact_log_entries as u64,
        )? as usize;
        config.connection_ttl = Duration::from_secs(number(
            "YLAMBDA_CONNECTION_TTL_SECS",
            config.connection_ttl.as_secs(),
        )?);
        config.dashboard_check = Duration::from_secs(number(
            "YLAMBDA_DASHBOARD_CHECK_SECS",
            config.dashboard_check.as_secs(),
        )?);
        config.fanout_concurrency = number(
            "YLAMBDA_FANOUT_CONCURRENCY",
            config.fanout_concurrency as u64,
        )? as usize;
        config.max_assembled_bytes = number(
            "YLAMBDA_MAX_ASSEMBLED_BYTES",
            config.max_assembled_bytes as u64,
        )? as usize;
        config.max_pieces = u32::try_from(number("YLAMBDA_MAX_PIECES", config.max_pieces.into())?)
            .map_err(|_| ConfigError::Invalid {
                name: "YLAMBDA_MAX_PIECES",
                value: lookup("YLAMBDA_MAX_PIECES").unwrap_or_default(),
                reason: "must fit in 32 bits".into(),
            })?;
        config.max_open_messages =
            number("YLAMBDA_MAX_OPEN_MESSAGES", config.max_open_messages as u64)? as usize;
        config.piece_ttl = Duration::from_secs(number(
            "YLAMBDA_PIECE_TTL_SECS",
            config.piece_ttl.as_secs(),
        )?);
        let limits = &mut config.limits;
        limits.max_messages_per_sec =
            number("YLAMBDA_MAX_MESSAGES_PER_SEC", limits.max_messages_per_sec)?;
        limits.max_connections_per_room = number(
            "YLAMBDA_MAX_CONNECTIONS_PER_ROOM",
            limits.max_connections_per_room as u64,
        )? as usize;
        limits.max_topics_per_connection = number(
            "YLAMBDA_MAX_TOPICS_PER_CONNECTION",
            limits.max_topics_per_connection as u64,
        )? as usize;
        limits.max_room_name_bytes = number(
            "YLAMBDA_MAX_ROOM_NAME_BYTES",
            limits.max_room_name_bytes as u64,
        )? as usize;
        let throttle = &mut config.throttle;
        throttle.connect_rate = number("YLAMBDA_THROTTLE_CONNECT_RATE", throttle.connect_rate)?;
        throttle.connect_burst = number("YLAMBDA_THROTTLE_CONNECT_BURST", throttle.connect_burst)?;
        throttle.message_rate = number("YLAMBDA_THROTTLE_MESSAGE_RATE", throttle.message_rate)?;
        throttle.message_burst = number("YLAMBDA_THROTTLE_MESSAGE_BURST", throttle.message_burst)?;
        if config.max_message_bytes < 1024 {
            return Err(ConfigError::Invalid {
                name: "YLAMBDA_MAX_MESSAGE_BYTES",
                value: config.max_message_bytes.to_string(),
                reason: "must be at least 1024".into(),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_api_gateway() {
        let c = from(&[]).unwrap();
        assert_eq!(c.max_message_bytes, 131072);
        assert_eq!(c.idle_timeout, Duration::from_secs(600));
        assert_eq!(c.max_connection, Duration::from_secs(7200));
        assert_eq!(c.listen, "127.0.0.1:4001");
    }

    #[test]
    fn overrides_are_read() {
        let c = from(&[
            ("YLAMBDA_IDLE_TIMEOUT_SECS", "5"),
            ("YLAMBDA_DATA_DIR", "/tmp/x"),
        ])
        .unwrap();
        assert_eq!(c.idle_timeout, Duration::from_secs(5));
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn an_auth_mode_without_its_key_fails_at_start() {
        let e = from(&[("YLAMBDA_AUTH_MODE", "hs256")]).unwrap_err();
        assert!(e.to_string().contains("YLAMBDA_AUTH_SECRET"), "{e}");
        let e = from(&[("YLAMBDA_AUTH_MODE", "jwks")]).unwrap_err();
        assert!(e.to_string().contains("YLAMBDA_AUTH_JWKS_URL"), "{e}");
        let e = from(&[("YLAMBDA_AUTH_MODE", "maybe")]).unwrap_err();
        assert!(e.to_string().contains("YLAMBDA_AUTH_MODE"), "{e}");
        let on = from(&[
            ("YLAMBDA_AUTH_MODE", "hs256"),
            ("YLAMBDA_AUTH_SECRET", " s "),
        ])
        .unwrap();
        assert_eq!(on.auth_secret, Some(Secret(" s ".into())), "not trimmed");
        let off = from(&[("YLAMBDA_AUTH_MODE", "off"), ("YLAMBDA_AUTH_SECRET", "s")]).unwrap();
        assert_eq!(off.auth_secret, None);
    }

    #[test]
    fn abuse_limits_are_read_and_zero_is_refused() {
        let c = from(&[
            ("YLAMBDA_MAX_MESSAGES_PER_SEC", "7"),
            ("YLAMBDA_MAX_CONNECTIONS_PER_ROOM", "3"),
            ("YLAMBDA_MAX_TOPICS_PER_CONNECTION", "2"),
            ("YLAMBDA_MAX_ROOM_NAME_BYTES", "64"),
        ])
        .unwrap();
        assert_eq!(
            c.limits,
            AbuseLimits {
                max_messages_per_sec: 7,
                max_connections_per_room: 3,
                max_topics_per_connection: 2,
                max_room_name_bytes: 64,
            }
        );
        assert_eq!(c.limits.messages_per_window(), 7 * RATE_WINDOW_SECS);
        let e = from(&[("YLAMBDA_MAX_MESSAGES_PER_SEC", "0")]).unwrap_err();
        assert!(
            e.to_string().contains("YLAMBDA_MAX_MESSAGES_PER_SEC"),
            "{e}"
        );
    }

    #[test]
    fn aws_backend_needs_its_resources() {
        let e = from(&[("YLAMBDA_BACKEND", "aws")]).unwrap_err();
        assert!(e.to_string().contains("YLAMBDA_TABLE"), "{e}");
        let c = from(&[
            ("YLAMBDA_BACKEND", "AWS"),
            ("YLAMBDA_TABLE", "t"),
            ("YLAMBDA_BUCKET", "b"),
            ("YLAMBDA_REDIS_URL", "redis://127.0.0.1:6379"),
        ])
        .unwrap();
        assert_eq!(c.backend, Backend::Aws);
        assert!(from(&[("YLAMBDA_BACKEND", "cloud")]).is_err());
    }

    #[test]
    fn the_doc_store_follows_the_redis_url_unless_named() {
        let aws = [
            ("YLAMBDA_BACKEND", "aws"),
            ("YLAMBDA_TABLE", "t"),
            ("YLAMBDA_BUCKET", "b"),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut vars = aws.to_vec();
            vars.extend_from_slice(extra);
            from(&vars)
        };
        let c = with(&[]).unwrap();
        assert_eq!(c.doc_store(), DocStoreKind::Dynamodb);
        assert_eq!(c.aws_settings().unwrap().doc_store, AwsDocStore::Dynamodb);
        let c = with(&[("YLAMBDA_REDIS_URL", "redis://r:6379")]).unwrap();
        assert_eq!(
            c.aws_settings().unwrap().doc_store,
            AwsDocStore::Redis {
                url: "redis://r:6379"
            }
        );
        let c = with(&[
            ("YLAMBDA_REDIS_URL", "redis://r:6379"),
            ("YLAMBDA_DOC_STORE", "DynamoDB"),
        ])
        .unwrap();
        assert_eq!(c.doc_store(), DocStoreKind::Dynamodb);
        let e = with(&[("YLAMBDA_DOC_STORE", "redis")]).unwrap_err();
        assert!(e.to_string().contains("YLAMBDA_REDIS_URL"), "{e}");
        let e = with(&[("YLAMBDA_DOC_STORE", "memcached")]).unwrap_err();
        assert!(e.to_string().contains("YLAMBDA_DOC_STORE"), "{e}");
    }

    #[test]
    fn the_auth_secret_is_read_but_never_printed() {
        let c = from(&[("YLAMBDA_AUTH_SECRET", "hunter2")]).unwrap();
        assert_eq!(c.auth_secret, Some(Secret("hunter2".into())));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            from(&[("YLAMBDA_AUTH_SECRET", " ")]).unwrap().auth_secret,
            None
        );
    }

    #[test]
    fn jwks_issuer_and_audience_are_read() {
        let url = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/.well-known/jwks.json";
        let c = from(&[
            ("YLAMBDA_AUTH_JWKS_URL", url),
            ("YLAMBDA_AUTH_ISSUER", "https://issuer.example"),
            ("YLAMBDA_AUTH_AUDIENCE", " app-1, app-2 ,,"),
        ])
        .unwrap();
        assert_eq!(c.auth_jwks_url.unwrap().to_string(), url);
        assert_eq!(c.auth_issuers, ["https://issuer.example"]);
        assert_eq!(c.auth_audiences, ["app-1", "app-2"]);
        for local in [
            "http://127.0.0.1:8080/jwks.json",
            "http://localhost/k",
            "http://[::1]:1/k",
        ] {
            assert!(from(&[("YLAMBDA_AUTH_JWKS_URL", local)]).is_ok(), "{local}");
        }
    }

    #[test]
    fn a_bad_jwks_url_fails_loudly() {
        for (url, why) in [
            ("http://example.com/jwks.json", "https"),
            ("ftp://example.com/jwks.json", "https"),
            ("example.com/jwks.json", "https"),
            ("/jwks.json", "https"),
            ("https://exa mple.com/", "not a URL"),
        ] {
            let e = from(&[("YLAMBDA_AUTH_JWKS_URL", url)]).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("YLAMBDA_AUTH_JWKS_URL"), "{url}: {text}");
            assert!(text.contains(why), "{url}: {text}");
        }
    }

    #[test]
    fn issuer_or_audience_without_a_key_fails_loudly() {
        for name in ["YLAMBDA_AUTH_ISSUER", "YLAMBDA_AUTH_AUDIENCE"] {
            let e = from(&[(name, "x")]).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
            assert!(from(&[(name, "x"), ("YLAMBDA_AUTH_SECRET", "s")]).is_ok());
        }
    }

    #[test]
    fn bad_numbers_fail_loudly() {
        let e = from(&[("YLAMBDA_IDLE_TIMEOUT_SECS", "ten")]).unwrap_err();
        assert!(e.to_string().contains("YLAMBDA_IDLE_TIMEOUT_SECS"));
        assert!(from(&[("YLAMBDA_FANOUT_CONCURRENCY", "0")]).is_err());
        assert!(from(&[("YLAMBDA_MAX_MESSAGE_BYTES", "10")]).is_err());
    }
}
