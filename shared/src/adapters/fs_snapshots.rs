//! Filesystem snapshot store: one file per room under a data directory, written atomically.
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::ports::{
    LogPosition, PutOutcome, Snapshot, SnapshotStore, StoreError, StoreResult, StoredSnapshot,
};

/// File layout: magic, a length-prefixed version, a length-prefixed `covers` position, the update.
const MAGIC: &[u8; 8] = b"YLSNAP2\n";

pub struct FsSnapshotStore {
    dir: PathBuf,
    /// Serialises compare-and-swap writes. The store is meant for one local server process; a
    /// second process on the same directory gets atomic files but no compare-and-swap.
    writes: Mutex<()>,
}

impl FsSnapshotStore {
    /// Creates the data directory if needed.
    pub fn new(dir: impl Into<PathBuf>) -> StoreResult<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| {
            StoreError::Backend(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        Ok(FsSnapshotStore {
            dir,
            writes: Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Room names are arbitrary strings from clients: hex-encode them so no name can escape the
    /// directory or collide with another after case folding.
    fn path_for(&self, room: &str) -> PathBuf {
        let mut name = String::with_capacity(room.len() * 2 + 6);
        for b in room.as_bytes() {
            name.push_str(&format!("{b:02x}"));
        }
        name.push_str(".ysnap");
        self.dir.join(name)
    }

    async fn read(&self, room: &str) -> StoreResult<Option<StoredSnapshot>> {
        let path = self.path_for(room);
        match tokio::fs::read(&path).await {
            Ok(bytes) => decode(&path, &bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Backend(format!("read {}: {e}", path.display()))),
        }
    }
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

fn encode(snapshot: &Snapshot, version: &str) -> Vec<u8> {
    let covers = snapshot
        .covers
        .as_ref()
        .map(|p| p.0.as_bytes())
        .unwrap_or(b"");
    let mut out =
        Vec::with_capacity(MAGIC.len() + 8 + version.len() + covers.len() + snapshot.update.len());
    out.extend_from_slice(MAGIC);
    push_field(&mut out, version.as_bytes());
    push_field(&mut out, covers);
    out.extend_from_slice(&snapshot.update);
    out
}

fn decode(path: &Path, bytes: &[u8]) -> StoreResult<StoredSnapshot> {
    let corrupt = |why: &str| StoreError::Corrupt(format!("{}: {why}", path.display()));
    let take_field = |rest: &[u8]| -> StoreResult<(String, usize)> {
        let len = rest.get(..4).ok_or_else(|| corrupt("truncated header"))?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let field = rest
            .get(4..4 + len)
            .ok_or_else(|| corrupt("truncated field"))?;
        let field = String::from_utf8(field.to_vec()).map_err(|_| corrupt("field is not UTF-8"))?;
        Ok((field, 4 + len))
    };
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| corrupt("bad magic"))?;
    let (version, used) = take_field(rest)?;
    let rest = &rest[used..];
    let (covers, used) = take_field(rest)?;
    Ok(StoredSnapshot {
        snapshot: Snapshot {
            update: rest[used..].to_vec(),
            covers: (!covers.is_empty()).then_some(LogPosition(covers)),
        },
        version,
    })
}

#[async_trait]
impl SnapshotStore for FsSnapshotStore {
    async fn get(&self, room: &str) -> StoreResult<Option<StoredSnapshot>> {
        self.read(room).await
    }

    async fn put(
        &self,
        room: &str,
        snapshot: &Snapshot,
        expected: Option<&str>,
    ) -> StoreResult<PutOutcome> {
        let _serialised = self.writes.lock().await;
        let current = self.read(room).await?.map(|s| s.version);
        if current.as_deref() != expected {
            return Ok(PutOutcome::Conflict);
        }
        let version = format!("{:016x}", rand::random::<u64>());
        let path = self.path_for(room);
        let bytes = encode(snapshot, &version);
        let dir = self.dir.clone();
        // Temp file + fsync + rename: a crash leaves the old snapshot or the new one, never half.
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let tmp = dir.join(format!(".{:016x}.tmp", rand::random::<u64>()));
            let result = (|| {
                let mut file = std::fs::File::create(&tmp)?;
                file.write_all(&bytes)?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(&dir)?.sync_all()
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("snapshot writer task failed: {e}")))?
        .map_err(|e| StoreError::Backend(format!("write snapshot for room {room:?}: {e}")))?;
        Ok(PutOutcome::Written { version })
    }
}
