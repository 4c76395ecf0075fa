//! The adapters of every port: the embedded ones (memory, files, plain HTTP posts), the local
//! server's default, and the AWS / Redis ones (`aws`, `redis_docs`), all held to the same
//! conformance suites (`crate::conformance`).
mod awareness_codec;
pub mod aws;
mod directory_key;
mod fs_snapshots;
mod http_fanout;
mod memory_channels;
mod memory_connections;
mod memory_docs;
mod memory_feed;
mod memory_pieces;
mod redis_docs;

pub use directory_key::{cursor_after, directory_key, key_of_cursor};
pub use fs_snapshots::FsSnapshotStore;
pub use http_fanout::HttpFanout;
pub use memory_channels::MemoryRelayListener;
pub use memory_connections::MemoryConnectionStore;
pub use memory_docs::MemoryDocStore;
pub use redis_docs::{RedisDocStore, RedisRelayListener};

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (for record expiry).
pub fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (for timestamps in records).
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
