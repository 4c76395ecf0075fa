//! The AWS adapters against the port conformance suites, on moto (or any emulator named by
//! `AWS_ENDPOINT_URL`), plus the behaviour the suites cannot see: pagination, expiry, batching,
//! racing snapshot writers, no Scan, and the management API's error mapping.
//!
//! ```sh
//! eval "$(bash scripts/local-aws.sh start)"
//! YLAMBDA_TEST_AWS=1 cargo test -p ylambda-shared --test conformance_aws
//! bash scripts/local-aws.sh stop
//! ```
//! Without `YLAMBDA_TEST_AWS` the backend tests say so on stderr and return; under `CI` that is a
//! failure (`ci_runs_the_aws_suites`), so a misconfigured CI cannot hide them.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_types::SdkConfig;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use ylambda_shared::adapters::aws::{
    create_table, s3_config, sdk_config, DynamoConnectionStore, ManagementApiFanout,
    OperationCounter, S3SnapshotStore,
};
use ylambda_shared::adapters::unix_now_secs;
use ylambda_shared::conformance::backends::{
    aws_tests_enabled, in_ci, say, TestTable, AWS_TESTS_VAR,
};
use ylambda_shared::conformance::{self, in_an_hour, membership, unique};
use ylambda_shared::ports::{
    ConnectionStore, Fanout, FanoutError, LogPosition, PutOutcome, Scope, Snapshot, SnapshotRecord,
    SnapshotStore,
};

/// Clients for one test, all counting their requests.
struct Aws {
    config: SdkConfig,
    counter: OperationCounter,
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
}

/// The emulator's clients, or `None` (after saying why) when the backend tests are not enabled.
async fn aws(test: &str) -> Option<Aws> {
    if !aws_tests_enabled(test) {
        return None;
    }
    let config = sdk_config().await;
    let counter = OperationCounter::new();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        counter
            .attach_dynamodb(aws_sdk_dynamodb::config::Builder::from(&config))
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(counter.attach_s3(s3_config(&config)).build());
    Some(Aws {
        config,
        counter,
        dynamodb,
        s3,
    })
}

impl Aws {
    /// A table unique to this run, created through the adapter's own helper.
    async fn fresh_table(&self) -> TestTable {
        let table = TestTable::create(&self.dynamodb, "ylambda-test").await;
        // Idempotent: a second call checks the existing table and succeeds.
        create_table(&self.dynamodb, table.name())
            .await
            .unwrap_or_else(|e| panic!("create_table {} again: {e}", table.name()));
        self.counter.reset();
        table
    }

    async fn fresh_bucket(&self) -> String {
        let bucket = unique("ylambda-test");
        self.s3
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "create bucket {bucket}: {}",
                    aws_smithy_types::error::display::DisplayErrorContext(e)
                )
            });
        self.counter.reset();
        bucket
    }

    /// The raw item of one membership, bypassing the adapter's expiry filter.
    async fn raw_item(
        &self,
        table: &str,
        scope: &Scope,
        connection_id: &str,
    ) -> Option<HashMap<String, AttributeValue>> {
        self.dynamodb
            .get_item()
            .table_name(table)
            .consistent_read(true)
            .key("pk", AttributeValue::S(scope.key()))
            .key("sk", AttributeValue::S(format!("conn#{connection_id}")))
            .send()
            .await
            .expect("GetItem")
            .item
    }
}

/// Records, for every DynamoDB Query sent, whether it named an index and whether it asked for a
/// consistent read, read from the request body as sent.
#[derive(Clone, Debug, Default)]
struct QueryAudit {
    queries: Arc<Mutex<Vec<(bool, bool)>>>,
}

impl Intercept for QueryAudit {
    fn name(&self) -> &'static str {
        "QueryAudit"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        if request.headers().get("x-amz-target") == Some("DynamoDB_20120810.Query") {
            let body: serde_json::Value =
                serde_json::from_slice(request.body().bytes().unwrap_or_default())?;
            let index = body.get("IndexName").is_some();
            let consistent = body.get("ConsistentRead") == Some(&serde_json::Value::Bool(true));
            self.queries.lock().unwrap().push((index, consistent));
        }
        Ok(())
    }
}

#[test]
fn ci_runs_the_aws_suites() {
    assert!(
        !in_ci() || std::env::var_os(AWS_TESTS_VAR).is_some(),
        "CI is set but YLAMBDA_TEST_AWS is not: the AWS adapter suites would be skipped. \
         Start moto with `eval \"$(bash scripts/local-aws.sh start)\"` and set YLAMBDA_TEST_AWS=1."
    );
}

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
    let scopes: Vec<Scope> = (0..30)
        .map(|i| {
            if i % 2 == 0 {
                Scope::Room(unique("r"))
            } else {
                Scope::Topic(unique("t"))
            }
        })
        .collect();
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

/// A stand-in `@connections` API: answers 410 for ids containing `gone`, 403 for `forbidden`,
/// 200 otherwise, and records `(method, path, body)` of every request.
async fn fake_management_api() -> (String, Arc<Mutex<Vec<(String, String, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut reader = BufReader::new(read);
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let mut parts = request_line.split_whitespace();
                    let method = parts.next().unwrap_or_default().to_string();
                    let path = parts.next().unwrap_or_default().to_string();
                    let response = if path.contains("gone") {
                        "HTTP/1.1 410 Gone\r\nx-amzn-ErrorType: GoneException\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
                    } else if path.contains("forbidden") {
                        "HTTP/1.1 403 Forbidden\r\nx-amzn-ErrorType: ForbiddenException\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
                    } else {
                        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                    };
                    log.lock().unwrap().push((
                        method,
                        path,
                        String::from_utf8_lossy(&body).into_owned(),
                    ));
                    if write.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{address}/prod"), seen)
}

/// Needs no emulator: a local stand-in answers the management API.
#[tokio::test]
async fn management_fanout_posts_and_maps_errors() {
    let (endpoint, seen) = fake_management_api().await;
    let config = SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new("us-east-1"))
        .credentials_provider(aws_types::sdk_config::SharedCredentialsProvider::new(
            aws_sdk_apigatewaymanagement::config::Credentials::new(
                "test", "test", None, None, "test",
            ),
        ))
        .build();
    let counter = OperationCounter::new();
    let fanout = ManagementApiFanout::new(&config).with_counter(counter.clone());

    fanout.post(&endpoint, "Ab+c/d=", "hello").await.unwrap();
    match fanout.post(&endpoint, "gone-1=", "x").await {
        Err(FanoutError::Gone(id)) => assert_eq!(id, "gone-1="),
        other => panic!("410 must map to Gone: {other:?}"),
    }
    match fanout.post(&endpoint, "forbidden", "x").await {
        Err(FanoutError::Failed(why)) => {
            assert!(why.contains("ForbiddenException"), "{why}")
        }
        other => panic!("403 must map to Failed: {other:?}"),
    }
    fanout.close(&endpoint, "Ab+c/d=").await.unwrap();
    fanout
        .close(&endpoint, "gone-2")
        .await
        .expect("closing a gone connection is fine");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen[0],
        (
            "POST".to_string(),
            "/prod/@connections/Ab%2Bc%2Fd%3D".to_string(),
            "hello".to_string()
        ),
        "the connection id is percent-encoded under the stage path"
    );
    assert_eq!(seen[3].0, "DELETE");
    assert_eq!(
        counter.get("apigatewaymanagementapi:PostToConnection"),
        3,
        "{:?}",
        counter.snapshot()
    );
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
