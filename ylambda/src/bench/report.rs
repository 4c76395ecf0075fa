//! `ylambda bench-report`: turns the reports `scripts/bench.sh` collected (one JSON line per
//! measurement) into BENCHMARKS.md: the machine, the commands, the ratios against each peer as
//! the headline, a table per shape, and the charts of [`super::charts`].
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{charts, BenchReport};

/// One line of `results.jsonl`: a report and what it measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// Which server (`embedded`, `aws`, `reference`, `hocuspocus`): "target" in the JSON, where
    /// the report's own "server" holds the server's CPU and memory.
    #[serde(rename = "target")]
    pub server: String,
    /// `sweep`, `rooms` or `idle`.
    pub shape: String,
    #[serde(flatten)]
    pub report: BenchReport,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {source}")]
    Parse {
        path: String,
        line: usize,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("chart {0}: {1}")]
    Chart(String, String),
    #[error("no ylambda measurement (server \"embedded\") in the results")]
    NoYlambda,
}

/// A server kept up with a load when every edit reached every peer and p99 stayed under 1 s.
pub fn kept_up(r: &BenchReport) -> bool {
    r.delivered >= r.expected_deliveries && r.latency_ms.p99 < 1000.0 && r.errors == 0
}

pub fn read_results(path: &Path) -> Result<Vec<Measurement>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.display().to_string(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| ReportError::Parse {
                path: path.display().to_string(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Writes `out/BENCHMARKS.md` and `out/charts/*.svg`.
pub fn write(results: &[Measurement], machine: &str, out: &Path) -> Result<(), ReportError> {
    let charts_dir = out.join("charts");
    std::fs::create_dir_all(&charts_dir).map_err(|source| ReportError::Write {
        path: charts_dir.display().to_string(),
        source,
    })?;
    charts::latency(results, &charts_dir.join("latency.svg"))?;
    charts::throughput(results, &charts_dir.join("throughput.svg"))?;
    charts::memory(results, &charts_dir.join("memory.svg"))?;
    let markdown = render(results, machine)?;
    let path = out.join("BENCHMARKS.md");
    std::fs::write(&path, markdown).map_err(|source| ReportError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// The servers in the results, ylambda's first, in a stable order.
pub fn servers(results: &[Measurement]) -> Vec<String> {
    let order = [
        "embedded",
        "aws",
        "serve",
        "reference",
        "hocuspocus",
        "ysweet",
    ];
    let present: BTreeSet<&str> = results.iter().map(|m| m.server.as_str()).collect();
    let mut out: Vec<String> = order
        .iter()
        .filter(|s| present.contains(*s))
        .map(|s| s.to_string())
        .collect();
    out.extend(
        present
            .iter()
            .filter(|s| !order.contains(s))
            .map(|s| s.to_string()),
    );
    out
}

pub fn label(server: &str) -> &str {
    match server {
        "embedded" => "ylambda dev (embedded)",
        "aws" => "ylambda dev (redis + moto)",
        "serve" => "ylambda serve (embedded)",
        "reference" => "@y/websocket-server 0.1.1",
        "hocuspocus" => "@hocuspocus/server 4.7",
        "ysweet" => "y-sweet 0.9.1 (filesystem store)",
        other => other,
    }
}

fn find<'a>(results: &'a [Measurement], server: &str, shape: &str) -> Vec<&'a BenchReport> {
    let mut found: Vec<&BenchReport> = results
        .iter()
        .filter(|m| m.server == server && m.shape == shape)
        .map(|m| &m.report)
        .collect();
    found.sort_by(|a, b| a.offered_rate.total_cmp(&b.offered_rate));
    found
}

/// The highest offered rate of the sweep the server kept up with.
fn max_sustained(results: &[Measurement], server: &str) -> Option<f64> {
    find(results, server, "sweep")
        .into_iter()
        .filter(|r| kept_up(r))
        .map(|r| r.offered_rate)
        .max_by(f64::total_cmp)
}

/// The figures the headline compares, each with whether lower is better.
fn headline_figures(results: &[Measurement], server: &str) -> Vec<(String, Option<f64>, bool)> {
    let sweep = find(results, server, "sweep");
    let lightest = sweep.first();
    let rooms = find(results, server, "rooms");
    let idle = find(results, server, "idle");
    let rate = lightest.map_or(String::new(), |r| format!(" at {}/s", r.offered_rate));
    vec![
        (
            format!("latency p50, 1 x 50{rate} (ms)"),
            lightest.map(|r| r.latency_ms.p50),
            true,
        ),
        (
            format!("latency p99, 1 x 50{rate} (ms)"),
            lightest.map(|r| r.latency_ms.p99),
            true,
        ),
        (
            "highest rate kept up with, 1 x 50 (edits/s)".into(),
            max_sustained(results, server),
            false,
        ),
        (
            "latency p99, 100 x 2 (ms)".into(),
            rooms.first().map(|r| r.latency_ms.p99),
            true,
        ),
        (
            "server RSS peak, 100 x 2 (MB)".into(),
            rooms
                .first()
                .and_then(|r| r.server.as_ref())
                .map(|s| s.rss_peak_bytes as f64 / 1e6),
            true,
        ),
        (
            "memory per idle connection (KB)".into(),
            idle.first()
                .and_then(|r| r.server.as_ref())
                .map(|s| s.rss_per_connection_bytes as f64 / 1e3),
            true,
        ),
    ]
}

/// One headline table: `ours`, the servers shown `beside` it, then each peer with the ratio.
fn headline(
    md: &mut String,
    results: &[Measurement],
    ours: &str,
    beside: &[&str],
    peers: &[&String],
) {
    let mine = headline_figures(results, ours);
    let besides: Vec<_> = beside
        .iter()
        .map(|b| headline_figures(results, b))
        .collect();
    let _ = write!(md, "| figure | {} |", label(ours));
    for b in beside {
        let _ = write!(md, " {} |", label(b));
    }
    for peer in peers {
        let _ = write!(md, " {} | ratio |", label(peer));
    }
    let _ = writeln!(md);
    let columns = 2 + beside.len() + 2 * peers.len();
    let _ = writeln!(md, "|{}", " --- |".repeat(columns));
    let theirs: Vec<_> = peers.iter().map(|p| headline_figures(results, p)).collect();
    for (i, (name, value, _lower)) in mine.iter().enumerate() {
        let _ = write!(md, "| {name} | {} |", number(*value));
        for b in &besides {
            let _ = write!(md, " {} |", number(b[i].1));
        }
        for peer in &theirs {
            let other = peer[i].1;
            let ratio = match (value, other) {
                (Some(a), Some(b)) if b.abs() > f64::EPSILON => Some(a / b),
                _ => None,
            };
            let _ = write!(
                md,
                " {} | {} |",
                number(other),
                ratio.map_or("-".into(), |r| format!("{r:.2}x"))
            );
        }
        let _ = writeln!(md);
    }
}

fn number(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
        None => "-".into(),
    }
}

fn render(results: &[Measurement], machine: &str) -> Result<String, ReportError> {
    let servers = servers(results);
    let ours = "embedded";
    if !servers.iter().any(|s| s == ours) {
        return Err(ReportError::NoYlambda);
    }
    // ylambda dev on the aws backend is shown beside the embedded one, not as a peer to divide
    // by: its figures are ylambda's on the local stand-ins (redis-server, moto).
    let also_ours = "aws";
    let show_aws = servers.iter().any(|s| s == also_ours);
    // `ylambda serve` (direct mode) gets its own headline below.
    let direct = "serve";
    let peers: Vec<&String> = servers
        .iter()
        .filter(|s| *s != ours && *s != also_ours && *s != direct)
        .collect();
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Produced by `scripts/bench.sh` in one run on one machine: every server got the same \
         loads from the same load generator (`ylambda bench`, Rust: N clients in R rooms, each \
         appending an 8-character Yjs text edit at a steady pace; each edit timed from its send \
         to its receipt by every other client of its room; at the end every client's text must \
         be identical and complete). Each measurement starts a fresh server. Do not edit by \
         hand: re-run the script.\n"
    );
    let _ = writeln!(md, "## Machine\n\n{machine}\n");
    let _ = writeln!(
        md,
        "## Reproduce\n\n```sh\nscripts/bench.sh                      # everything below, ~15 \
         min\nscripts/bench.sh --servers \"embedded reference\"\ncargo run --release -p ylambda \
         -- bench --help   # one load against any server\n```\n"
    );
    let _ = writeln!(md, "## Headline: ylambda dev (embedded) / each peer\n");
    let _ = writeln!(
        md,
        "A ratio below 1 is better for ylambda where lower is better (latency, memory), above 1 \
         where higher is better (throughput).\n"
    );
    let beside: Vec<&str> = if show_aws { vec![also_ours] } else { vec![] };
    headline(&mut md, results, ours, &beside, &peers);
    if servers.iter().any(|s| s == direct) {
        let _ = writeln!(
            md,
            "\n## Headline: ylambda serve (direct mode, embedded) / each peer\n\nThe same \
             server core as a long-lived process for stock binary clients, on the same wire as \
             @y/websocket-server.\n"
        );
        headline(&mut md, results, direct, &[], &peers);
    }
    let _ = writeln!(
        md,
        "\n![latency vs offered rate](charts/latency.svg)\n\n![throughput vs offered \
         rate](charts/throughput.svg)\n\n![memory per idle connection](charts/memory.svg)\n"
    );
    for (shape, title) in [
        ("sweep", "1 room x 50 clients, increasing rates"),
        ("rooms", "100 rooms x 2 clients"),
        ("idle", "idle connections"),
    ] {
        let _ = writeln!(md, "## {title}\n");
        let _ = writeln!(
            md,
            "| server | offered/s | delivered/s | p50 ms | p95 ms | p99 ms | p99.9 ms | connect \
             p99 ms | server CPU % | RSS peak MB | KB/connection | errors | converged |"
        );
        let _ = writeln!(md, "|{}", " --- |".repeat(13));
        for server in &servers {
            for r in find(results, server, shape) {
                let s = r.server.as_ref();
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    label(server),
                    r.offered_rate,
                    r.delivered_per_sec,
                    number(Some(r.latency_ms.p50)),
                    number(Some(r.latency_ms.p95)),
                    number(Some(r.latency_ms.p99)),
                    number(Some(r.latency_ms.p999)),
                    number(Some(r.connect_ms.p99)),
                    number(s.map(|s| s.cpu_percent)),
                    number(s.map(|s| s.rss_peak_bytes as f64 / 1e6)),
                    number(s.map(|s| s.rss_per_connection_bytes as f64 / 1e3)),
                    r.errors,
                    if r.converged { "yes" } else { "**no**" }
                );
            }
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "## Notes\n\n- The load generator shares the machine with the server: at the highest \
         rates it competes for the same cores, so the highest rates measure the pair.\n- \
         ylambda dev runs with API Gateway's emulated quotas raised (route throttles, messages \
         per second per connection): they model an AWS account's limits, not the server.\n- \
         Memory per connection: the server's RSS (with its child processes) once every client \
         has synced, minus its RSS before the first connected, over the clients.\n- CPU: the \
         server's user + system time over the send window and drain, as a share of one \
         core.\n- y-sweet is measured when it is installed (`cargo install y-sweet --locked`): \
         see the README's benchmark section."
    );
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Percentiles, ServerReport};

    fn report(rate: f64, p99: f64, delivered: u64, rss_per_connection: u64) -> BenchReport {
        let ms = |v: f64| Percentiles {
            p50: v / 2.0,
            p95: v,
            p99: v,
            p999: v,
            max: v,
            count: 10,
        };
        BenchReport {
            protocol: "apigw".into(),
            clients: 50,
            rooms: 1,
            offered_rate: rate,
            duration_secs: 10.0,
            connected: 50,
            synced: 50,
            connect_ms: ms(2.0),
            sent: 10,
            expected_deliveries: 490,
            delivered,
            delivered_per_sec: 49.0,
            latency_ms: ms(p99),
            errors: 0,
            error_samples: vec![],
            converged: true,
            server: Some(ServerReport {
                processes: 1,
                rss_before_bytes: 1_000_000,
                rss_connected_bytes: 2_000_000,
                rss_peak_bytes: 3_000_000,
                rss_per_connection_bytes: rss_per_connection,
                cpu_percent: 12.0,
            }),
        }
    }

    fn measurement(server: &str, shape: &str, report: BenchReport) -> Measurement {
        Measurement {
            server: server.into(),
            shape: shape.into(),
            report,
        }
    }

    #[test]
    fn the_headline_divides_ylambda_by_each_peer() {
        let results = vec![
            measurement("embedded", "sweep", report(100.0, 2.0, 490, 0)),
            measurement("embedded", "sweep", report(1000.0, 4.0, 490, 0)),
            measurement("embedded", "idle", report(0.0, 0.0, 0, 4_000)),
            measurement("aws", "sweep", report(100.0, 3.0, 490, 0)),
            measurement("reference", "sweep", report(100.0, 8.0, 490, 0)),
            // Lost edits: not kept up with, so the reference's highest rate is 100.
            measurement("reference", "sweep", report(1000.0, 9.0, 400, 0)),
            measurement("reference", "idle", report(0.0, 0.0, 0, 16_000)),
        ];
        let md = render(&results, "test machine").unwrap();
        // The aws backend is a column of its own (ylambda's, not divided by), then each peer.
        assert!(
            md.contains(
                "| figure | ylambda dev (embedded) | ylambda dev (redis + moto) | \
                         @y/websocket-server 0.1.1 | ratio |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| latency p99, 1 x 50 at 100/s (ms) | 2.00 | 3.00 | 8.00 | 0.25x |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| highest rate kept up with, 1 x 50 (edits/s) | 1000 | 100 | 100 | 10.00x |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| memory per idle connection (KB) | 4.00 | - | 16.0 | 0.25x |"),
            "{md}"
        );
        assert!(
            md.contains("| @y/websocket-server 0.1.1 | 1000 | 49 |"),
            "{md}"
        );
        assert!(render(&results[4..], "m").is_err(), "no ylambda figures");
    }

    #[test]
    fn results_round_trip_through_json_lines() {
        let m = measurement("hocuspocus", "rooms", report(10.0, 3.0, 490, 0));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.jsonl");
        std::fs::write(&path, format!("{}\n\n", serde_json::to_string(&m).unwrap())).unwrap();
        let read = read_results(&path).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].server, "hocuspocus");
        assert_eq!(read[0].report.latency_ms, m.report.latency_ms);
        std::fs::write(&path, "{not json\n").unwrap();
        assert!(matches!(
            read_results(&path),
            Err(ReportError::Parse { line: 1, .. })
        ));
    }
}
