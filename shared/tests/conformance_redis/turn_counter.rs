//! A TCP proxy between the Redis adapter and redis-server that counts request/response turns,
//! to prove an append is one round trip.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Splits a `redis://` URL into the upstream `host:port` and the URL to rewrite for the proxy;
/// `None` for TLS URLs (the certificate would not match the proxy's address).
pub(crate) fn proxied(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("redis://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = match rest[..end].rsplit_once('@') {
        Some((_, host)) => host,
        None => &rest[..end],
    };
    let upstream = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:6379")
    };
    Some((upstream, url.to_string()))
}

/// A loopback TCP proxy that records what the client sends, one buffer per request/response turn
/// (a new turn starts when the client sends after the server has answered). With pipelining, one
/// round trip is exactly one turn.
pub(crate) struct TurnCounter {
    addr: SocketAddr,
    turns: Arc<Mutex<Turns>>,
}

#[derive(Default)]
pub(crate) struct Turns {
    client_spoke_last: bool,
    sent: Vec<Vec<u8>>,
}

impl TurnCounter {
    pub(crate) async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let turns = Arc::new(Mutex::new(Turns::default()));
        let upstream = upstream.to_string();
        let recorder = turns.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.unwrap();
                let (mut client_rx, mut client_tx) = client.into_split();
                let (mut server_rx, mut server_tx) = server.into_split();
                let up = recorder.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0; 64 * 1024];
                    while let Ok(n @ 1..) = client_rx.read(&mut buf).await {
                        {
                            let mut t = up.lock().unwrap();
                            if !t.client_spoke_last || t.sent.is_empty() {
                                t.sent.push(Vec::new());
                            }
                            t.client_spoke_last = true;
                            if let Some(turn) = t.sent.last_mut() {
                                turn.extend_from_slice(&buf[..n]);
                            }
                        }
                        if server_tx.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let down = recorder.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0; 64 * 1024];
                    while let Ok(n @ 1..) = server_rx.read(&mut buf).await {
                        down.lock().unwrap().client_spoke_last = false;
                        if client_tx.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { addr, turns }
    }

    /// `url` with its host and port replaced by the proxy's.
    pub(crate) fn url(&self, url: &str) -> String {
        let rest = url.strip_prefix("redis://").unwrap_or(url);
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let userinfo = authority
            .rsplit_once('@')
            .map(|(user, _)| format!("{user}@"))
            .unwrap_or_default();
        format!("redis://{userinfo}{}{tail}", self.addr)
    }

    pub(crate) fn turns(&self) -> usize {
        self.turns.lock().unwrap().sent.len()
    }

    pub(crate) fn turns_since(&self, before: usize) -> Vec<Vec<u8>> {
        self.turns.lock().unwrap().sent[before..].to_vec()
    }
}
