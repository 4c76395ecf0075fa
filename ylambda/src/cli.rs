//! Command line: `ylambda dev`. The binary's edge, so errors are `anyhow` here.
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use ylambda::{management_endpoint, Gateway, Lambdas, LambdasConfig};
use ylambda_shared::adapters::unix_now_secs;
use ylambda_shared::auth::{mint_hs256, Access, Claims};
use ylambda_shared::config::{Backend, Config};

#[derive(Debug, Parser)]
#[command(
    name = "ylambda",
    version,
    about = "Yjs collaboration on API Gateway WebSocket + Lambda"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local server that behaves like API Gateway WebSocket + the ylambda Lambdas.
    ///
    /// Limits come from YLAMBDA_MAX_MESSAGE_BYTES, YLAMBDA_IDLE_TIMEOUT_SECS and
    /// YLAMBDA_MAX_CONNECTION_SECS (API Gateway's values by default).
    Dev(DevArgs),
    /// Direct mode: a long-lived WebSocket server for stock y-websocket clients (binary, the
    /// room in the URL path: ws://HOST/ROOM, `?token=` when access control is on) and y-webrtc
    /// signaling on the same port, on the same backends as the Lambdas. Instances share rooms
    /// through Redis (YLAMBDA_BACKEND=aws, YLAMBDA_REDIS_URL), with each other and with API
    /// Gateway clients. GET /healthz and /readyz; SIGTERM drains (clients closed with 1001).
    Serve(ServeArgs),
    /// Print an HS256 token signed with YLAMBDA_AUTH_SECRET (for tests and local development;
    /// apps mint their own, see the README).
    Token(TokenArgs),
    /// Load-test a Yjs WebSocket server: N clients in R rooms, each appending a small text edit
    /// at a steady pace; prints a JSON report (latency, throughput, convergence, server CPU and
    /// memory) on stdout and a summary line on stderr.
    Bench(BenchArgs),
    /// Write BENCHMARKS.md and its SVG charts from the results scripts/bench.sh collected.
    BenchReport(BenchReportArgs),
    /// Time the Lambda binaries' cold start: the connect function started fresh N times under
    /// the local Runtime API, from process start to the answer to its first `$connect`, and the
    /// same event again warm. Its backend is this environment's (YLAMBDA_BACKEND etc.).
    BenchColdStart(BenchColdStartArgs),
    /// Price a workload on AWS, service by service, from the calls each user action was
    /// measured to make (shared/tests/aws_cost_model.rs) and a price table (us-east-1 list
    /// prices built in; --prices for your own).
    Cost(CostArgs),
}

#[derive(Debug, clap::Args)]
struct BenchColdStartArgs {
    /// Directory of the built Lambda binaries (as for `ylambda dev --lambdas`)
    #[arg(long, value_name = "DIR")]
    lambdas: PathBuf,
    /// Fresh processes to start, one after the other
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    starts: u64,
}

#[derive(Debug, clap::Args)]
struct CostArgs {
    /// Rooms (documents) open at once
    #[arg(long, value_name = "N", default_value_t = 100)]
    rooms: u64,
    /// Users connected to each room
    #[arg(long, value_name = "N", default_value_t = 5)]
    users_per_room: u64,
    /// Document updates each user sends per second (a typist: 1 to 5)
    #[arg(long, value_name = "RATE", default_value_t = 1.0)]
    edits_per_sec: f64,
    /// Awareness changes each user sends per second [default: one per edit (a cursor moving
    /// with it) + y-protocols' renewal every 15 s]
    #[arg(long, value_name = "RATE")]
    awareness_per_sec: Option<f64>,
    /// Hours of that traffic (730: a month around the clock)
    #[arg(long, value_name = "H", default_value_t = 730.0)]
    hours: f64,
    /// Minutes a connection lasts before the client reconnects (API Gateway's limit: 120)
    #[arg(long, value_name = "MIN", default_value_t = 120.0)]
    session_minutes: f64,
    /// Where the doc store lives (template.yaml's Profile)
    #[arg(long, value_enum, default_value = "dynamodb")]
    profile: ylambda::cost::Profile,
    /// A price table in the built-in one's format (ylambda/src/cost/prices.toml)
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct BenchReportArgs {
    /// One `ylambda bench` report per line, with "target" (the server) and "shape" added
    #[arg(long, value_name = "FILE")]
    results: PathBuf,
    /// Directory for BENCHMARKS.md and charts/
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// The server's URL (a stage URL for API Gateway, the base URL for the others)
    #[arg(long, value_name = "URL")]
    url: String,
    /// apigw (ylambda dev, API Gateway), ywebsocket (@y/websocket-server) or hocuspocus
    #[arg(long, value_name = "WIRE", default_value = "apigw")]
    protocol: ylambda::bench::Wire,
    /// Clients in all
    #[arg(long, value_name = "N", default_value_t = 50)]
    clients: usize,
    /// Rooms the clients are spread over (round robin)
    #[arg(long, value_name = "R", default_value_t = 1)]
    rooms: usize,
    /// Edits per second offered by all clients together (0: idle clients)
    #[arg(long, value_name = "PER_SEC", default_value_t = 100.0)]
    rate: f64,
    /// Seconds of sending (idle clients stay this long)
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    duration: f64,
    /// Seconds to wait after sending for edits still in flight
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    drain: f64,
    /// The server's process id: its CPU and memory (with its children) go in the report
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Handshakes in flight at once
    #[arg(long, value_name = "N", default_value_t = 64)]
    connect_parallelism: usize,
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The room it opens (exact name)
    #[arg(long, value_name = "ROOM", required_unless_present_any = ["rooms", "admin"])]
    room: Option<String>,
    /// Rooms it opens: exact names or `prefix*` patterns, comma-separated
    #[arg(long, value_name = "PATTERNS", value_delimiter = ',')]
    rooms: Vec<String>,
    /// Read-only access (`access: ro`)
    #[arg(long)]
    read_only: bool,
    /// Seconds until it expires
    #[arg(long, value_name = "SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    ttl: u64,
    /// Who it is for (`sub`)
    #[arg(long, value_name = "SUBJECT")]
    sub: Option<String>,
    /// An admin token for the HTTP API (`admin: true`): lists, reads and writes every room.
    /// It opens no WebSocket unless --room / --rooms are given too
    #[arg(long)]
    admin: bool,
}

#[derive(Debug, clap::Args)]
struct DevArgs {
    /// Address to listen on (port 0 picks a free one) [default: 127.0.0.1:4001]
    #[arg(long, env = "YLAMBDA_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Directory for room snapshots [default: ./.ylambda]
    #[arg(long, env = "YLAMBDA_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Directory served at /examples/ (the example pages, e.g. /examples/pixel-board/)
    /// [default: ./examples if it exists]
    #[arg(long, env = "YLAMBDA_EXAMPLES_DIR", value_name = "DIR")]
    examples_dir: Option<PathBuf>,
    /// Run the built Lambda binaries instead of the handler in this process: DIR holds
    /// ylambda-connect, ylambda-disconnect and ylambda-message, flat (target/debug) or as
    /// NAME/bootstrap (cargo lambda's target/lambda). Needs YLAMBDA_BACKEND=aws: each process
    /// has its own memory.
    #[arg(long, env = "YLAMBDA_LAMBDAS_DIR", value_name = "DIR")]
    lambdas: Option<PathBuf>,
    /// With --lambdas: processes per function
    #[arg(
        long,
        env = "YLAMBDA_LAMBDA_CONCURRENCY",
        value_name = "N",
        default_value_t = 2,
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    lambda_concurrency: u16,
    /// With --lambdas: seconds an invocation may take, cold start included (API Gateway's
    /// integration timeout is 29)
    #[arg(
        long,
        env = "YLAMBDA_LAMBDA_TIMEOUT_SECS",
        value_name = "SECS",
        default_value_t = 29,
        value_parser = clap::value_parser!(u64).range(1..=900)
    )]
    lambda_timeout: u64,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free one) [default: 127.0.0.1:4001]
    #[arg(long, env = "YLAMBDA_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Directory for room snapshots on the embedded backend [default: ./.ylambda]
    #[arg(long, env = "YLAMBDA_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev(args) => dev(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Token(args) => token(args),
        Command::Bench(args) => bench(args).await,
        Command::BenchReport(args) => bench_report(args),
        Command::Cost(args) => cost(args),
        Command::BenchColdStart(args) => bench_cold_start(args).await,
    }
}

async fn bench_cold_start(args: BenchColdStartArgs) -> anyhow::Result<()> {
    let report = ylambda::bench::cold_start::measure(&args.lambdas, args.starts as usize).await?;
    println!("{}", serde_json::to_string(&report)?);
    eprintln!(
        "{}: {:.1} MB; first event {:.1} ms after process start, warm {:.1} ms (medians of {})",
        report.binary,
        report.binary_bytes as f64 / 1e6,
        report.median_first_ms(),
        report.median_warm_ms(),
        report.starts
    );
    Ok(())
}

fn cost(args: CostArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    use ylambda::cost::{estimate, report, MeasuredCalls, PriceTable, Workload};
    let prices = match &args.prices {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the price table {}", path.display()))?;
            PriceTable::parse(&text, &path.display().to_string())?
        }
        None => PriceTable::builtin()?,
    };
    let workload = Workload {
        rooms: args.rooms,
        users_per_room: args.users_per_room,
        edits_per_sec: args.edits_per_sec,
        awareness_per_sec: args
            .awareness_per_sec
            .unwrap_or(args.edits_per_sec + ylambda::cost::AWARENESS_RENEWALS_PER_SEC),
        hours: args.hours,
        session_minutes: args.session_minutes,
        profile: args.profile,
    };
    let estimate = estimate(&workload, &MeasuredCalls::builtin()?, &prices)?;
    print!("{}", report::render(&estimate));
    Ok(())
}

fn bench_report(args: BenchReportArgs) -> anyhow::Result<()> {
    use ylambda::bench::report;
    let results = report::read_results(&args.results)?;
    report::write(&results, &machine_description(), &args.out)?;
    Ok(())
}

/// The machine the figures came from: CPU model and count, memory, kernel, Node's version.
fn machine_description() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .map_or("unknown CPU".to_string(), |m| m.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gb = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("?".to_string(), |kb| format!("{:.0}", kb / 1e6));
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "not found".into());
    format!(
        "- CPU: {cpu}, {cores} cores available\n- memory: {memory_gb} GB\n- Linux {kernel}\n- \
         Node {node}; ylambda {} (release build)",
        env!("CARGO_PKG_VERSION")
    )
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let seconds = |s: f64, what: &str| {
        Duration::try_from_secs_f64(s)
            .with_context(|| format!("--{what} must be seconds, 0 or more"))
    };
    let options = ylambda::bench::BenchOptions {
        url: args.url,
        wire: args.protocol,
        clients: args.clients,
        rooms: args.rooms,
        rate: args.rate,
        duration: seconds(args.duration, "duration")?,
        drain: seconds(args.drain, "drain")?,
        server_pid: args.server_pid,
        connect_parallelism: args.connect_parallelism,
    };
    let report = ylambda::bench::run(&options).await?;
    eprintln!("{}", report.summary());
    println!(
        "{}",
        serde_json::to_string_pretty(&report).context("encode the report")?
    );
    Ok(())
}

fn token(args: TokenArgs) -> anyhow::Result<()> {
    let config = Config::from_env().context("invalid configuration")?;
    let secret = config
        .auth_secret
        .context("YLAMBDA_AUTH_SECRET is not set: it is the secret tokens are signed with")?;
    let claims = Claims {
        exp: unix_now_secs() + args.ttl,
        room: args.room,
        rooms: (!args.rooms.is_empty()).then_some(args.rooms),
        access: Some(if args.read_only {
            Access::Ro
        } else {
            Access::Rw
        }),
        sub: args.sub,
        admin: args.admin.then_some(true),
    };
    let token = mint_hs256(secret.0.as_bytes(), &claims).context("cannot sign the token")?;
    println!("{token}");
    Ok(())
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let config = server_config(args.listen, args.data_dir)?;
    // Checked before anything binds or starts: a missing binary is the likeliest mistake.
    let lambdas = match &args.lambdas {
        Some(dir) => {
            let mut lambdas = LambdasConfig::from_dir(dir).context("--lambdas")?;
            lambdas.concurrency = usize::from(args.lambda_concurrency);
            lambdas.timeout = Duration::from_secs(args.lambda_timeout);
            if config.backend != Backend::Aws {
                tracing::warn!(
                    "--lambdas without YLAMBDA_BACKEND=aws: every Lambda process keeps its own \
                     in-memory state, so connections, documents and posts will not line up \
                     across $connect, $default and $disconnect"
                );
            }
            Some(lambdas)
        }
        None => None,
    };
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr().context("listener has no address")?;
    let gateway = match lambdas {
        Some(lambdas) => {
            let lambdas = lambdas.posting_to(&management_endpoint(addr), &config.data_dir);
            let invoker = Lambdas::start(lambdas)
                .await
                .context("cannot start the Lambdas")?;
            let aws = config.backend == Backend::Aws;
            let api_stores = if aws {
                Some(ylambda_shared::backends::stores(&config).await?)
            } else {
                None
            };
            let gateway = Gateway::with_invoker(config, listener, Arc::new(invoker))?;
            // The HTTP API runs here, on the backend the Lambdas share (with the embedded
            // backend each process has its own memory, so there is nothing to serve).
            match api_stores {
                Some(stores) => gateway.with_api_on(stores),
                None => gateway,
            }
        }
        None => {
            let stores = ylambda_shared::backends::stores(&config).await?;
            Gateway::with_stores(config, listener, stores)?
        }
    };
    let examples = args
        .examples_dir
        .clone()
        .or_else(|| Some(PathBuf::from("examples")).filter(|d| d.is_dir()));
    let gateway = match examples {
        Some(dir) => gateway.with_examples(dir),
        None => gateway,
    };
    // Exactly one line on stdout, parsed by tests and scripts that start us on port 0.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ylambda dev listening on ws://{addr}").context("write to stdout")?;
    stdout.flush().context("flush stdout")?;
    drop(stdout);

    gateway.serve(shutdown_signal()).await?;
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = server_config(args.listen, args.data_dir)?;
    let backend = ylambda_shared::backends::direct(&config)
        .await
        .context("cannot start the backend")?;
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr().context("listener has no address")?;
    let server = ylambda::serve::DirectServer::new(config, listener, backend).await?;
    // Exactly one line on stdout, as for `ylambda dev`.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ylambda serve listening on ws://{addr}").context("write to stdout")?;
    stdout.flush().context("flush stdout")?;
    drop(stdout);
    server.serve(shutdown_signal()).await?;
    Ok(())
}

/// The environment's `Config` with the command line's `--listen` / `--data-dir` on top, and one
/// loud line if it runs open.
fn server_config(listen: Option<String>, data_dir: Option<PathBuf>) -> anyhow::Result<Config> {
    let mut config = Config::from_env().context("invalid configuration")?;
    warn_if_open(&config);
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    Ok(config)
}

/// One loud line when no token is required.
fn warn_if_open(config: &Config) {
    if config.auth_secret.is_none() && config.auth_jwks_url.is_none() {
        tracing::warn!(
            "YLAMBDA_AUTH_SECRET is not set (nor YLAMBDA_AUTH_JWKS_URL): running OPEN, anyone who \
             knows a room name can read and write it. Set it to require tokens (`ylambda token \
             --room R` mints one)"
        );
    }
}

/// Ctrl-C or SIGTERM (what `docker stop`, systemd and CI runners send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received"),
        _ = terminate => tracing::info!("SIGTERM received"),
    }
}
