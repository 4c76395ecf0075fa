//! `ylambda`: wires logging and the command line; the work is in the library and `cli`.
mod cli;

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    // Logs go to stderr: stdout carries only the "listening" line.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // No colour codes in redirected logs (CI, `2> file`).
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    cli::run(cli).await
}
