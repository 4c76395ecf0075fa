//! The `ylambda` binary: the listening line on stdout, SIGTERM shutdown, bad configuration.
mod common;

use common::*;
use tokio::io::{AsyncReadExt, BufReader};
use tokio::process::Child;
use tokio_tungstenite::tungstenite::Message;

async fn exit_of(child: Child) -> (std::process::ExitStatus, String, String) {
    let out = tokio::time::timeout(SOON, child.wait_with_output())
        .await
        .expect("process exits")
        .expect("wait");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(unix)]
#[tokio::test]
async fn prints_the_bound_address_serves_and_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let mut child = ylambda_command()
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .spawn()
        .expect("spawn ylambda");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let url = listening_url(&mut stdout).await;
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    assert!(!url.ends_with(":0"), "the real port is printed: {url}");

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/?room=cli-room"))
        .await
        .expect("connect");
    send_text(&mut ws, r#"{"type":"ping"}"#).await;
    assert_eq!(
        next_data(&mut ws).await,
        Message::text(r#"{"type":"pong"}"#)
    );

    sigterm(&child);
    assert_eq!(close_code(&mut ws).await, 1001);

    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.unwrap();
    let (status, _, stderr) = exit_of(child).await;
    assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
    assert_eq!(rest, "", "stdout carries exactly one line");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert!(stderr.contains("disconnected"), "{stderr}");
    assert!(stderr.contains("shutdown complete"), "{stderr}");
}

#[tokio::test]
async fn bad_configuration_fails_loudly() {
    let child = ylambda_command()
        .args(["dev", "--listen", "127.0.0.1:0"])
        .env("YLAMBDA_IDLE_TIMEOUT_SECS", "ten")
        .spawn()
        .expect("spawn ylambda");
    let (status, stdout, stderr) = exit_of(child).await;
    assert!(!status.success());
    assert_eq!(stdout, "");
    assert!(stderr.contains("YLAMBDA_IDLE_TIMEOUT_SECS"), "{stderr}");
}

#[tokio::test]
async fn an_address_in_use_fails_loudly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    let child = ylambda_command()
        .args(["dev", "--listen", &addr, "--data-dir"])
        .arg(data.path())
        .spawn()
        .expect("spawn ylambda");
    let (status, _, stderr) = exit_of(child).await;
    assert!(!status.success());
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    drop(taken);
}

#[tokio::test]
async fn token_prints_a_token_the_server_accepts_and_needs_the_secret() {
    use ylambda_shared::auth::Verifier;
    let secret = "cli test secret, long enough for HS256";
    let child = ylambda_command()
        .args([
            "token",
            "--room",
            "notes",
            "--read-only",
            "--ttl",
            "60",
            "--sub",
            "me",
        ])
        .env("YLAMBDA_AUTH_SECRET", secret)
        .spawn()
        .expect("spawn ylambda");
    let (status, stdout, stderr) = exit_of(child).await;
    assert!(status.success(), "{stderr}");
    let grant = Verifier::hs256(secret.as_bytes())
        .verify(Some(stdout.trim()), "notes")
        .await
        .expect("the printed token is valid for the room");
    assert!(grant.readonly);
    assert_eq!(grant.sub.as_deref(), Some("me"));

    let child = ylambda_command()
        .args(["token", "--room", "notes"])
        .env_remove("YLAMBDA_AUTH_SECRET")
        .spawn()
        .expect("spawn ylambda");
    let (status, stdout, stderr) = exit_of(child).await;
    assert!(!status.success());
    assert_eq!(stdout, "");
    assert!(stderr.contains("YLAMBDA_AUTH_SECRET"), "{stderr}");
}
