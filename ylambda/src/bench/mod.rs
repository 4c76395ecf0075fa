//! `ylambda bench`: a load generator for Yjs WebSocket servers. N clients in R rooms connect and
//! sync, then each appends a small text edit at a steady pace for a while; every edit is timed
//! from its send to its receipt by each other client of its room, and at the end every client's
//! text must be the same and hold every edit of its room.
//!
//! It speaks API Gateway's base64 text frames (ylambda dev, a deployed stage), binary
//! y-websocket (the reference server) and Hocuspocus ([`Wire`]). With `--server-pid` it also
//! reads the server's CPU time and memory (its whole process tree) from `/proc`.
mod charts;
mod client;
pub mod cold_start;
pub mod report;
mod server_stats;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{sleep, Instant};

use client::{client, new_histogram, Event, Outcome, Plan, Run, EDIT_LEN};
pub use server_stats::{sample as sample_server, Sample};
pub use wire::{Wire, WireError};

/// Time between all clients being ready and the first edit, and between the window's end and
/// the last measurement: lets connections and the server settle.
const SETTLE: Duration = Duration::from_secs(1);
/// How often the server's memory is read during the run (for its peak).
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// How long the orchestrator waits for every client to report (each has its own timeouts).
const REPORT_GRACE: Duration = Duration::from_secs(90);

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The server's base URL (`ws://127.0.0.1:4001`, `wss://ID.execute-api.R.amazonaws.com/prod`).
    pub url: String,
    pub wire: Wire,
    pub clients: usize,
    pub rooms: usize,
    /// Edits per second offered by all clients together; 0 for idle clients.
    pub rate: f64,
    /// The send window (idle clients stay connected this long).
    pub duration: Duration,
    /// After the window, how long to wait for edits still in flight.
    pub drain: Duration,
    /// The server's process, for CPU and memory.
    pub server_pid: Option<u32>,
    /// Handshakes in flight at once.
    pub connect_parallelism: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    #[error("no process {0} to measure (--server-pid)")]
    NoServer(u32),
    #[error("{0} clients did not report within {1:?}")]
    Unresponsive(usize, Duration),
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub count: u64,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Percentiles {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            p50: ms(histogram.value_at_quantile(0.50)),
            p95: ms(histogram.value_at_quantile(0.95)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
            count: histogram.len(),
        }
    }
}

/// The server's side of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerReport {
    pub processes: usize,
    /// Before any client connected.
    pub rss_before_bytes: u64,
    /// Once every client had synced (and [`SETTLE`] passed).
    pub rss_connected_bytes: u64,
    pub rss_peak_bytes: u64,
    /// (connected - before) / synced clients.
    pub rss_per_connection_bytes: u64,
    /// CPU used from the window's start to the end of the drain, as a share of one core.
    pub cpu_percent: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    pub protocol: String,
    pub clients: usize,
    pub rooms: usize,
    pub offered_rate: f64,
    pub duration_secs: f64,
    pub connected: usize,
    pub synced: usize,
    pub connect_ms: Percentiles,
    /// Edits sent, and receipts by other clients: expected (each edit times the other synced
    /// clients of its room) and seen.
    pub sent: u64,
    pub expected_deliveries: u64,
    pub delivered: u64,
    /// Receipts per second over the window and drain.
    pub delivered_per_sec: f64,
    pub latency_ms: Percentiles,
    pub errors: usize,
    /// The first few errors, for the log.
    pub error_samples: Vec<String>,
    /// Every synced client of a room ended with the same text, holding all of the room's edits.
    pub converged: bool,
    pub server: Option<ServerReport>,
}

impl BenchReport {
    /// One line for a terminal.
    pub fn summary(&self) -> String {
        let server = self.server.as_ref().map_or(String::new(), |s| {
            format!(
                ", server {:.0}% CPU, RSS peak {:.1} MB, {:.1} KB/connection",
                s.cpu_percent,
                s.rss_peak_bytes as f64 / 1e6,
                s.rss_per_connection_bytes as f64 / 1e3
            )
        });
        format!(
            "{} {}x{} at {}/s: {}/{} synced, {} edits, {}/{} delivered ({:.0}/s), latency p50 \
             {:.2} ms p99 {:.2} ms, {} errors, converged {}{}",
            self.protocol,
            self.rooms,
            self.clients / self.rooms.max(1),
            self.offered_rate,
            self.synced,
            self.clients,
            self.sent,
            self.delivered,
            self.expected_deliveries,
            self.delivered_per_sec,
            self.latency_ms.p50,
            self.latency_ms.p99,
            self.errors,
            self.converged,
            server
        )
    }
}

impl BenchOptions {
    fn check(&self) -> Result<(), BenchError> {
        let invalid = |what: &str| Err(BenchError::InvalidOptions(what.to_string()));
        if self.clients == 0 || self.rooms == 0 {
            return invalid("clients and rooms must be at least 1");
        }
        if self.rooms > self.clients {
            return invalid("more rooms than clients");
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return invalid("the rate must be a number of edits per second, 0 or more");
        }
        if self.rate > 0.0 && self.clients as f64 / self.rate > 3600.0 {
            return invalid("the rate is below one edit per client per hour");
        }
        if self.duration.is_zero() {
            return invalid("the duration must be more than 0");
        }
        if self.connect_parallelism == 0 {
            return invalid("connect parallelism must be at least 1");
        }
        Ok(())
    }
}

pub async fn run(options: &BenchOptions) -> Result<BenchReport, BenchError> {
    options.check()?;
    let measure = |pid: u32| sample_server(pid).ok_or(BenchError::NoServer(pid));
    let before = options.server_pid.map(measure).transpose()?;

    let (go, go_rx) = watch::channel(None);
    let (finish, finish_rx) = watch::channel(false);
    let run = Arc::new(Run {
        wire: options.wire,
        epoch: Instant::now(),
        sends: (0..options.clients)
            .map(|_| Mutex::new(Vec::new()))
            .collect(),
        delivered: AtomicU64::new(0),
        go: go_rx,
        window: options.duration,
        finish: finish_rx,
        connecting: Semaphore::new(options.connect_parallelism),
    });
    // Fresh rooms every run: a room left from an earlier run would not start empty.
    let run_id: u32 = rand::rng().random();
    let interval = (options.rate > 0.0)
        .then(|| Duration::from_secs_f64(options.clients as f64 / options.rate));
    let (events, receiver) = mpsc::unbounded_channel();
    let mut reports = Reports {
        receiver,
        ready: 0,
        done_sending: 0,
    };
    let tasks: Vec<_> = (0..options.clients)
        .map(|index| {
            let room = format!("bench-{run_id:08x}-{}", index % options.rooms);
            let plan = Plan {
                index,
                url: options.wire.url(&options.url, &room),
                room,
                interval,
                // Spread over the interval, so the offered rate is steady rather than bursts.
                phase: interval.map_or(Duration::ZERO, |every| {
                    every.mul_f64(index as f64 / options.clients as f64)
                }),
            };
            tokio::spawn(client(plan, run.clone(), events.clone()))
        })
        .collect();
    drop(events);

    reports.wait(options.clients, |r| r.ready).await?;
    sleep(SETTLE).await;
    let connected = options.server_pid.map(measure).transpose()?;

    let start = Instant::now() + SETTLE;
    let _ = go.send(Some(start));
    let peak = options
        .server_pid
        .map(|pid| spawn_peak_sampler(pid, run.finish.clone()));
    reports.wait(options.clients, |r| r.done_sending).await?;
    tokio::time::sleep_until(start + options.duration).await;

    let expected = expected_deliveries(&run, options);
    let drain_until = Instant::now() + options.drain;
    while run.delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        sleep(Duration::from_millis(20)).await;
    }
    let measured = Instant::now().duration_since(start);
    let after = options.server_pid.map(measure).transpose()?;
    let _ = finish.send(true);
    let peak = match peak {
        Some(task) => task.await.ok(),
        None => None,
    };
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(outcome) = task.await {
            outcomes.push(outcome);
        }
    }
    let server = match (before, connected, after) {
        (Some(before), Some(connected), Some(after)) => Some(server_report(
            before,
            connected,
            after,
            peak.unwrap_or(0),
            outcomes.iter().filter(|o| o.synced).count(),
            measured,
        )),
        _ => None,
    };
    Ok(report(options, &run, outcomes, expected, measured, server))
}

/// Counts the clients' reports; a client may send both before the first wait ends.
struct Reports {
    receiver: mpsc::UnboundedReceiver<Event>,
    ready: usize,
    done_sending: usize,
}

impl Reports {
    /// Waits until `count(self)` reaches `clients`.
    async fn wait(
        &mut self,
        clients: usize,
        count: impl Fn(&Reports) -> usize,
    ) -> Result<(), BenchError> {
        let deadline = Instant::now() + REPORT_GRACE;
        while count(self) < clients {
            match tokio::time::timeout_at(deadline, self.receiver.recv()).await {
                Ok(Some(Event::Ready)) => self.ready += 1,
                Ok(Some(Event::DoneSending)) => self.done_sending += 1,
                Ok(None) | Err(_) => {
                    return Err(BenchError::Unresponsive(
                        clients - count(self),
                        REPORT_GRACE,
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Each edit, once per other client of its room.
fn expected_deliveries(run: &Run, options: &BenchOptions) -> u64 {
    let mut members = vec![0u64; options.rooms];
    let mut sent = vec![0u64; options.rooms];
    for (index, sends) in run.sends.iter().enumerate() {
        members[index % options.rooms] += 1;
        sent[index % options.rooms] += sends.lock().map_or(0, |s| s.len() as u64);
    }
    members
        .iter()
        .zip(&sent)
        .map(|(m, s)| s * m.saturating_sub(1))
        .sum()
}

fn spawn_peak_sampler(pid: u32, mut finish: watch::Receiver<bool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = 0;
        loop {
            if let Some(s) = sample_server(pid) {
                peak = peak.max(s.rss_bytes);
            }
            tokio::select! {
                _ = sleep(SAMPLE_EVERY) => {}
                _ = finish.changed() => return peak,
            }
        }
    })
}

fn server_report(
    before: Sample,
    connected: Sample,
    after: Sample,
    peak: u64,
    synced: usize,
    measured: Duration,
) -> ServerReport {
    let grown = connected.rss_bytes.saturating_sub(before.rss_bytes);
    ServerReport {
        processes: after.processes,
        rss_before_bytes: before.rss_bytes,
        rss_connected_bytes: connected.rss_bytes,
        rss_peak_bytes: peak.max(connected.rss_bytes).max(after.rss_bytes),
        rss_per_connection_bytes: grown / synced.max(1) as u64,
        cpu_percent: (after.cpu_secs - connected.cpu_secs).max(0.0)
            / measured.as_secs_f64().max(1e-3)
            * 100.0,
    }
}

fn report(
    options: &BenchOptions,
    run: &Run,
    outcomes: Vec<Outcome>,
    expected: u64,
    measured: Duration,
    server: Option<ServerReport>,
) -> BenchReport {
    let mut latency = new_histogram();
    let mut connect = new_histogram();
    let mut errors = Vec::new();
    let mut texts: HashMap<&str, Vec<&str>> = HashMap::new();
    for outcome in &outcomes {
        let _ = latency.add(&outcome.latency);
        if let Some(took) = outcome.connect {
            connect.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
        }
        errors.extend(outcome.errors.iter().cloned());
        if outcome.synced {
            texts.entry(&outcome.room).or_default().push(&outcome.text);
        }
    }
    let mut room_edits: HashMap<&str, u64> = HashMap::new();
    for outcome in &outcomes {
        *room_edits.entry(&outcome.room).or_default() += outcome.sent;
    }
    let converged = outcomes.iter().all(|o| o.synced)
        && texts.iter().all(|(room, texts)| {
            let whole = room_edits.get(room).copied().unwrap_or(0) * u64::from(EDIT_LEN);
            texts.windows(2).all(|pair| pair[0] == pair[1])
                && texts.iter().all(|t| t.len() as u64 == whole)
        });
    let delivered = run.delivered.load(Ordering::Relaxed);
    BenchReport {
        protocol: options.wire.to_string(),
        clients: options.clients,
        rooms: options.rooms,
        offered_rate: options.rate,
        duration_secs: options.duration.as_secs_f64(),
        connected: outcomes.iter().filter(|o| o.connect.is_some()).count(),
        synced: outcomes.iter().filter(|o| o.synced).count(),
        connect_ms: Percentiles::of(&connect),
        sent: outcomes.iter().map(|o| o.sent).sum(),
        expected_deliveries: expected,
        delivered,
        delivered_per_sec: delivered as f64 / measured.as_secs_f64().max(1e-3),
        latency_ms: Percentiles::of(&latency),
        errors: errors.len(),
        error_samples: errors.into_iter().take(5).collect(),
        converged,
        server,
    }
}
