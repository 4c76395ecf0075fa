//! `GET /api/events`: the live dashboard feed as server-sent events. While a viewer is connected
//! the stream keeps the watch flag alive (so handlers report), and it first sends the current
//! rooms (`event: rooms`), then each feed event as it comes (`id:` is the feed cursor, so a
//! browser that reconnects with `Last-Event-ID` resumes where it left), and the rooms again every
//! few seconds (counts stay right even for events a process had not yet started reporting).
//! A stream ends after `MAX_STREAM` (a Lambda response stream lives at most 15 minutes); the
//! browser's `EventSource` reconnects by itself.
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::Stream;
use http::header;
use serde_json::json;

use super::{query_param, ApiError, ApiRequest};
use crate::handler::{Handler, WATCH_FOR};
use crate::ports::MAX_ROOM_PAGE;

/// A stream of SSE chunks.
pub type EventStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// How long one stream lasts: under a Lambda response stream's 15 minutes.
pub const MAX_STREAM: Duration = Duration::from_secs(14 * 60);
/// How often the current rooms are sent again.
const ROOMS_EVERY: Duration = Duration::from_secs(5);
/// A comment after this long without an event keeps proxies from closing an idle stream.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);
/// The longest one feed read waits.
const READ_WAIT: Duration = Duration::from_secs(1);

struct Feed {
    handler: Arc<Handler>,
    cursor: String,
    pending: VecDeque<Bytes>,
    started: Instant,
    renewed: Instant,
    rooms_sent: Option<Instant>,
    last_sent: Instant,
    done: bool,
}

/// Opens the stream (the caller checked access): resumes after `Last-Event-ID` if the browser
/// sends one (or `?lastEventId=`), else starts at the feed's end.
pub(super) async fn open(
    handler: Arc<Handler>,
    request: &ApiRequest,
) -> Result<EventStream, ApiError> {
    handler.keep_watching(WATCH_FOR.as_millis() as u64).await?;
    let resume = request
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| query_param(request, "lastEventId"))
        .filter(|id| !id.is_empty());
    let cursor = match resume {
        // A cursor the feed no longer knows (or never wrote) is refused before streaming.
        Some(id) => {
            handler
                .ports()
                .docs
                .read_feed(Some(&id), Duration::ZERO)
                .await?;
            id
        }
        None => {
            handler
                .ports()
                .docs
                .read_feed(None, Duration::ZERO)
                .await?
                .cursor
        }
    };
    let now = Instant::now();
    let feed = Feed {
        handler,
        cursor,
        pending: VecDeque::from([Bytes::from_static(b"retry: 2000\n\n")]),
        started: now,
        renewed: now,
        rooms_sent: None,
        last_sent: now,
        done: false,
    };
    Ok(Box::pin(futures::stream::unfold(feed, Feed::next)))
}

/// The headers of an event stream.
pub fn stream_headers() -> [(header::HeaderName, &'static str); 4] {
    [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (header::CACHE_CONTROL, "no-cache"),
        // Tells nginx-like proxies not to buffer the stream.
        (header::HeaderName::from_static("x-accel-buffering"), "no"),
    ]
}

fn sse(id: Option<&str>, event: &str, data: &serde_json::Value) -> Bytes {
    let mut chunk = String::new();
    if let Some(id) = id {
        chunk.push_str(&format!("id: {id}\n"));
    }
    // serde_json writes no raw newline, so the data is one `data:` line.
    chunk.push_str(&format!("event: {event}\ndata: {data}\n\n"));
    Bytes::from(chunk)
}

impl Feed {
    async fn next(mut self) -> Option<(Bytes, Feed)> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                self.last_sent = Instant::now();
                return Some((chunk, self));
            }
            if self.done || self.started.elapsed() >= MAX_STREAM {
                return None;
            }
            if self.renewed.elapsed() >= WATCH_FOR / 3 {
                if let Err(e) = self
                    .handler
                    .keep_watching(WATCH_FOR.as_millis() as u64)
                    .await
                {
                    tracing::warn!(error = %e, "cannot renew the dashboard's watch flag");
                }
                self.renewed = Instant::now();
            }
            if self.rooms_sent.is_none_or(|at| at.elapsed() >= ROOMS_EVERY) {
                self.rooms_sent = Some(Instant::now());
                match self
                    .handler
                    .ports()
                    .connections
                    .active_rooms(MAX_ROOM_PAGE, None)
                    .await
                {
                    Ok(page) => {
                        let rooms: Vec<_> = page
                            .rooms
                            .iter()
                            .map(|r| json!({"room": r.room, "connections": r.connections, "last_active_ms": r.last_active_ms}))
                            .collect();
                        self.pending.push_back(sse(
                            None,
                            "rooms",
                            &json!({"rooms": rooms, "more": page.next.is_some()}),
                        ));
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot list rooms for the dashboard"),
                }
                continue;
            }
            match self
                .handler
                .ports()
                .docs
                .read_feed(Some(&self.cursor), READ_WAIT)
                .await
            {
                Ok(read) => {
                    for (id, event) in &read.events {
                        let data = serde_json::to_value(event).unwrap_or_default();
                        let kind = data["type"].as_str().unwrap_or("event").to_string();
                        self.pending.push_back(sse(Some(id), &kind, &data));
                    }
                    self.cursor = read.cursor;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the dashboard feed");
                    tokio::time::sleep(READ_WAIT).await;
                }
            }
            if self.pending.is_empty() && self.last_sent.elapsed() >= KEEPALIVE_EVERY {
                self.pending
                    .push_back(Bytes::from_static(b": keepalive\n\n"));
            }
        }
    }
}
