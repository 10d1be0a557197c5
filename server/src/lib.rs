//! A real-time multiplayer tic-tac-toe server: many stateless WebSocket instances, with every
//! game, seat, session and chat line in Redis.
//!
//! How the crate is laid out, from the rules outwards:
//!
//! - [`game`]: the rules, pure (no async, no I/O).
//! - [`protocol`]: the wire messages, as specified in `docs/protocol.md`.
//! - [`ids`], [`text`], [`ratelimit`]: parsed identifiers, cleaned user text, GCRA limits.
//! - [`store`]: where state lives: the trait, Redis (Lua scripts, one round trip per move)
//!   and in memory (single instance, zero setup).
//! - [`hub`]: one pub/sub connection per instance, one subscription per game with local
//!   clients, a bounded queue per client.
//! - [`games`]: game operations (compare-and-set of rule-checked states).
//! - [`session`]: one WebSocket connection's loop.
//! - [`housekeeping`]: leases, sweeping dead instances, deadlines, lobby pushes.
//! - [`routes`], [`app`], [`config`], [`telemetry`]: HTTP, shared handles, settings, logs
//!   and metrics.
//! - [`monitor`], [`loadgen`]: operator and benchmark tools behind subcommands.
//!
//! [`run`] is the one entry point: the binary and the tests both call it.

pub mod app;
pub mod config;
pub mod game;
pub mod games;
pub mod housekeeping;
pub mod hub;
pub mod ids;
pub mod loadgen;
pub mod monitor;
pub mod protocol;
pub mod ratelimit;
pub mod routes;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod text;

use app::App;
use config::Config;
use std::net::SocketAddr;
use std::sync::Arc;
use store::{Keys, Store, StoreError, StoreLimits};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pending connections the kernel queues for us. tokio's default backlog (1024, and smaller
/// on some systems) overflows under connection bursts, and clients then retry only after a
/// second.
const LISTEN_BACKLOG: u32 = 4096;

/// Kernel send buffer per connection (Linux doubles it). Game frames are a few hundred
/// bytes; an autotuned buffer would let a client that stopped reading park megabytes in the
/// kernel before its own queue ever filled and it was closed.
const SEND_BUFFER: usize = 64 * 1024;

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
    let instance = config
        .instance_id
        .clone()
        .unwrap_or_else(|| format!("ttt-{}", &ids::GameId::generate().as_str()[..6]));
    let lease = format!(
        "{}-{}",
        safe_name(&instance),
        &ids::GameId::generate().as_str()[..6]
    );
    let keys = Keys::new(config.key_prefix.clone());
    let limits = StoreLimits {
        log_len: config.event_log_len.max(1),
        chat_len: config.chat_kept.max(1),
        ..StoreLimits::default()
    };
    let cluster: Vec<String> = config
        .redis_cluster_urls
        .iter()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    // Empty values count as unset, so that an override (a compose file, say) can switch modes.
    let redis_url = config
        .redis_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    if redis_url.is_some() && !cluster.is_empty() {
        return Err(
            StoreError::Config("set REDIS_URL or REDIS_CLUSTER_URLS, not both".into()).into(),
        );
    }
    let store: Arc<dyn Store> = match redis_url {
        Some(url) => Arc::new(store::redis::RedisStore::connect(
            url,
            keys,
            limits,
            config.redis_timeout(),
        )?),
        None if !cluster.is_empty() => {
            tracing::info!(nodes = ?cluster, "using Redis Cluster with sharded pub/sub");
            Arc::new(store::redis::RedisStore::connect_cluster(
                &cluster,
                keys,
                limits,
                config.redis_timeout(),
            )?)
        }
        None => {
            tracing::warn!(
                "REDIS_URL is not set: using the IN-MEMORY store. This instance cannot share \
                 games with any other, and everything is lost when it stops."
            );
            Arc::new(store::memory::MemoryStore::new(keys, limits))
        }
    };
    let addr = listener.local_addr()?;
    let app = Arc::new(App::new(config, store, instance, lease, shutdown.clone()));

    let background = TaskTracker::new();
    let stop_background = CancellationToken::new();
    background.spawn(
        app.hub
            .clone()
            .run_bus(app.store.bus(), stop_background.clone()),
    );
    background.spawn(housekeeping::run(app.clone(), stop_background.clone()));

    tracing::info!(%addr, instance = %app.instance, lease = %app.lease, "listening");
    let service = routes::router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let listener = axum::serve::ListenerExt::tap_io(listener, tune_socket);
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await?;

    // axum has stopped accepting; it does not wait for upgraded connections. The sessions
    // saw the same token and are closing with 1012: wait for them to leave their games.
    app.sessions.close();
    let grace = app.config.shutdown_grace();
    if tokio::time::timeout(grace, app.sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = app.sessions.len(),
            "sessions still open after the shutdown grace period"
        );
    }
    if let Err(e) = app
        .store
        .sweep_lease(&app.lease, app.config.game_ttl())
        .await
    {
        tracing::warn!(error = %e, "could not release this instance's lease");
    }
    stop_background.cancel();
    background.close();
    background.wait().await;
    tracing::info!(instance = %app.instance, "stopped");
    Ok(())
}

fn tune_socket(stream: &mut tokio::net::TcpStream) {
    // A move is one small frame that must leave at once, not wait for Nagle's algorithm.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
    if let Err(e) = socket2::SockRef::from(&*stream).set_send_buffer_size(SEND_BUFFER) {
        tracing::debug!(error = %e, "SO_SNDBUF not set");
    }
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
