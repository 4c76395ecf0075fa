//! The cost arithmetic against a case worked by hand, and the built-in tables.
use super::*;

/// Round numbers, so the hand computation below stays checkable.
const TEST_PRICES: &str = r#"
region = "test"
[api_gateway]
per_million_messages = 1.0
per_million_connection_minutes = 0.25
[lambda]
per_million_requests = 0.2
per_gb_second = 0.00001
memory_mb = 1024
ms_per_invocation = 10.0
[dynamodb]
per_million_read_units = 0.125
per_million_write_units = 0.625
[s3]
per_thousand_put = 0.005
per_thousand_get = 0.0004
[elasticache]
nat_gateway_per_hour = 0.045
nat_per_gb = 0.045
public_ipv4_per_hour = 0.005
cache_per_gb_hour = 0.084
cache_min_gb = 0.1
per_million_ecpus = 0.0023
nat_bytes_per_post = 1000
[redis_url]
per_hour = 0.5
"#;

fn calls(dynamodb: &[(&str, u64)], s3: &[(&str, u64)], redis: u64, posts: u64) -> ActionCalls {
    let map = |kv: &[(&str, u64)]| kv.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    ActionCalls {
        dynamodb: map(dynamodb),
        s3: map(s3),
        redis_commands: redis,
        posts,
    }
}

/// The Redis profile's measured counts, as of this writing (only their shape matters here).
fn test_calls() -> MeasuredCalls {
    let redis: ProfileCalls = [
        (
            action::CONNECT,
            calls(&[("PutItem", 1), ("Query", 1)], &[], 0, 0),
        ),
        (
            action::FIRST_SYNC,
            calls(&[("Query", 2)], &[("GetObject", 1)], 0, 2),
        ),
        (
            action::JOIN_SYNC,
            calls(&[("Query", 1)], &[("GetObject", 1)], 0, 3),
        ),
        (action::UPDATE, calls(&[("Query", 1)], &[], 8, 1)),
        (action::AWARENESS, calls(&[("Query", 1)], &[], 9, 2)),
        (
            action::LEAVE,
            calls(&[("BatchWriteItem", 1), ("Query", 2)], &[], 4, 0),
        ),
        (
            action::LAST_LEAVE,
            calls(
                &[("BatchWriteItem", 1), ("Query", 2), ("UpdateItem", 1)],
                &[("GetObject", 1), ("PutObject", 1)],
                14,
                0,
            ),
        ),
    ]
    .into_iter()
    .map(|(a, c)| (a.to_string(), c))
    .collect();
    MeasuredCalls {
        dynamodb: redis.clone(),
        redis,
    }
}

fn workload(profile: Profile) -> Workload {
    Workload {
        rooms: 2,
        users_per_room: 3,
        edits_per_sec: 0.5,
        awareness_per_sec: 0.1,
        hours: 1.0,
        session_minutes: 60.0,
        profile,
    }
}

#[test]
fn usage_matches_a_case_worked_by_hand() {
    // One room, n = 3, one session, 3,600 s:
    //   $connect 3; first sync 1 (2 posts); joining syncs 2 (2 + 2 = 4 posts each);
    //   sync step 2 replies 3 (no posts); updates 3 x 0.5 x 3600 = 5,400 (2 posts each);
    //   awareness 3 x (0.1 x 3600 + 1) = 1,083 (3 posts each); $disconnect 2 (2 posts each);
    //   last $disconnect 1.
    // messages in = 1 + 2 + 3 + 5400 + 1083 = 6,489; invocations = 6,489 + 3 + 2 + 1 = 6,495
    // posts = 2 + 8 + 10800 + 3249 + 4 = 14,063
    // read units = 3 + 2 + 2 + 3 + 5400 + 1083 + 4 + 2 = 6,499; write units = 3 + 2 + 2 = 7
    // S3: 1 + 2 + 1 = 4 GETs, 1 PUT; Redis: 8 x 5403 + 9 x 1083 + 4 x 2 + 14 = 52,993
    // Two rooms double every count; connection minutes = 2 x 3 x 60 = 360.
    let u = usage(&workload(Profile::Elasticache), &test_calls()).unwrap();
    assert_eq!(
        u,
        Usage {
            messages_in: 12_978.0,
            posts: 28_126.0,
            invocations: 12_990.0,
            connection_minutes: 360.0,
            read_units: 12_998.0,
            write_units: 14.0,
            s3_gets: 8.0,
            s3_puts: 2.0,
            redis_commands: 105_986.0,
        }
    );
}

#[test]
fn prices_match_a_case_worked_by_hand() {
    let prices = PriceTable::parse(TEST_PRICES, "test").unwrap();
    let e = estimate(&workload(Profile::Elasticache), &test_calls(), &prices).unwrap();
    let close = |service: &str, expected: f64| {
        let got = e.service_total(service);
        assert!(
            (got - expected).abs() < 1e-12,
            "{service}: {got} != {expected}"
        );
    };
    // messages (12,978 + 28,126) x $1/M + 360 min x $0.25/M
    close("API Gateway", 0.041104 + 0.00009);
    // 12,990 x $0.2/M + 12,990 x 10 ms x 1 GB = 129.9 GB-s x $0.00001
    close("Lambda", 0.002598 + 0.001299);
    // 12,998 RRU x $0.125/M + 14 WRU x $0.625/M
    close("DynamoDB", 0.00162475 + 0.00000875);
    // 8 GETs x $0.0004/1000 + 2 PUTs x $0.005/1000
    close("S3", 0.0000032 + 0.00001);
    // 0.1 GB-h x $0.084 + 105,986 ECPUs x $0.0023/M
    close("ElastiCache", 0.0084 + 0.000_243_767_8);
    // 1 h x ($0.045 + $0.005) + 28,126 posts x 1000 B = 0.028126 GB x $0.045
    close("VPC", 0.05 + 0.001_265_67);
    assert!((e.total() - 0.106_647_137_8).abs() < 1e-12, "{}", e.total());
    // 6 user-hours
    assert!((e.per_user_hour() - 0.106_647_137_8 / 6.0).abs() < 1e-12);
}

#[test]
fn each_profile_prices_its_own_doc_store() {
    let prices = PriceTable::parse(TEST_PRICES, "test").unwrap();
    let services = |p| {
        let e = estimate(&workload(p), &test_calls(), &prices).unwrap();
        let mut s: Vec<&str> = e.lines.iter().map(|l| l.service).collect();
        s.dedup();
        s
    };
    let common = ["API Gateway", "Lambda", "DynamoDB", "S3"];
    assert_eq!(services(Profile::Dynamodb), common);
    assert_eq!(
        services(Profile::RedisUrl),
        [&common[..], &["Redis (yours)"]].concat()
    );
    assert_eq!(
        services(Profile::Elasticache),
        [&common[..], &["ElastiCache", "VPC"]].concat()
    );
    let e = estimate(&workload(Profile::RedisUrl), &test_calls(), &prices).unwrap();
    assert_eq!(e.service_total("Redis (yours)"), 0.5, "1 h x $0.5");
}

#[test]
fn the_builtin_tables_load_and_the_model_matches_the_measured_posts() {
    let prices = PriceTable::builtin().unwrap();
    assert_eq!(prices.region, "us-east-1");
    let measured = MeasuredCalls::builtin().unwrap();
    // The measurement had two connections in the room: at n = 2 the model's posts per action
    // must be the measured ones (a departure's awareness removal excepted: the measured
    // connection had no awareness state of its own).
    let two = Workload {
        users_per_room: 2,
        ..workload(Profile::RedisUrl)
    };
    for profile in [&measured.redis, &measured.dynamodb] {
        for o in occurrences(&two, profile) {
            if o.action == action::LEAVE || o.label == "sync step 2 reply" {
                continue;
            }
            assert_eq!(
                o.posts, profile[o.action].posts as f64,
                "{}: the model's posts at n = 2",
                o.label
            );
        }
    }
}

#[test]
fn bad_workloads_and_price_tables_are_refused_with_a_reason() {
    let calls = test_calls();
    let refuse = |w: Workload, needle: &str| match usage(&w, &calls) {
        Err(CostError::Workload(reason)) => assert!(reason.contains(needle), "{reason}"),
        other => panic!("{w:?} gave {other:?}"),
    };
    let w = workload(Profile::Dynamodb);
    refuse(
        Workload {
            rooms: 0,
            ..w.clone()
        },
        "at least 1",
    );
    refuse(
        Workload {
            hours: 0.0,
            ..w.clone()
        },
        "hours",
    );
    refuse(
        Workload {
            edits_per_sec: f64::NAN,
            ..w.clone()
        },
        "edits",
    );
    refuse(
        Workload {
            session_minutes: 180.0,
            ..w.clone()
        },
        "120",
    );

    let negative = TEST_PRICES.replace("per_hour = 0.5", "per_hour = -0.5");
    match PriceTable::parse(&negative, "neg.toml") {
        Err(CostError::Prices { file, reason }) => {
            assert_eq!(file, "neg.toml");
            assert!(reason.contains("redis_url.per_hour"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let missing = TEST_PRICES.replace("per_million_messages = 1.0\n", "");
    assert!(PriceTable::parse(&missing, "m").is_err(), "a missing price");
    let typo = TEST_PRICES.replace("per_million_messages", "per_milion_messages");
    assert!(PriceTable::parse(&typo, "t").is_err(), "an unknown key");
    assert!(matches!(
        MeasuredCalls::parse(r#"{"redis": {}, "dynamodb": {}}"#),
        Err(CostError::Calls(_))
    ));
}

#[test]
fn the_printout_has_every_line_and_the_total() {
    let prices = PriceTable::parse(TEST_PRICES, "test").unwrap();
    let e = estimate(&workload(Profile::Elasticache), &test_calls(), &prices).unwrap();
    let text = report::render(&e);
    for l in &e.lines {
        assert!(text.contains(l.item), "{} missing:\n{text}", l.item);
    }
    assert!(text.contains("| **total** | | | **$0.11** |"), "{text}");
    assert_eq!(report::quantity(1_234_567.0), "1,234,567");
    assert_eq!(report::usd(0.0088), "$0.0088");
    assert_eq!(report::usd(0.00000876), "$0.0000088");
    assert_eq!(report::usd(12.345), "$12.35");
}
