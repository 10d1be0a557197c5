//! The binary: one `tictactoe` command. Without a subcommand (or with `serve`) it parses the
//! settings, starts logging, binds and hands over to the library; `monitor` and `loadgen` run
//! the tools.

use clap::{Parser, Subcommand};
use tictactoe::config::Config;
use tictactoe_tools::{loadgen, monitor};
use tokio_util::sync::CancellationToken;

// At human pace every message meets a cold cache, and glibc's allocator spent about 13 % of an
// instance's CPU in its bins (`_int_malloc`, `unlink_chunk`, `malloc_consolidate`). jemalloc's
// thread caches cost 4-6 % less CPU per move for 1-2 % more memory per connection
// (docs/benchmarks.md, "Human pace, seventh pass"). Without its background threads: no thread
// of its own to wake.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(
    name = "tictactoe",
    version,
    about = "Real-time multiplayer tic-tac-toe: stateless WebSocket instances over Redis",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Server settings (used when no subcommand is given).
    #[command(flatten)]
    serve: Config,
}

// Parsed once at start-up: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run a server instance (the default).
    Serve(Config),
    /// Print moves, boards and chat of live games as they happen.
    Monitor(monitor::MonitorArgs),
    /// Drive instances with many WebSocket clients (playing or idle) and report throughput,
    /// latency and server memory.
    Loadgen(loadgen::LoadgenArgs),
    /// Print the leaderboard's top rows (rank, rating, wins/draws/losses, name) from the
    /// store the server settings name.
    Leaderboard(tictactoe::leaderboard::LeaderboardArgs),
    /// Check the server settings (flags and environment, as `serve` reads them) without
    /// starting: prints the store they name and any warning; fails on settings that cannot
    /// work, as `serve` would.
    Check(Config),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Monitor(args)) => runtime(0)?.block_on(monitor::run(args)),
        Some(Command::Loadgen(args)) => runtime(0)?.block_on(loadgen::run(args)),
        Some(Command::Serve(config)) => runtime(config.worker_threads)?.block_on(serve(config)),
        None => runtime(cli.serve.worker_threads)?.block_on(serve(cli.serve)),
        Some(Command::Leaderboard(args)) => runtime(0)?.block_on(async {
            print!("{}", tictactoe::leaderboard::run(&args).await?);
            Ok(())
        }),
        Some(Command::Check(config)) => {
            print!("{}", config.check()?.report());
            Ok(())
        }
    }
}

/// The runtime for `threads` workers: 0 is tokio's default (one per core); 1, the server's
/// default, is a single-threaded runtime: no worker ever wakes another (a futex and a context
/// switch each time), and tasks woken during one turn of the loop run after it, in order. The
/// tools keep one worker per core.
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if threads > 1 {
        builder.worker_threads(threads);
    }
    builder.enable_all().build()
}

async fn serve(config: Config) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn subcommands_are_optional() {
        let cli = Cli::parse_from(["tictactoe", "--listen-addr", "127.0.0.1:0"]);
        assert!(cli.command.is_none());
        let cli = Cli::parse_from(["tictactoe", "serve", "--move-burst", "3"]);
        assert!(matches!(cli.command, Some(Command::Serve(c)) if c.move_burst == 3));
    }
}
