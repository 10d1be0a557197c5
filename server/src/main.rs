//! The binary: parse settings, start logging, bind, and hand over to the library.

use clap::Parser;
use tictactoe::config::{Cli, Command};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Monitor(args)) => tictactoe::monitor::run(args).await,
        Some(Command::Loadgen(args)) => tictactoe::loadgen::run(args).await,
        Some(Command::Serve(config)) => serve(config).await,
        None => serve(cli.serve).await,
    }
}

async fn serve(config: tictactoe::config::Config) -> anyhow::Result<()> {
    tictactoe::telemetry::init_logs(config.log_format);
    raise_open_file_limit();
    let listener = tictactoe::bind(config.listen_addr)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    tictactoe::run(listener, config, shutdown).await?;
    Ok(())
}

/// Every connection is a file descriptor. Service managers often start processes with a
/// soft limit of 1024 and a far higher hard limit: use what the hard limit allows.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(open_files = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

/// SIGTERM (orchestrators) or Ctrl-C (a terminal) starts a graceful shutdown; a second one
/// exits at once.
async fn on_signal(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    for n in 0.. {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        if n > 0 {
            tracing::warn!("second signal: exiting now");
            std::process::exit(1);
        }
        tracing::info!("shutting down: draining sessions (signal again to exit at once)");
        shutdown.cancel();
    }
}
