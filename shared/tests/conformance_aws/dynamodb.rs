//! The DynamoDB connection store: the suite without Scans, pages, expiry, batching, attributes,
//! the room record.
use aws_sdk_dynamodb::types::AttributeValue;
use ylambda_shared::adapters::aws::DynamoConnectionStore;
use ylambda_shared::adapters::unix_now_secs;
use ylambda_shared::conformance::backends::{say, TestTable};
use ylambda_shared::conformance::{self, in_an_hour, membership, unique};
use ylambda_shared::ports::{ConnectionStore, Scope, SnapshotRecord};

use crate::harness::*;

#[tokio::test]
async fn dynamodb_connection_store_conforms_without_scans() {
    let Some(aws) = aws("dynamodb_connection_store_conforms_without_scans").await else {
        return;
    };
    let table = aws.fresh_table().await;
    let audit = QueryAudit::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws.counter
            .attach_dynamodb(aws_sdk_dynamodb::config::Builder::from(&aws.config))
            .interceptor(audit.clone())
            .build(),
    );
    conformance::connection_store_suite(&DynamoConnectionStore::new(client, table.name())).await;

    let counts = aws.counter.snapshot();
    say(&format!(
        "DynamoDB requests for the connection store suite: {counts:?}"
    ));
    // The counter must see the traffic, or "no Scan" below would prove nothing.
    for action in [
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:BatchWriteItem",
    ] {
        assert!(
            counts.get(action).copied().unwrap_or(0) > 0,
            "{action} not counted: {counts:?}"
        );
    }
    assert!(
        !counts.keys().any(|k| k.ends_with(":Scan")),
        "the connection store issued a Scan: {counts:?}"
    );
    let queries = audit.queries.lock().unwrap().clone();
    assert!(queries.iter().any(|(index, _)| *index), "no gs1 query seen");
    assert!(
        queries.iter().any(|(index, _)| !*index),
        "no table query seen"
    );
    for (index, consistent) in queries {
        // Table queries (members) must be strongly consistent (ARCHITECTURE.md invariant 2); GSIs reject it.
        assert_eq!(
            consistent, !index,
            "Query index={index} ConsistentRead={consistent}"
        );
    }
    table.delete().await;
}

#[tokio::test]
async fn dynamodb_conforms_with_small_pages() {
    let Some(aws) = aws("dynamodb_conforms_with_small_pages").await else {
        return;
    };
    let table = aws.fresh_table().await;
    let store = DynamoConnectionStore::new(aws.dynamodb.clone(), table.name()).with_page_limit(7);
    conformance::connection_store_suite(&store).await;
    table.delete().await;
}

#[tokio::test]
async fn dynamodb_pages_are_followed() {
    let Some(aws) = aws("dynamodb_pages_are_followed").await else {
        return;
    };
    let table = aws.fresh_table().await;
    let store = DynamoConnectionStore::new(aws.dynamodb.clone(), table.name()).with_page_limit(2);

    // Seven members of one scope: pages of 2, 2, 2, 1.
    let topic = Scope::Topic(unique("paged"));
    let ids: Vec<String> = (0..7).map(|i| format!("c{i}")).collect();
    for id in &ids {
        store
            .join(membership(&topic, id, in_an_hour()))
            .await
            .unwrap();
    }
    aws.counter.reset();
    let mut got: Vec<String> = store
        .members(&topic)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.connection_id)
        .collect();
    got.sort();
    assert_eq!(got, ids);
    assert!(
        aws.counter.get("dynamodb:Query") >= 4,
        "7 members in pages of 2 need 4 queries: {:?}",
        aws.counter.snapshot()
    );

    // One connection in seven scopes: the gs1 query pages the same way.
    let conn = unique("conn");
    let scopes: Vec<Scope> = (0..7)
        .map(|i| Scope::Room(unique(&format!("r{i}"))))
        .collect();
    for scope in &scopes {
        store
            .join(membership(scope, &conn, in_an_hour()))
            .await
            .unwrap();
    }
    aws.counter.reset();
    assert_eq!(store.memberships_of(&conn).await.unwrap().len(), 7);
    assert!(aws.counter.get("dynamodb:Query") >= 4);
    assert_eq!(store.remove_connection(&conn).await.unwrap().len(), 7);
    assert!(store.memberships_of(&conn).await.unwrap().is_empty());
    table.delete().await;
}

#[tokio::test]
async fn dynamodb_follows_one_megabyte_pages() {
    let Some(aws) = aws("dynamodb_follows_one_megabyte_pages").await else {
        return;
    };
    let table = aws.fresh_table().await;
    // No page limit: 14 items of ~100 KB exceed the 1 MB a Query page can hold.
    let store = DynamoConnectionStore::new(aws.dynamodb.clone(), table.name());
    let room = Scope::Room(unique("huge"));
    for i in 0..14 {
        let mut m = membership(&room, &format!("c{i:02}"), in_an_hour());
        m.endpoint = format!("https://{}/prod", "x".repeat(100_000));
        store.join(m).await.unwrap();
    }
    aws.counter.reset();
    assert_eq!(store.members(&room).await.unwrap().len(), 14);
    assert!(
        aws.counter.get("dynamodb:Query") >= 2,
        "1.4 MB cannot come in one page: {:?}",
        aws.counter.snapshot()
    );
    table.delete().await;
}

#[tokio::test]
async fn dynamodb_expired_records_hidden_but_removed() {
    let Some(aws) = aws("dynamodb_expired_records_hidden_but_removed").await else {
        return;
    };
    let table = aws.fresh_table().await;
    let store = DynamoConnectionStore::new(aws.dynamodb.clone(), table.name());
    let room = Scope::Room(unique("room"));
    let other = Scope::Room(unique("room"));
    let conn = unique("conn");
    let expired = membership(&room, &conn, unix_now_secs().saturating_sub(5));
    store.join(expired.clone()).await.unwrap();
    store
        .join(membership(&other, &conn, in_an_hour()))
        .await
        .unwrap();

    assert!(store.members(&room).await.unwrap().is_empty());
    let live = store.memberships_of(&conn).await.unwrap();
    assert_eq!(
        live.iter().map(|m| &m.scope).collect::<Vec<_>>(),
        vec![&other]
    );
    // The emulator (like DynamoDB for up to days) still holds the expired record.
    assert!(
        aws.raw_item(table.name(), &room, &conn).await.is_some(),
        "expired item vanished before clean-up"
    );

    let mut removed = store.remove_connection(&conn).await.unwrap();
    removed.sort_by(|a, b| a.scope.cmp(&b.scope));
    assert_eq!(removed.len(), 2, "expired records are cleaned up too");
    assert!(removed.contains(&expired));
    assert!(aws.raw_item(table.name(), &room, &conn).await.is_none());
    assert!(aws.raw_item(table.name(), &other, &conn).await.is_none());
    table.delete().await;
}

#[tokio::test]
async fn dynamodb_remove_connection_batches_by_25() {
    let Some(aws) = aws("dynamodb_remove_connection_batches_by_25").await else {
        return;
    };
    let table = aws.fresh_table().await;
    let store = DynamoConnectionStore::new(aws.dynamodb.clone(), table.name());
    let conn = unique("conn");
    // Topics: a room membership is deleted in a transaction with its room's activity.
    let scopes: Vec<Scope> = (0..30).map(|_| Scope::Topic(unique("t"))).collect();
    for scope in &scopes {
        store
            .join(membership(scope, &conn, in_an_hour()))
            .await
            .unwrap();
    }
    aws.counter.reset();
    assert_eq!(store.remove_connection(&conn).await.unwrap().len(), 30);
    assert_eq!(
        aws.counter.get("dynamodb:BatchWriteItem"),
        2,
        "30 deletes are 25 + 5: {:?}",
        aws.counter.snapshot()
    );
    assert_eq!(aws.counter.get("dynamodb:Scan"), 0);
    for scope in &scopes {
        assert!(aws.raw_item(table.name(), scope, &conn).await.is_none());
    }
    table.delete().await;
}

#[tokio::test]
async fn membership_attributes_round_trip_through_dynamodb() {
    let Some(aws) = aws("membership_attributes_round_trip_through_dynamodb").await else {
        return;
    };
    let table = aws.fresh_table().await;
    let store = DynamoConnectionStore::new(aws.dynamodb.clone(), table.name());
    let mut m = membership(
        &Scope::Room(unique("r#with#hashes")),
        "Ab+c/d=",
        in_an_hour(),
    );
    m.readonly = true;
    m.joined_at_ms = u64::MAX;
    store.join(m.clone()).await.unwrap();
    assert_eq!(store.members(&m.scope).await.unwrap(), vec![m.clone()]);
    let raw = aws
        .raw_item(table.name(), &m.scope, &m.connection_id)
        .await
        .unwrap();
    assert_eq!(
        raw.get("data"),
        Some(&AttributeValue::S(u64::MAX.to_string()))
    );
    assert_eq!(raw.get("readonly"), Some(&AttributeValue::Bool(true)));
    assert_eq!(
        raw.get("ttl"),
        Some(&AttributeValue::N(m.expires_at.to_string()))
    );
    table.delete().await;
}

#[tokio::test]
async fn room_record_stays_out_of_the_connection_index() {
    let Some(aws) = aws("room_record_stays_out_of_the_connection_index").await else {
        return;
    };
    let table = aws.fresh_table().await;
    let store = DynamoConnectionStore::new(aws.dynamodb.clone(), table.name());
    let rooms: Vec<String> = (0..3).map(|_| unique("meta")).collect();
    for room in &rooms {
        let record = SnapshotRecord {
            at_ms: 5,
            updates_merged: 2,
            version: "\"e\"".into(),
            bytes: 9,
        };
        store.record_snapshot(room, &record).await.unwrap();
    }
    let raw = aws
        .dynamodb
        .get_item()
        .table_name(table.name())
        .key("pk", AttributeValue::S(format!("room#{}", rooms[0])))
        .key("sk", AttributeValue::S("meta".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("room record stored as room#R / meta");
    // Without `data` the item is not in gs1: every room's record would otherwise share one
    // index partition (`sk` = "meta").
    assert!(!raw.contains_key("data"), "room record has data: {raw:?}");
    assert!(!raw.contains_key("ttl"), "room record must not expire");
    assert_eq!(raw.get("updates"), Some(&AttributeValue::N("2".into())));
    let indexed = aws
        .dynamodb
        .query()
        .table_name(table.name())
        .index_name("gs1")
        .key_condition_expression("sk = :meta")
        .expression_attribute_values(":meta", AttributeValue::S("meta".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(indexed.count, 0, "room records found in gs1: {indexed:?}");
    table.delete().await;
}

#[tokio::test]
async fn a_test_table_is_deleted_even_when_its_test_panics() {
    let Some(aws) = aws("a_test_table_is_deleted_even_when_its_test_panics").await else {
        return;
    };
    let created = std::sync::Arc::new(std::sync::Mutex::new(None));
    let name = created.clone();
    let dynamodb = aws.dynamodb.clone();
    let failing_test = tokio::spawn(async move {
        let table = TestTable::create(&dynamodb, "ylambda-test-panic").await;
        *name.lock().unwrap() = Some(table.name().to_string());
        panic!("deliberate panic (expected in the output): the test using the table fails");
    });
    assert!(failing_test.await.unwrap_err().is_panic());
    let table = created
        .lock()
        .unwrap()
        .clone()
        .expect("the table was created");
    let described = aws
        .dynamodb
        .describe_table()
        .table_name(&table)
        .send()
        .await;
    assert!(
        described
            .as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "table {table} still exists: {described:?}"
    );
}
