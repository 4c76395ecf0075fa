//! The S3 snapshot store: the suite, the object layout, racing writers.
use ylambda_shared::adapters::aws::{s3_config, S3SnapshotStore};
use ylambda_shared::conformance::backends::say;
use ylambda_shared::conformance::{self, unique};
use ylambda_shared::ports::{LogPosition, PutOutcome, Snapshot, SnapshotStore};

use crate::harness::*;

#[tokio::test]
async fn s3_snapshot_store_conforms() {
    let Some(aws) = aws("s3_snapshot_store_conforms").await else {
        return;
    };
    let bucket = aws.fresh_bucket().await;
    conformance::snapshot_store_suite(&S3SnapshotStore::new(aws.s3.clone(), &bucket, "snapshots/"))
        .await;
    say(&format!(
        "S3 requests for the snapshot store suite: {:?}",
        aws.counter.snapshot()
    ));
    assert_eq!(aws.counter.get("s3:ListObjects"), 0);
}

#[tokio::test]
async fn s3_object_layout() {
    let Some(aws) = aws("s3_object_layout").await else {
        return;
    };
    let bucket = aws.fresh_bucket().await;
    let store = S3SnapshotStore::new(aws.s3.clone(), &bucket, "snap/");
    let snapshot = Snapshot {
        update: vec![0, 0],
        covers: Some(LogPosition("1712345678901-3".into())),
    };
    let PutOutcome::Written { version } = store.put("a/B", &snapshot, None).await.unwrap() else {
        panic!("create failed");
    };
    let head = aws
        .s3
        .head_object()
        .bucket(&bucket)
        .key("snap/612f42.yupdate")
        .send()
        .await
        .expect("object at {prefix}{hex(room)}.yupdate");
    assert_eq!(head.e_tag.as_deref(), Some(version.as_str()));
    assert_eq!(
        head.metadata
            .as_ref()
            .and_then(|m| m.get("covers"))
            .map(String::as_str),
        Some("1712345678901-3"),
        "covers travels as x-amz-meta-covers"
    );
    assert_eq!(head.content_length, Some(2));
}

#[tokio::test]
async fn s3_racing_writers_exactly_one_wins() {
    let Some(aws) = aws("s3_racing_writers_exactly_one_wins").await else {
        return;
    };
    let bucket = aws.fresh_bucket().await;
    // Two stores on two clients: two compactions in two Lambdas.
    let a = S3SnapshotStore::new(aws.s3.clone(), &bucket, "");
    let b = S3SnapshotStore::new(
        aws_sdk_s3::Client::from_conf(s3_config(&aws.config).build()),
        &bucket,
        "",
    );
    // Every write has distinct bytes: the version is the ETag, a hash of the body, so writing
    // the very bytes already stored would give back the version a racer holds (harmless, see
    // s3.rs, but not the race under test).
    let snap = |tag: u8, round: u8, phase: u8| Snapshot {
        update: vec![tag, round, phase],
        covers: Some(LogPosition(format!("{tag}-{round}-{phase}"))),
    };
    for round in 0..20u8 {
        let room = unique("race");
        // Round 0 of each room races on create, then on replace.
        for phase in 0..2u8 {
            let expected = a.get(&room).await.unwrap().map(|s| s.version);
            assert_eq!(expected.is_some(), phase == 1);
            let (sa, sb) = (snap(1, round, phase), snap(2, round, phase));
            let (ra, rb) = tokio::join!(
                a.put(&room, &sa, expected.as_deref()),
                b.put(&room, &sb, expected.as_deref())
            );
            let (ra, rb) = (ra.unwrap(), rb.unwrap());
            let winner = match (&ra, &rb) {
                (PutOutcome::Written { .. }, PutOutcome::Conflict) => sa,
                (PutOutcome::Conflict, PutOutcome::Written { .. }) => sb,
                _ => panic!(
                    "round {round} phase {phase}: exactly one writer must win: {ra:?} / {rb:?}"
                ),
            };
            let stored = a.get(&room).await.unwrap().expect("a snapshot");
            assert_eq!(stored.snapshot, winner, "the loser's write leaked in");
        }
    }
}
