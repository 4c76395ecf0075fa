//! S3 snapshot store: one object per room, replaced with conditional writes.
//!
//! Key `{prefix}{hex(room name bytes)}.yupdate`, body the merged Yjs update v1, the covered log
//! position in `x-amz-meta-covers`. The version a writer must name is the object's ETag:
//! `If-None-Match: *` creates, `If-Match: {etag}` replaces, and S3 answers 412 when someone else
//! wrote first. (An ETag is a hash of the body, so a body written again with the same bytes gets
//! the same ETag back; that is harmless here: a writer whose `If-Match` succeeds had read exactly
//! the bytes now stored, and its merge contains them.)
use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use super::backend_error;
use crate::ports::{
    LogPosition, PutOutcome, Snapshot, SnapshotStore, StoreError, StoreResult, StoredSnapshot,
};

/// User metadata key holding `Snapshot::covers` (sent as `x-amz-meta-covers`).
const COVERS_METADATA: &str = "covers";
/// S3's limit on a key's UTF-8 length.
const MAX_KEY_BYTES: usize = 1024;

pub struct S3SnapshotStore {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3SnapshotStore {
    /// `prefix` is prepended to every key as is (e.g. `snapshots/`, or `""`).
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3SnapshotStore {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Room names are arbitrary client strings: hex-encoding their bytes makes a key that is safe
    /// in any tool, cannot imitate a path (`../`), and keeps names that differ only in case apart
    /// (the same layout as the filesystem store, so snapshots can be copied between them).
    pub fn key_for(&self, room: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + room.len() * 2 + 8);
        key.push_str(&self.prefix);
        for b in room.as_bytes() {
            key.push_str(&format!("{b:02x}"));
        }
        key.push_str(".yupdate");
        key
    }
}

/// Whether a failed conditional PutObject lost the race rather than failed: 412
/// PreconditionFailed (the ETag no longer matches, or the object now exists), 409
/// ConditionalRequestConflict (a concurrent conditional write to the same key), or, when
/// replacing, 404 (the object was deleted since it was read).
fn lost_race<E>(error: &SdkError<E, HttpResponse>, replacing: bool) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    let SdkError::ServiceError(service) = error else {
        return false;
    };
    let status = service.raw().status().as_u16();
    let code = service.err().code();
    status == 412
        || status == 409
        || matches!(
            code,
            Some("PreconditionFailed" | "ConditionalRequestConflict")
        )
        || (replacing && (status == 404 || code == Some("NoSuchKey")))
}

#[async_trait]
impl SnapshotStore for S3SnapshotStore {
    async fn get(&self, room: &str) -> StoreResult<Option<StoredSnapshot>> {
        let key = self.key_for(room);
        if key.len() > MAX_KEY_BYTES {
            // No object can have this key, so no snapshot was ever written for the room.
            return Ok(None);
        }
        let where_ = || format!("s3://{}/{key}", self.bucket);
        // Note: without s3:ListBucket permission S3 answers 403, not 404, for a missing key; the
        // role needs ListBucket on the bucket for a new room to read as "no snapshot".
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(backend_error(format!("GetObject {}", where_()), e)),
        };
        let version = output.e_tag.clone().ok_or_else(|| {
            StoreError::Corrupt(format!("{}: GetObject returned no ETag", where_()))
        })?;
        let covers = output
            .metadata
            .as_ref()
            .and_then(|m| m.get(COVERS_METADATA))
            .filter(|c| !c.is_empty())
            .map(|c| LogPosition(c.clone()));
        let update = output
            .body
            .collect()
            .await
            .map_err(|e| backend_error(format!("read body of {}", where_()), e))?
            .into_bytes()
            .to_vec();
        Ok(Some(StoredSnapshot {
            snapshot: Snapshot { update, covers },
            version,
        }))
    }

    async fn put(
        &self,
        room: &str,
        snapshot: &Snapshot,
        expected: Option<&str>,
    ) -> StoreResult<PutOutcome> {
        let key = self.key_for(room);
        let where_ = format!("s3://{}/{key}", self.bucket);
        if key.len() > MAX_KEY_BYTES {
            return Err(StoreError::Backend(format!(
                "room name of {} bytes is too long for an S3 key ({where_:.80}...)",
                room.len()
            )));
        }
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/octet-stream")
            .body(ByteStream::from(snapshot.update.clone()));
        if let Some(covers) = &snapshot.covers {
            // Metadata travels as an HTTP header: printable ASCII only. Log positions are
            // counters or Redis stream ids, so anything else is a bug upstream, not data to mangle.
            if !covers.0.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(StoreError::Backend(format!(
                    "{where_}: log position {:?} cannot be stored as S3 metadata",
                    covers.0
                )));
            }
            request = request.metadata(COVERS_METADATA, covers.0.clone());
        }
        request = match expected {
            None => request.if_none_match("*"),
            Some(version) => request.if_match(version),
        };
        match request.send().await {
            Ok(output) => {
                let version = output.e_tag.ok_or_else(|| {
                    StoreError::Backend(format!("PutObject {where_}: no ETag in the response"))
                })?;
                Ok(PutOutcome::Written { version })
            }
            // Also what an SDK retry of our own successful write would see (its first attempt
            // landed, the retry finds the ETag changed). Reporting Conflict then is safe: the
            // caller re-reads and finds its own snapshot.
            Err(e) if lost_race(&e, expected.is_some()) => {
                tracing::debug!(bucket = %self.bucket, key, "conditional PutObject lost the race");
                Ok(PutOutcome::Conflict)
            }
            Err(e) => Err(backend_error(format!("PutObject {where_}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hex_and_prefixed() {
        let client = Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .build(),
        );
        let store = S3SnapshotStore::new(client, "b", "snapshots/");
        assert_eq!(store.key_for("a/B"), "snapshots/612f42.yupdate");
        assert_ne!(store.key_for("room"), store.key_for("ROOM"));
    }
}
