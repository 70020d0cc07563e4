//! `cim-server --store DIR --bind 127.0.0.1:PORT`

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cim_tileserver::{AppState, app};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "cim-server", version, about = "Serve a CIM store over HTTP")]
struct Cli {
    /// Store directory written by cim-ingest.
    #[arg(long)]
    store: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = run() {
        eprintln!("cim-server: {e:#}");
        std::process::exit(1);
    }
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(cli.store.is_dir(), "store {} is not a directory", cli.store.display());
    let listener =
        tokio::net::TcpListener::bind(cli.bind).await.with_context(|| format!("binding {}", cli.bind))?;
    let addr = listener.local_addr()?;
    println!("cim-server listening on http://{addr}");
    std::io::stdout().flush()?;
    let state = AppState::open(&cli.store).context("opening the live sensor database")?;
    cim_tileserver::live::spawn_stale_checker(state.live.clone());
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
