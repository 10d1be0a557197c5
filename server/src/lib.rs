//! A real-time multiplayer tic-tac-toe server: many stateless WebSocket instances, with every
//! game, seat, session and chat line in Redis.
//!
//! How the crate is laid out, from the inside out. The game's rules are the crate
//! `tictactoe_rules` (pure: no async, no I/O); the ids and wire messages are the crate
//! `tictactoe_protocol`, shared with the tools. Both are imported by their own names.
//!
//! - [`session`], [`recovery_code`], [`text`], [`ratelimit`]: session tokens, profile
//!   recovery codes, cleaned user text, GCRA limits.
//! - [`store`]: where state lives: the trait and its own records, Redis (`store/redis/`:
//!   links, a primary followed through Sentinel, writes acknowledged after a replica has
//!   them, the scripts and how they run, reply decoding, one file per area, single and sharded
//!   pub/sub; Lua scripts in `store/scripts/`, one round trip per move) and in memory
//!   (`store/memory/`, the same areas; a single instance, zero setup). It knows no message
//!   layout: events reach it rendered, or as templates with named slots.
//! - [`hub`]: one pub/sub link per instance, one subscription per game with local
//!   connections, a bounded mailbox per connection, presence paced per game.
//! - [`operations`]: what can be done to games, chat, presence, leases, the lobby, quick
//!   match, sessions and profiles (compare-and-set of rule-checked states); the only way to
//!   the store, from connections and background work alike.
//! - [`connection`]: one WebSocket connection: the handshake until `hello`, then its loop,
//!   catching up with games, and the requests.
//! - [`housekeeping`]: when the background duties run (leases, sweeps, deadlines, lobby).
//! - [`listener`], [`admission`]: the accept loop (header deadline, the health lane of a full
//!   listener, graceful shutdown) and the connection caps, for the instance and per address.
//! - [`watchdog`]: whether Redis is reachable; heals hung links, gives clients up when not.
//! - [`routes`], [`app`], [`config`], [`telemetry`]: HTTP, shared handles, settings (with the
//!   Redis layout), logs and metrics.
//! - [`application`]: the composition root, building all of the above one way.
//!
//! [`leaderboard`] is the operators' `tictactoe leaderboard`. The load generator and the
//! monitor are the `tictactoe-tools` crate.
//!
//! [`run`] is the one entry point: the binary and the in-process tests both call it; the
//! connection's unit tests build through [`application::Application`] as it does.

pub mod admission;
pub mod app;
pub mod application;
pub mod config;
pub mod connection;
pub mod housekeeping;
pub mod hub;
pub mod leaderboard;
pub mod listener;
pub mod operations;
pub mod ratelimit;
pub mod readiness;
pub mod recovery_code;
pub mod routes;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod trusted_proxies;
pub mod watchdog;

use application::Application;
use config::Config;
use std::net::SocketAddr;
use store::StoreError;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

/// Pending connections the kernel queues for us. tokio's default backlog (1024, and smaller
/// on some systems) overflows under connection bursts, and clients then retry only after a
/// second.
const LISTEN_BACKLOG: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("server I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Binds a listener with a deep accept backlog.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves on `listener` until `shutdown` is cancelled, then drains: stops accepting, closes
/// every session with 1012 (reconnect elsewhere), waits for them up to the grace period,
/// releases this instance's presence, and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let application = Application::build(config, shutdown)?;
    application.start_background();
    application.serve(listener).await
}
