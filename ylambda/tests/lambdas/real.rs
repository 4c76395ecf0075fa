//! The real Lambda binaries end to end (needs the AWS backends).
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;
use ylambda::LambdasConfig;
use ylambda_shared::conformance::backends::in_ci;

use crate::common::*;

/// The AWS backend settings the real Lambdas need, or `None` to skip (outside CI only).
fn aws_backend() -> Option<()> {
    let required = ["YLAMBDA_REDIS_URL", "YLAMBDA_TABLE", "YLAMBDA_BUCKET"];
    let enabled = std::env::var("YLAMBDA_TEST_AWS").as_deref() == Ok("1");
    let missing: Vec<&str> = required
        .into_iter()
        .filter(|name| std::env::var(name).map_or(true, |v| v.trim().is_empty()))
        .collect();
    if enabled && missing.is_empty() {
        return Some(());
    }
    let why = if enabled {
        format!("YLAMBDA_TEST_AWS=1 but {} not set", missing.join(", "))
    } else {
        "YLAMBDA_TEST_AWS=1 is not set".to_string()
    };
    assert!(
        !in_ci(),
        "CI must run the real-Lambdas test: {why} (also set {})",
        required.join(", ")
    );
    eprintln!("skipped: {why}");
    None
}

/// `YLAMBDA_LAMBDAS_DIR`, or the target directory this test binary was built into.
fn lambdas_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("YLAMBDA_LAMBDAS_DIR") {
        return PathBuf::from(dir);
    }
    // target/debug/deps/lambdas-<hash> -> target/debug
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

#[tokio::test]
async fn dev_with_the_real_lambdas_answers_a_y_websocket_sync() {
    if aws_backend().is_none() {
        return;
    }
    let dir = lambdas_dir();
    if let Err(error) = LambdasConfig::from_dir(&dir) {
        panic!(
            "{error}\nbuild them first: cargo build -p ylambda-connect -p ylambda-disconnect \
             -p ylambda-message (or set YLAMBDA_LAMBDAS_DIR)"
        );
    }
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = ylambda_command()
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .arg("--lambdas")
        .arg(&dir)
        .env("YLAMBDA_BACKEND", "aws")
        .env_remove("YLAMBDA_MANAGEMENT_ENDPOINT")
        .spawn()
        .expect("spawn ylambda");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let url = listening_url(&mut stdout).await;

    // y-websocket over API Gateway: the room in the query, frames as base64 text.
    let room = room("real-lambdas");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/?room={room}"))
        .await
        .expect("connect through the $connect Lambda");
    // Sync step 1 with an empty state vector.
    send_text(&mut ws, "AAABAA==").await;
    let mut frames = Vec::new();
    for _ in 0..2 {
        match next_data(&mut ws).await {
            Message::Text(text) => frames.push(
                base64::engine::general_purpose::STANDARD
                    .decode(text.as_str())
                    .expect("base64 frame"),
            ),
            other => panic!("expected a base64 text frame, got {other:?}"),
        }
    }
    assert_eq!(frames[0][..2], [0, 1], "sync step 2 first: {frames:?}");
    assert_eq!(
        frames[1][..2],
        [0, 0],
        "then the server's sync step 1: {frames:?}"
    );
    ws.close(None).await.expect("close");
    let _ = wait_close(&mut ws).await;

    #[cfg(unix)]
    sigterm(&child);
    let mut stderr = child.stderr.take().unwrap();
    let mut log = String::new();
    let (status, _) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(child.wait(), stderr.read_to_string(&mut log))
    })
    .await
    .expect("ylambda exits");
    assert!(status.expect("wait").success(), "{log}");
    assert!(!log.contains("Lambda invocation failed"), "{log}");
    assert!(!log.contains("Lambda process exited"), "{log}");
}
