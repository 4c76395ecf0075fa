//! The piece store promises of `DocStore::put_piece`, held by every doc store.
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::unique;
use crate::ports::{DocStore, PieceLimits, PieceOutcome, PieceRefusal};
use crate::protocol::pieces::Piece;

fn limits() -> PieceLimits {
    PieceLimits {
        max_text_bytes: 1024,
        max_open_messages: 3,
        ttl: Duration::from_secs(60),
    }
}

fn piece<'a>(message_id: &'a str, index: u32, count: u32, data: &'a str) -> Piece<'a> {
    Piece {
        message_id,
        index,
        count,
        data,
    }
}

async fn put(store: &dyn DocStore, connection: &str, piece: Piece<'_>) -> PieceOutcome {
    store
        .put_piece(connection, &piece, &limits())
        .await
        .unwrap_or_else(|e| panic!("put_piece {piece:?}: {e}"))
}

pub async fn piece_store_suite(store: &dyn DocStore) {
    let conn = unique("conn");

    // Out of order and duplicated: the message completes once, in index order.
    assert_eq!(
        put(store, &conn, piece("m1", 2, 3, "CC")).await,
        PieceOutcome::Waiting
    );
    assert_eq!(
        put(store, &conn, piece("m1", 0, 3, "AA")).await,
        PieceOutcome::Waiting
    );
    assert_eq!(
        put(store, &conn, piece("m1", 0, 3, "AA")).await,
        PieceOutcome::Duplicate,
        "a repeated piece is idempotent"
    );
    assert_eq!(
        put(store, &conn, piece("m1", 1, 3, "BB")).await,
        PieceOutcome::Complete("AABBCC".into())
    );
    assert_eq!(
        put(store, &conn, piece("m1", 1, 3, "BB")).await,
        PieceOutcome::Duplicate,
        "a piece of a completed message does not start it again"
    );

    // Forged counts and overlapping data are refused, and do not damage the message.
    assert_eq!(
        put(store, &conn, piece("m2", 0, 2, "AA")).await,
        PieceOutcome::Waiting
    );
    assert_eq!(
        put(store, &conn, piece("m2", 1, 5, "BB")).await,
        PieceOutcome::Refused(PieceRefusal::CountMismatch)
    );
    assert_eq!(
        put(store, &conn, piece("m2", 0, 2, "XX")).await,
        PieceOutcome::Refused(PieceRefusal::Overlap)
    );
    assert_eq!(
        put(store, &conn, piece("m2", 1, 2, "BB")).await,
        PieceOutcome::Complete("AABB".into())
    );

    // Size: the assembled text may not pass the limit; the refused piece is not stored.
    let big = "Q".repeat(600);
    assert_eq!(
        put(store, &conn, piece("m3", 0, 2, &big)).await,
        PieceOutcome::Waiting
    );
    assert_eq!(
        put(store, &conn, piece("m3", 1, 2, &big)).await,
        PieceOutcome::Refused(PieceRefusal::TooLarge)
    );
    let rest = "Q".repeat(424);
    assert_eq!(
        put(store, &conn, piece("m3", 1, 2, &rest)).await,
        PieceOutcome::Complete("Q".repeat(1024)),
        "exactly the limit is accepted"
    );

    // Incomplete messages per connection are bounded; completing one frees its place, and a
    // refused first piece takes none.
    let flood = unique("conn-flood");
    assert_eq!(
        put(store, &flood, piece("f0", 0, 2, &"Q".repeat(1025))).await,
        PieceOutcome::Refused(PieceRefusal::TooLarge)
    );
    for id in ["f1", "f2", "f3"] {
        assert_eq!(
            put(store, &flood, piece(id, 0, 2, "AA")).await,
            PieceOutcome::Waiting
        );
    }
    assert_eq!(
        put(store, &flood, piece("f4", 0, 2, "AA")).await,
        PieceOutcome::Refused(PieceRefusal::TooManyOpen)
    );
    assert_eq!(
        put(store, &flood, piece("f1", 1, 2, "BB")).await,
        PieceOutcome::Complete("AABB".into())
    );
    assert_eq!(
        put(store, &flood, piece("f4", 0, 2, "AA")).await,
        PieceOutcome::Waiting
    );

    // Connections never mix: the same message id elsewhere is another message.
    let other = unique("conn-other");
    assert_eq!(
        put(store, &other, piece("m1", 0, 2, "ZZ")).await,
        PieceOutcome::Waiting
    );
    assert_eq!(
        put(store, &other, piece("m1", 1, 2, "YY")).await,
        PieceOutcome::Complete("ZZYY".into())
    );

    concurrent_completion(store).await;
    expiry(store).await;
}

/// Every piece of several messages stored twice, all at once: each message completes exactly
/// once, whole.
async fn concurrent_completion(store: &dyn DocStore) {
    let conn = unique("conn-race");
    let limits = PieceLimits {
        max_open_messages: 16,
        ..limits()
    };
    let ids: Vec<String> = (0..4).map(|i| format!("race{i}")).collect();
    let data: Vec<String> = (0..8).map(|i| format!("D{i}")).collect();
    let puts = ids.iter().flat_map(|id| {
        let (conn, limits) = (&conn, &limits);
        data.iter().enumerate().flat_map(move |(index, data)| {
            let piece = piece(id, index as u32, 8, data);
            [0, 1].map(move |_| async move {
                let outcome = store
                    .put_piece(conn, &piece, limits)
                    .await
                    .expect("put_piece");
                (piece.message_id, outcome)
            })
        })
    });
    let outcomes = join_all(puts).await;
    for id in &ids {
        let completions: Vec<&PieceOutcome> = outcomes
            .iter()
            .filter(|(m, o)| *m == id.as_str() && matches!(o, PieceOutcome::Complete(_)))
            .map(|(_, o)| o)
            .collect();
        assert_eq!(
            completions,
            vec![&PieceOutcome::Complete(data.concat())],
            "message {id}: {outcomes:?}"
        );
    }
}

/// An incomplete message is forgotten after the TTL: its id starts a new message.
async fn expiry(store: &dyn DocStore) {
    let conn = unique("conn-expiry");
    let limits = PieceLimits {
        ttl: Duration::from_millis(300),
        max_open_messages: 1,
        ..limits()
    };
    let first = piece("e1", 0, 2, "AA");
    assert_eq!(
        store.put_piece(&conn, &first, &limits).await.unwrap(),
        PieceOutcome::Waiting
    );
    // Waits on the condition, with a deadline: the other message fits once e1 has expired.
    let deadline = Instant::now() + Duration::from_secs(10);
    let second = piece("e2", 0, 2, "BB");
    loop {
        match store.put_piece(&conn, &second, &limits).await.unwrap() {
            PieceOutcome::Waiting => break,
            PieceOutcome::Refused(PieceRefusal::TooManyOpen) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("expected e1 to expire and e2 to be stored, got {other:?}"),
        }
    }
    // The expired message's piece is gone: piece 1 alone does not complete it.
    assert_eq!(
        store
            .put_piece(
                &conn,
                &piece("e1", 1, 2, "AA"),
                &PieceLimits {
                    max_open_messages: 2,
                    ..limits
                }
            )
            .await
            .unwrap(),
        PieceOutcome::Waiting
    );
}
