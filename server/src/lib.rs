//! A real-time multiplayer tic-tac-toe server: many stateless WebSocket instances, with every
//! game, seat, session and chat line in Redis.
//!
//! How the crate is laid out, from the rules outwards (the rules, ids and wire messages live
//! in the `tictactoe-protocol` crate, shared with the tools, and are re-exported here):
//!
//! - [`rules`]: the rules, pure (no async, no I/O).
//! - [`protocol`]: the wire messages, as specified in `docs/protocol.md`.
//! - [`ids`], [`session`], [`text`], [`ratelimit`]: parsed identifiers, session tokens,
//!   cleaned user text, GCRA limits.
//! - [`store`]: where state lives: the trait, Redis (`store/redis/`: connections, a primary
//!   followed through Sentinel, writes acknowledged after a replica has them, reply decoding,
//!   one file per area, single and sharded pub/sub; Lua scripts in `store/scripts/`, one
//!   round trip per move) and in memory (single instance, zero setup).
//!   It knows no message layout: events reach it rendered.
//! - [`hub`]: one pub/sub connection per instance, one subscription per game with local
//!   clients, a bounded queue per client.
//! - [`operations`]: what can be done to games, chat, presence, the lobby, quick match and
//!   sessions (compare-and-set of rule-checked states); the only way from a connection to
//!   the store.
//! - [`connection`]: one WebSocket connection: the handshake until `hello`, then its loop,
//!   catching up with games, and the requests.
//! - [`housekeeping`]: leases, sweeping dead instances, deadlines, lobby pushes.
//! - [`listener`], [`admission`]: the accept loop (header deadline, graceful shutdown) and
//!   the connection caps, for the instance and per client address.
//! - [`watchdog`]: whether Redis is reachable; heals hung links, gives clients up when not.
//! - [`routes`], [`app`], [`config`], [`telemetry`]: HTTP, shared handles, settings, logs
//!   and metrics.
//!
//! The load generator and the monitor are the `tictactoe-tools` crate.
//!
//! [`run`] is the one entry point: the binary and the tests both call it.

pub mod admission;
pub mod app;
pub mod config;
pub mod connection;
pub mod housekeeping;
pub mod hub;
pub mod listener;
pub mod operations;
pub mod ratelimit;
pub mod routes;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod watchdog;

use app::App;
use config::Config;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::StoreError;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pending connections the kernel queues for us. tokio's default backlog (1024, and smaller
/// on some systems) overflows under connection bursts, and clients then retry only after a
/// second.
const LISTEN_BACKLOG: u32 = 4096;

/// A scrape's request must arrive within this, whatever the game port allows.
const METRICS_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
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
    telemetry::install_metrics();
    let instance = config.instance_id.clone().unwrap_or_else(|| {
        format!(
            "ttt-{}",
            &tictactoe_protocol::ids::GameId::generate().as_str()[..6]
        )
    });
    let lease = format!(
        "{}-{}",
        safe_name(&instance),
        &tictactoe_protocol::ids::GameId::generate().as_str()[..6]
    );
    if config.redis_lost >= config.forfeit_grace {
        tracing::warn!(
            "REDIS_LOST_MS is not under FORFEIT_GRACE_MS: players of an instance that loses \
             Redis may forfeit before they are sent elsewhere"
        );
    }
    if config.redis_lost <= config.redis_timeout {
        tracing::warn!(
            "REDIS_LOST_MS is not above REDIS_TIMEOUT_MS: a hung Redis connection cannot be \
             replaced before the instance gives up on Redis"
        );
    }
    let store = store::connect(&config)?;
    let addr = listener.local_addr()?;
    let metrics_listener = match config.metrics_addr {
        Some(metrics_addr) => Some(bind(metrics_addr)?),
        None => None,
    };
    let app = Arc::new(App::new(config, store, instance, lease, shutdown.clone()));

    let background = TaskTracker::new();
    let stop_background = CancellationToken::new();
    background.spawn(app.hub.clone().run_bus(
        app.store.bus(),
        app.config.redis_probe_every(),
        stop_background.clone(),
    ));
    background.spawn(housekeeping::run(app.clone(), stop_background.clone()));
    background.spawn(watchdog::run(app.clone(), stop_background.clone()));
    if let Some(metrics) = telemetry::metrics_handle() {
        background.spawn(telemetry::upkeep(metrics, stop_background.clone()));
    }

    tracing::info!(
        %addr,
        instance = %app.instance,
        lease = %app.lease,
        max_connections = app.admission.max_open(),
        "listening"
    );
    if let Some(metrics) = metrics_listener {
        if let Ok(addr) = metrics.local_addr() {
            tracing::info!(%addr, "metrics listening");
        }
        // The same accept loop as the game port, with caps of its own: a flood of silent
        // sockets here must not take the descriptors the players need.
        let gate = listener::Gate {
            admission: Arc::new(admission::Admission::new(
                admission::METRICS_MAX_OPEN,
                admission::METRICS_PER_ADDRESS,
                1,
            )),
            trusted: Vec::new(),
            header_read_timeout: app.config.header_read_timeout.min(METRICS_HEADER_TIMEOUT),
            polite_refusals: admission::METRICS_MAX_OPEN,
        };
        background.spawn(listener::serve(
            metrics,
            gate,
            routes::metrics_router(),
            stop_background.clone(),
            Duration::ZERO,
        ));
    }
    let gate = listener::Gate {
        admission: app.admission.clone(),
        trusted: app.trusted_proxies.clone(),
        header_read_timeout: app.config.header_read_timeout,
        polite_refusals: listener::POLITE_REFUSALS,
    };
    listener::serve(
        listener,
        gate,
        routes::router(app.clone()),
        shutdown.clone(),
        app.config.shutdown_grace,
    )
    .await;

    // The accept loop has stopped; it does not wait for upgraded connections. Those
    // saw the same token and are closing with 1012: wait for them to leave their games.
    app.connections.close();
    let grace = app.config.shutdown_grace;
    if tokio::time::timeout(grace, app.connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = app.connections.len(),
            "connections still open after the shutdown grace period"
        );
    }
    operations::leases::release(&app).await;
    stop_background.cancel();
    background.close();
    background.wait().await;
    tracing::info!(instance = %app.instance, "stopped");
    Ok(())
}

/// An instance id reduced to characters that are safe in key names and hash tags.
fn safe_name(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if cleaned.is_empty() {
        "instance".into()
    } else {
        cleaned
    }
}
