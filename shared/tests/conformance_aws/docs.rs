//! The DynamoDB doc store (the `dynamodb` profile): the doc store, rate counter and piece store
//! suites without Scans, large updates cut into entries, and its items kept out of `gs1`.
use ylambda_shared::adapters::aws::{DynamoDocStore, GSI_NAME};
use ylambda_shared::conformance::backends::say;
use ylambda_shared::conformance::{self, unique};
use ylambda_shared::ports::DocStore;
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

use crate::harness::*;

#[tokio::test]
async fn dynamodb_doc_store_conforms_without_scans() {
    let Some(aws) = aws("dynamodb_doc_store_conforms_without_scans").await else {
        return;
    };
    let table = aws.fresh_table().await;
    let store = DynamoDocStore::new(aws.dynamodb.clone(), table.name());
    conformance::doc_store_suite(&store).await;
    conformance::rate_counter_suite(&store).await;
    conformance::piece_store_suite(&store).await;
    let counts = aws.counter.snapshot();
    say(&format!(
        "DynamoDB requests for the doc store suites: {counts:?}"
    ));
    assert!(
        counts.get("dynamodb:PutItem").copied().unwrap_or(0) > 0,
        "the counter saw no traffic: {counts:?}"
    );
    assert!(
        !counts.keys().any(|k| k.ends_with(":Scan")),
        "the doc store issued a Scan: {counts:?}"
    );
    // None of its items is in the connection index (the test may scan; the adapter may not).
    let indexed = aws
        .dynamodb
        .scan()
        .table_name(table.name())
        .index_name(GSI_NAME)
        .send()
        .await
        .expect("scan gs1");
    assert_eq!(
        indexed.items.unwrap_or_default().len(),
        0,
        "doc store items entered {GSI_NAME}"
    );
    table.delete().await;
}

#[tokio::test]
async fn an_update_over_the_item_limit_is_kept_as_valid_pieces() {
    let Some(aws) = aws("an_update_over_the_item_limit_is_kept_as_valid_pieces").await else {
        return;
    };
    let table = aws.fresh_table().await;
    let store = DynamoDocStore::new(aws.dynamodb.clone(), table.name());
    let room = unique("room-large");
    // 1.5 MB of text in one update: over DynamoDB's 400 KB item limit several times.
    let doc = Doc::new();
    let text = doc.get_or_insert_text("t");
    let content: String = (0..150_000).map(|i| format!("{:09}\n", i)).collect();
    text.insert(&mut doc.transact_mut(), 0, &content);
    let update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    assert!(update.len() > 1_400_000);
    store.append(&room, b"small", b"").await.unwrap();
    let appended = store.append(&room, &update, b"").await.unwrap();
    let read = store.read_log(&room).await.unwrap();
    assert!(
        read.updates.len() > 4,
        "cut into entries: {}",
        read.updates.len()
    );
    assert_eq!(appended.entries, read.updates.len());
    assert_eq!(read.last, Some(appended.position));
    let rebuilt = Doc::new();
    for piece in &read.updates[1..] {
        rebuilt
            .transact_mut()
            .apply_update(Update::decode_v1(piece).expect("a valid update"))
            .expect("applies");
    }
    let got = rebuilt
        .get_or_insert_text("t")
        .get_string(&rebuilt.transact());
    assert_eq!(got, content, "the pieces rebuild the update");
    table.delete().await;
}
