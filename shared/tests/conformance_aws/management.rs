//! The `@connections` management API fanout against a stand-in API.
use std::sync::{Arc, Mutex};

use aws_types::SdkConfig;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use ylambda_shared::adapters::aws::{ManagementApiFanout, OperationCounter};
use ylambda_shared::ports::{Fanout, FanoutError};

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
