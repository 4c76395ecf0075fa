//! Real API Gateway event fixtures through the Lambdas' entry point (`handle_route`) on the AWS
//! backends (moto for DynamoDB and S3, redis-server), counting what each user action costs:
//! DynamoDB and S3 requests (by operation, through an SDK interceptor), Redis commands (from
//! `INFO commandstats`) and posts to connections. Prints the table the README's cost model
//! quotes, proves no Scan is ever issued, and pins the counts so a regression shows.
//!
//! ```sh
//! eval "$(bash scripts/local-aws.sh start)"; eval "$(bash scripts/local-redis.sh start)"
//! YLAMBDA_TEST_AWS=1 cargo test -p ylambda-shared --test aws_cost_model -- --nocapture
//! ```
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use ylambda_shared::adapters::aws::{
    s3_config, sdk_config, DynamoConnectionStore, DynamoDocStore, OperationCounter, S3SnapshotStore,
};
use ylambda_shared::adapters::RedisDocStore;
use ylambda_shared::config::{Config, DocStoreKind};
use ylambda_shared::conformance::backends::{
    aws_tests_enabled, configured_redis_url, in_ci, say, TestTable,
};
use ylambda_shared::handler::{Handler, Ports};
use ylambda_shared::lambda::{handle_route, Route};
use ylambda_shared::ports::{DocStore, Fanout, FanoutError, SnapshotStore};
use ylambda_shared::protocol::pieces::split_into_pieces;
use ylambda_shared::protocol::transport::encode_frame;
use ylambda_shared::protocol::ywebsocket;

const CONNECT: &[u8] = include_bytes!("fixtures/apigw-websocket-connect.json");
const DEFAULT: &[u8] = include_bytes!("fixtures/apigw-websocket-default.json");
const DISCONNECT: &[u8] = include_bytes!("fixtures/apigw-websocket-disconnect.json");

#[derive(Default)]
struct CountingFanout(Mutex<u64>);

#[async_trait]
impl Fanout for CountingFanout {
    async fn post(&self, _endpoint: &str, _id: &str, _text: &str) -> Result<(), FanoutError> {
        *self.0.lock().unwrap() += 1;
        Ok(())
    }
    async fn close(&self, _endpoint: &str, _id: &str) -> Result<(), FanoutError> {
        Ok(())
    }
}

/// Inserts `text` at `at` into `doc`'s text `t`: the y-websocket update frame a client sends.
fn text_edit(doc: &yrs::Doc, at: u32, text: &str) -> String {
    use yrs::Transact;
    let t = doc.get_or_insert_text("t");
    let mut txn = doc.transact_mut();
    yrs::Text::insert(&t, &mut txn, at, text);
    encode_frame(&ywebsocket::encode_update(&txn.encode_update_v1()))
}

/// A fixture event with this connection id, query string and body.
fn event(
    fixture: &[u8],
    connection_id: &str,
    query: Option<(&str, &str)>,
    body: Option<String>,
) -> ApiGatewayWebsocketProxyRequest {
    let mut json: serde_json::Value = serde_json::from_slice(fixture).unwrap();
    json["requestContext"]["connectionId"] = connection_id.into();
    match query {
        Some((k, v)) => {
            json["queryStringParameters"] = serde_json::json!({ k: v });
            json["multiValueQueryStringParameters"] = serde_json::json!({ k: [v] });
        }
        None => {
            if let Some(o) = json.as_object_mut() {
                o.remove("queryStringParameters");
                o.remove("multiValueQueryStringParameters");
            }
        }
    }
    if let Some(body) = body {
        json["body"] = body.into();
    }
    serde_json::from_value(json).unwrap()
}

async fn redis_commands(conn: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (name, stats) = rest.split_once(':')?;
            let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .filter(|(name, _)| name != "info")
        .collect()
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

fn render(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "-".into();
    }
    counts
        .iter()
        .map(|(k, v)| {
            let short = k.rsplit(':').next().unwrap_or(k);
            format!("{v} {short}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One measured action: name, AWS operations, Redis commands, posts.
type Row = (String, BTreeMap<String, u64>, BTreeMap<String, u64>, u64);

struct Meter {
    aws: OperationCounter,
    /// The Redis the doc store uses (Redis profile only).
    redis: Option<redis::aio::MultiplexedConnection>,
    posts: Arc<CountingFanout>,
    rows: Vec<Row>,
}

impl Meter {
    async fn measure<F: std::future::Future<Output = u16>>(&mut self, action: &str, f: F) {
        let aws_before = self.aws.snapshot();
        let redis_before = self.redis_commands().await;
        let posts_before = *self.posts.0.lock().unwrap();
        let status = f.await;
        assert_eq!(status, 200, "{action} failed");
        let aws = delta(&self.aws.snapshot(), &aws_before);
        let redis = delta(&self.redis_commands().await, &redis_before);
        let posts = *self.posts.0.lock().unwrap() - posts_before;
        self.rows.push((action.to_string(), aws, redis, posts));
    }

    async fn redis_commands(&mut self) -> BTreeMap<String, u64> {
        match &mut self.redis {
            Some(conn) => redis_commands(conn).await,
            None => BTreeMap::new(),
        }
    }

    fn row(&self, action: &str) -> &Row {
        self.rows.iter().find(|r| r.0 == action).unwrap()
    }
}

#[tokio::test]
async fn cost_per_user_action_and_no_scan_on_redis() {
    if !aws_tests_enabled("cost_per_user_action_and_no_scan_on_redis") {
        assert!(!in_ci(), "CI must run the AWS cost model");
        return;
    }
    cost_model(DocStoreKind::Redis).await;
}

#[tokio::test]
async fn cost_per_user_action_and_no_scan_on_dynamodb() {
    if !aws_tests_enabled("cost_per_user_action_and_no_scan_on_dynamodb") {
        assert!(!in_ci(), "CI must run the AWS cost model");
        return;
    }
    cost_model(DocStoreKind::Dynamodb).await;
}

/// Every user action through the handler on one profile, counted, printed and pinned.
async fn cost_model(profile: DocStoreKind) {
    let sdk = sdk_config().await;
    let aws = OperationCounter::new();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws.attach_dynamodb(aws_sdk_dynamodb::config::Builder::from(&sdk))
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(aws.attach_s3(s3_config(&sdk)).build());
    let table = TestTable::create(&dynamodb, "ylambda-cost").await;
    let bucket = format!("ylambda-cost-{:08x}", rand::random::<u32>());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let snapshots = Arc::new(S3SnapshotStore::new(
        s3.clone(),
        bucket.clone(),
        "snapshots/",
    ));
    let posts = Arc::new(CountingFanout::default());
    let (docs, redis): (Arc<dyn DocStore>, _) = match profile {
        DocStoreKind::Redis => {
            let url = configured_redis_url().expect("YLAMBDA_REDIS_URL");
            let conn = redis::Client::open(url.as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            (
                Arc::new(RedisDocStore::connect(&url).await.unwrap()),
                Some(conn),
            )
        }
        DocStoreKind::Dynamodb => (
            Arc::new(DynamoDocStore::new(dynamodb.clone(), table.name())),
            None,
        ),
    };
    let handler = Handler::new(
        Ports {
            connections: Arc::new(DynamoConnectionStore::new(dynamodb.clone(), table.name())),
            docs: docs.clone(),
            snapshots: snapshots.clone(),
            fanout: posts.clone(),
        },
        // The dashboard's watch flag is read once, below, and trusted for the whole run: the
        // rows then show what an event costs while nobody watches (nothing).
        Config {
            dashboard_check: std::time::Duration::from_secs(3600),
            ..Config::default()
        },
    );
    assert!(!handler.check_dashboard().await, "nobody watches yet");
    let mut meter = Meter {
        aws: aws.clone(),
        redis,
        posts,
        rows: Vec::new(),
    };
    let room = format!("cost room {:08x}", rand::random::<u32>());
    let h = &handler;
    let send = |id: &'static str, route: Route, e: ApiGatewayWebsocketProxyRequest| async move {
        let _ = id;
        handle_route(h, route, e).await.status_code as u16
    };

    let doc = yrs::Doc::with_client_id(1);
    let text = {
        use yrs::Transact;
        let t = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        yrs::Text::insert(&t, &mut txn, 0, "hello");
        txn.encode_update_v1()
    };
    let sync_step1 = encode_frame(&ywebsocket::encode_sync_step1(&[0]));
    let update = encode_frame(&ywebsocket::encode_update(&text));
    let awareness = |client: u64, clock: u32| {
        encode_frame(&ywebsocket::encode_awareness(
            &ywebsocket::encode_awareness_update(&[ywebsocket::AwarenessState {
                client,
                clock,
                json: r#"{"user":{"name":"a"}}"#.into(),
            }]),
        ))
    };

    meter
        .measure(
            "doc: $connect",
            send(
                "a",
                Route::Connect,
                event(CONNECT, "A=", Some(("room", &room)), None),
            ),
        )
        .await;
    meter
        .measure(
            "doc: first sync (empty room)",
            send(
                "a",
                Route::Default,
                event(DEFAULT, "A=", None, Some(sync_step1.clone())),
            ),
        )
        .await;
    meter
        .measure(
            "doc: awareness change (1 in room)",
            send(
                "a",
                Route::Default,
                event(DEFAULT, "A=", None, Some(awareness(1, 1))),
            ),
        )
        .await;
    send(
        "b",
        Route::Connect,
        event(CONNECT, "B=", Some(("room", &room)), None),
    )
    .await;
    meter
        .measure(
            "doc: join sync (2 in room)",
            send(
                "b",
                Route::Default,
                event(DEFAULT, "B=", None, Some(sync_step1.clone())),
            ),
        )
        .await;
    // B's join gave the room a new roster version: the first update after it reads the members.
    meter
        .measure(
            "doc: first update after a join (2 in room)",
            send(
                "a",
                Route::Default,
                event(DEFAULT, "A=", None, Some(update.clone())),
            ),
        )
        .await;
    // The steady state: members unchanged since this handler last read them (invariant 21).
    let steady_update = text_edit(&doc, 0, "steady ");
    meter
        .measure(
            "doc: update (2 in room)",
            send(
                "a",
                Route::Default,
                event(DEFAULT, "A=", None, Some(steady_update)),
            ),
        )
        .await;
    // A 1 MiB paste from a browser: base64 in pieces that each fit API Gateway's 32 KB frame,
    // one $default invocation per piece.
    let paste_pieces = {
        use yrs::Transact;
        let t = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        yrs::Text::insert(&t, &mut txn, 0, &"paste ".repeat(1024 * 1024 / 6));
        let frame = encode_frame(&ywebsocket::encode_update(&txn.encode_update_v1()));
        // The fixtures' connection ids repeat across runs: the message id must not.
        let message_id = format!("paste{:08x}", rand::random::<u32>());
        split_into_pieces(&frame, &message_id, 32 * 1024).expect("pieces")
    };
    let paste_action = format!(
        "doc: 1 MiB paste in {} pieces (2 in room)",
        paste_pieces.len()
    );
    meter
        .measure(&paste_action, async {
            for piece in &paste_pieces {
                let status = send(
                    "a",
                    Route::Default,
                    event(DEFAULT, "A=", None, Some(piece.clone())),
                )
                .await;
                if status != 200 {
                    return status;
                }
            }
            200
        })
        .await;
    // A Lambda instance that has not seen connection A yet looks its room up in the index first.
    let cold = Handler::new(handler.ports().clone(), Config::default());
    let second_update = text_edit(&doc, 5, " again");
    meter
        .measure(
            "doc: update (2 in room), Lambda instance new to the connection",
            async {
                handle_route(
                    &cold,
                    Route::Default,
                    event(DEFAULT, "A=", None, Some(second_update)),
                )
                .await
                .status_code as u16
            },
        )
        .await;
    // A dashboard viewer arrives: an update now also reports to the feed.
    handler.keep_watching(60_000).await.unwrap();
    let watched_update = text_edit(&doc, 0, "> ");
    meter
        .measure(
            "doc: update (2 in room), dashboard watched",
            send(
                "a",
                Route::Default,
                event(DEFAULT, "A=", None, Some(watched_update)),
            ),
        )
        .await;
    docs.keep_watching(1).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(!handler.check_dashboard().await, "the viewer left");
    meter
        .measure(
            "doc: awareness change (2 in room)",
            send(
                "a",
                Route::Default,
                event(DEFAULT, "A=", None, Some(awareness(1, 2))),
            ),
        )
        .await;
    meter
        .measure(
            "doc: forwarded awareness (dropped)",
            send(
                "b",
                Route::Default,
                event(DEFAULT, "B=", None, Some(awareness(1, 2))),
            ),
        )
        .await;
    meter
        .measure(
            "doc: $disconnect (1 left)",
            send("b", Route::Disconnect, event(DISCONNECT, "B=", None, None)),
        )
        .await;
    meter
        .measure(
            "doc: $disconnect (last: compaction)",
            send("a", Route::Disconnect, event(DISCONNECT, "A=", None, None)),
        )
        .await;
    send(
        "c",
        Route::Connect,
        event(CONNECT, "C=", Some(("room", &room)), None),
    )
    .await;
    meter
        .measure(
            "doc: sync from snapshot",
            send(
                "c",
                Route::Default,
                event(DEFAULT, "C=", None, Some(sync_step1.clone())),
            ),
        )
        .await;
    send("c", Route::Disconnect, event(DISCONNECT, "C=", None, None)).await;

    let topic = format!("cost-topic-{:08x}", rand::random::<u32>());
    let subscribe = format!(r#"{{"type":"subscribe","topics":["{topic}"]}}"#);
    let publish = format!(r#"{{"type":"publish","topic":"{topic}","data":{{"type":"signal"}}}}"#);
    meter
        .measure(
            "signaling: $connect",
            send("s", Route::Connect, event(CONNECT, "S=", None, None)),
        )
        .await;
    meter
        .measure(
            "signaling: subscribe (1 topic)",
            send(
                "s",
                Route::Default,
                event(DEFAULT, "S=", None, Some(subscribe.clone())),
            ),
        )
        .await;
    send("t", Route::Connect, event(CONNECT, "T=", None, None)).await;
    send(
        "t",
        Route::Default,
        event(DEFAULT, "T=", None, Some(subscribe)),
    )
    .await;
    meter
        .measure(
            "signaling: publish (2 subscribers)",
            send(
                "s",
                Route::Default,
                event(DEFAULT, "S=", None, Some(publish)),
            ),
        )
        .await;
    meter
        .measure(
            "signaling: ping",
            send(
                "s",
                Route::Default,
                event(DEFAULT, "S=", None, Some(r#"{"type":"ping"}"#.into())),
            ),
        )
        .await;
    meter
        .measure(
            "signaling: $disconnect",
            send("s", Route::Disconnect, event(DISCONNECT, "S=", None, None)),
        )
        .await;

    say(&format!(
        "\nCost per user action, doc store {profile:?} (DynamoDB / Redis commands / S3 / posts to connections):"
    ));
    say("| action | DynamoDB | Redis | S3 | posts |");
    say("| --- | --- | --- | --- | --- |");
    for (action, aws_ops, redis_ops, posts) in &meter.rows {
        let dynamo: BTreeMap<_, _> = aws_ops
            .iter()
            .filter(|(k, _)| k.starts_with("dynamodb:"))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let s3ops: BTreeMap<_, _> = aws_ops
            .iter()
            .filter(|(k, _)| k.starts_with("s3:"))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        say(&format!(
            "| {action} | {} | {} | {} | {posts} |",
            render(&dynamo),
            render(redis_ops),
            render(&s3ops)
        ));
    }

    // No action ever scans.
    assert_eq!(
        aws.get("dynamodb:Scan"),
        0,
        "a Scan was issued: {:?}",
        aws.snapshot()
    );
    // The promises the cost model rests on.
    let (_, connect, connect_redis, _) = meter.row("doc: $connect");
    assert_eq!(
        connect.get("dynamodb:TransactWriteItems"),
        Some(&1),
        "the membership, the room's activity and the event in one transaction: {connect:?}"
    );
    assert_eq!(
        connect.get("dynamodb:Query"),
        Some(&1),
        "the room's size is read once (YLAMBDA_MAX_CONNECTIONS_PER_ROOM): {connect:?}"
    );
    assert_eq!(
        connect.len(),
        2,
        "connect costs one write and one read: {connect:?}"
    );
    match profile {
        DocStoreKind::Redis => assert_eq!(
            connect_redis,
            &BTreeMap::from([("set".to_string(), 1)]),
            "connect sets the room's roster version, nothing else: {connect_redis:?}"
        ),
        DocStoreKind::Dynamodb => assert!(
            connect_redis.is_empty(),
            "connect touches no Redis: {connect_redis:?}"
        ),
    }
    let (_, upd, upd_redis, upd_posts) = meter.row("doc: update (2 in room)");
    let (_, cold_upd, _, cold_posts) =
        meter.row("doc: update (2 in room), Lambda instance new to the connection");
    let (_, paste, paste_redis, paste_posts) = meter.row(&paste_action);
    // The log's reads on the DynamoDB profile: its two ends, one Query each.
    let log_reads = match profile {
        DocStoreKind::Redis => 0,
        DocStoreKind::Dynamodb => 2,
    };
    // The room of a connection this handler has seen is remembered; so are the members while
    // the roster version the Redis append reports is unchanged (invariant 21). The DynamoDB
    // profile keeps no roster version and reads the members on every update.
    let member_reads = match profile {
        DocStoreKind::Redis => 0,
        DocStoreKind::Dynamodb => 1,
    };
    let steady_queries = member_reads + log_reads;
    assert_eq!(
        upd.get("dynamodb:Query").copied().unwrap_or(0),
        steady_queries,
        "members unless remembered + the log: {upd:?}"
    );
    // The dashboard costs nothing while nobody watches (every row above and the priced counts
    // in measured-calls.json are unchanged by it), and one feed write per update while someone
    // does (one per room and second, see handler/dashboard.rs).
    let (_, watched, watched_redis, _) = meter.row("doc: update (2 in room), dashboard watched");
    match profile {
        DocStoreKind::Redis => {
            assert_eq!(upd_redis.get("xadd"), Some(&1), "{upd_redis:?}");
            assert_eq!(
                watched_redis.get("xadd"),
                Some(&2),
                "log + feed: {watched_redis:?}"
            );
        }
        DocStoreKind::Dynamodb => assert_eq!(
            watched.get("dynamodb:PutItem"),
            Some(&2),
            "log entry + feed event: {watched:?}"
        ),
    }
    let (_, first_upd, _, _) = meter.row("doc: first update after a join (2 in room)");
    assert_eq!(
        first_upd.get("dynamodb:Query"),
        Some(&(1 + log_reads)),
        "a new roster version: the members are read: {first_upd:?}"
    );
    assert_eq!(
        cold_upd.get("dynamodb:Query"),
        Some(&(2 + log_reads)),
        "room lookup + members + the log: {cold_upd:?}"
    );
    assert_eq!(*cold_posts, 1);
    assert!(
        !upd.keys().any(|k| k.starts_with("s3:")),
        "an update touches no S3: {upd:?}"
    );
    assert_eq!(*upd_posts, 1, "an update goes to the one other connection");
    assert!(
        *paste_posts > 1,
        "the relayed paste is cut into messages that fit: {paste_posts}"
    );
    match profile {
        DocStoreKind::Redis => {
            assert_eq!(upd_redis.get("xadd"), Some(&1), "{upd_redis:?}");
            assert_eq!(
                upd_redis.get("incr"),
                Some(&1),
                "one shared rate count per message (YLAMBDA_MAX_MESSAGES_PER_SEC): {upd_redis:?}"
            );
            assert_eq!(
                upd_redis.get("exec"),
                Some(&1),
                "one pipelined append: {upd_redis:?}"
            );
            // The piece script is the only caller of HEXISTS: one per piece, one round trip each
            // (the paste also passes the compaction threshold, whose scripts are counted in the
            // same row).
            assert_eq!(
                paste_redis.get("hexists").copied(),
                Some(paste_pieces.len() as u64),
                "one piece script run per piece: {paste_redis:?}"
            );
            assert_eq!(
                paste.get("dynamodb:Query"),
                None,
                "no piece reads the room, and the assembled message's members are remembered: \
                 {paste:?}"
            );
        }
        DocStoreKind::Dynamodb => {
            assert_eq!(
                upd.get("dynamodb:PutItem"),
                Some(&1),
                "the append is one write: {upd:?}"
            );
            assert_eq!(
                upd.get("dynamodb:UpdateItem"),
                Some(&1),
                "one shared rate count per message: {upd:?}"
            );
            assert_eq!(upd.len(), 3, "nothing else: {upd:?}");
            assert!(upd_redis.is_empty() && paste_redis.is_empty());
            // Each piece: its head read, its own write, its count, the rate count.
            let pieces = paste_pieces.len() as u64;
            assert!(
                paste.get("dynamodb:PutItem").copied().unwrap_or(0) >= pieces,
                "one write per piece: {paste:?}"
            );
            assert!(
                paste.get("dynamodb:UpdateItem").copied().unwrap_or(0) <= 2 * pieces + 3,
                "a piece's count and the rate count, no more: {paste:?}"
            );
        }
    }
    let (_, fwd, _, fwd_posts) = meter.row("doc: forwarded awareness (dropped)");
    assert_eq!(
        *fwd_posts, 0,
        "a forwarded awareness state is not relayed again"
    );
    assert!(!fwd.contains_key("dynamodb:PutItem"));
    let (_, last, _, _) = meter.row("doc: $disconnect (last: compaction)");
    assert_eq!(
        last.get("s3:PutObject"),
        Some(&1),
        "the last leave writes one snapshot: {last:?}"
    );
    assert_eq!(
        last.get("dynamodb:UpdateItem"),
        Some(&match profile {
            DocStoreKind::Redis => 2,
            // and the trim's tombstone
            DocStoreKind::Dynamodb => 3,
        }),
        "the snapshot is recorded in the room's meta item, and the empty room leaves the \
         listing: {last:?}"
    );
    assert_eq!(
        last.get("dynamodb:TransactWriteItems"),
        Some(&1),
        "the membership leaves with its count and event in one transaction: {last:?}"
    );
    let (_, join, _, join_posts) = meter.row("doc: join sync (2 in room)");
    assert!(!join.contains_key("s3:PutObject"), "{join:?}");
    assert!(*join_posts >= 2, "sync step 2 + sync step 1 (+ awareness)");
    let (_, _, _, pub_posts) = meter.row("signaling: publish (2 subscribers)");
    assert_eq!(
        *pub_posts, 2,
        "publish reaches both subscribers, the sender included"
    );

    // The document survived in S3 and reads back.
    let stored = snapshots
        .get(&room)
        .await
        .unwrap()
        .expect("snapshot written");
    assert!(!stored.snapshot.update.is_empty());

    check_measured_calls(profile, &meter);
    table.delete().await;
}

/// `ylambda cost` prices these actions from the counts in this file (ylambda/src/cost/calls.rs).
const PRICED_ACTIONS: [&str; 7] = [
    "doc: $connect",
    "doc: first sync (empty room)",
    "doc: join sync (2 in room)",
    "doc: update (2 in room)",
    "doc: awareness change (2 in room)",
    "doc: $disconnect (1 left)",
    "doc: $disconnect (last: compaction)",
];
const MEASURED_CALLS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../ylambda/src/cost/measured-calls.json"
);

/// The counts `ylambda cost` multiplies must be what the handler does: this measurement is
/// compared with the committed file (rewritten with `YLAMBDA_WRITE_COST_CALLS=1`, one test at a
/// time: `-- --test-threads=1`). `SCRIPT LOAD` is left out of the Redis count: it runs once per
/// script per Redis, not per action.
fn check_measured_calls(profile: DocStoreKind, meter: &Meter) {
    use serde_json::{json, Map, Value};
    let key = match profile {
        DocStoreKind::Redis => "redis",
        DocStoreKind::Dynamodb => "dynamodb",
    };
    let measured: Map<String, Value> = PRICED_ACTIONS
        .iter()
        .map(|action| {
            let (_, aws_ops, redis_ops, posts) = meter.row(action);
            let service = |prefix: &str| -> Map<String, Value> {
                aws_ops
                    .iter()
                    .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), json!(v))))
                    .collect()
            };
            let redis_commands: u64 = redis_ops
                .iter()
                .filter(|(k, _)| k.as_str() != "script|load")
                .map(|(_, v)| v)
                .sum();
            let row = json!({
                "dynamodb": service("dynamodb:"),
                "s3": service("s3:"),
                "redis_commands": redis_commands,
                "posts": posts,
            });
            (action.to_string(), row)
        })
        .collect();
    let text = std::fs::read_to_string(MEASURED_CALLS).unwrap();
    let mut file: Value = serde_json::from_str(&text).unwrap();
    if std::env::var_os("YLAMBDA_WRITE_COST_CALLS").is_some() {
        file[key] = Value::Object(measured);
        let written = serde_json::to_string_pretty(&file).unwrap() + "\n";
        std::fs::write(MEASURED_CALLS, written).unwrap();
        return;
    }
    assert_eq!(
        file[key],
        Value::Object(measured),
        "the handler's calls on the {key} profile are no longer the ones ylambda cost prices \
         ({MEASURED_CALLS}): check the change, then rewrite the file with \
         YLAMBDA_WRITE_COST_CALLS=1 (see check_measured_calls)"
    );
}
