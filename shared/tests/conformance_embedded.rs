//! The embedded adapters against the port conformance suites.
use ylambda_shared::adapters::{FsSnapshotStore, MemoryConnectionStore, MemoryDocStore};
use ylambda_shared::conformance;

#[tokio::test]
async fn memory_connection_store_conforms() {
    conformance::connection_store_suite(&MemoryConnectionStore::new()).await;
}

#[tokio::test]
async fn memory_doc_store_conforms() {
    conformance::doc_store_suite(&MemoryDocStore::new()).await;
}

#[tokio::test]
async fn memory_relay_listener_conforms() {
    let store = MemoryDocStore::new();
    let (listener, mut events) = store.relay_listener();
    conformance::relay_listener_suite(&store, &listener, &mut events).await;
}

#[tokio::test]
async fn memory_rate_counters_conform() {
    conformance::rate_counter_suite(&MemoryDocStore::new()).await;
}

#[tokio::test]
async fn memory_piece_store_conforms() {
    conformance::piece_store_suite(&MemoryDocStore::new()).await;
}

#[tokio::test]
async fn fs_snapshot_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance::snapshot_store_suite(&FsSnapshotStore::new(dir.path()).unwrap()).await;
}
