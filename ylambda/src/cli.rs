//! Command line: `ylambda dev`. The binary's edge, so errors are `anyhow` here.
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use ylambda_shared::config::Config;

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
}

#[derive(Debug, clap::Args)]
struct DevArgs {
    /// Address to listen on (port 0 picks a free one) [default: 127.0.0.1:4001]
    #[arg(long, env = "YLAMBDA_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Directory for room snapshots [default: ./.ylambda]
    #[arg(long, env = "YLAMBDA_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev(args) => dev(args).await,
    }
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let mut config = Config::from_env().context("invalid configuration")?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr().context("listener has no address")?;
    // Exactly one line on stdout, parsed by tests and scripts that start us on port 0.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ylambda dev listening on ws://{addr}").context("write to stdout")?;
    stdout.flush().context("flush stdout")?;
    drop(stdout);

    ylambda::serve(config, listener, shutdown_signal()).await?;
    Ok(())
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
