//! The command connection: one multiplexed, self-reconnecting connection to a Redis (or a
//! cluster client that follows slot moves), every call bounded by the operation timeout and
//! timed, and Redis errors sorted into "retry later" and "something is wrong".

use super::*;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};
use bus::RedisBus;
use sentinel::{SentinelConn, Sentinels};
use sharded_bus::ClusterBus;
use std::future::Future;
use std::time::Instant;

/// One Redis, a primary found through Sentinel, or a Redis Cluster.
pub(super) enum Backend {
    Single(ConnectionManager),
    /// Follows the primary through failovers (see [`super::sentinel`]).
    Sentinel(SentinelConn),
    /// Connected on first use and kept: the cluster client follows slot moves and
    /// reconnects to nodes by itself, but its first connection needs the cluster up.
    Cluster(Box<LazyCluster>),
}

/// How a [`Backend`] was made, so that more connections of the same kind can be made.
#[derive(Clone)]
pub(super) enum Origin {
    Single(::redis::Client, ConnectionManagerConfig),
    Sentinel(Arc<Sentinels>),
    Cluster(ClusterClient),
}

impl Origin {
    /// A new connection (nothing is connected until first use).
    pub(super) fn backend(&self, op_timeout: Duration) -> StoreResult<Backend> {
        Ok(match self {
            Origin::Single(client, config) => Backend::Single(
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                    .map_err(|e| StoreError::Config(e.to_string()))?,
            ),
            Origin::Sentinel(sentinels) => {
                Backend::Sentinel(SentinelConn::new(sentinels.clone(), op_timeout))
            }
            Origin::Cluster(client) => Backend::Cluster(Box::new(LazyCluster {
                client: client.clone(),
                conn: tokio::sync::OnceCell::new(),
            })),
        })
    }
}

pub(super) struct LazyCluster {
    client: ClusterClient,
    conn: tokio::sync::OnceCell<ClusterConnection>,
}

/// A connection to any kind of backend, for the commands and scripts.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Sentinel(SentinelConn),
    Cluster(ClusterConnection),
}

impl ::redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisStore {
    /// Prepares the connection without waiting for Redis: an instance can start while Redis
    /// is down and become ready when it comes up.
    pub fn connect(
        url: &str,
        keys: Keys,
        limits: StoreLimits,
        op_timeout: Duration,
    ) -> StoreResult<RedisStore> {
        let info = ::redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| StoreError::Config(format!("invalid Redis URL: {e}")))?
            .set_tcp_settings(tcp_settings());
        let client = ::redis::Client::open(info)
            .map_err(|e| StoreError::Config(format!("invalid Redis URL: {e}")))?;
        // Few retries per reconnect attempt: a command waiting on a reconnect should fail
        // within the operation timeout; the next command starts a new attempt.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(op_timeout))
            .set_response_timeout(Some(op_timeout));
        let origin = Origin::Single(client.clone(), config);
        Ok(RedisStore {
            keys,
            limits,
            backend: origin.backend(op_timeout)?,
            bus: Arc::new(RedisBus::new(client, op_timeout)),
            op_timeout,
            durable: None,
            origin,
        })
    }

    /// A store on the primary the Sentinels at `sentinels` (`host:port`) name for `master`,
    /// following it through failovers. Nothing is connected until first use.
    pub fn connect_sentinel(
        sentinels: &[String],
        master: &str,
        keys: Keys,
        limits: StoreLimits,
        op_timeout: Duration,
    ) -> StoreResult<RedisStore> {
        let sentinels = Sentinels::new(sentinels, master, tcp_settings(), op_timeout)?;
        let origin = Origin::Sentinel(sentinels.clone());
        Ok(RedisStore {
            keys,
            limits,
            backend: origin.backend(op_timeout)?,
            bus: Arc::new(RedisBus::following(sentinels, op_timeout)),
            op_timeout,
            durable: None,
            origin,
        })
    }

    /// A store on a Redis Cluster, from seed node URLs. Nothing is connected until first use.
    pub fn connect_cluster(
        nodes: &[String],
        keys: Keys,
        limits: StoreLimits,
        op_timeout: Duration,
    ) -> StoreResult<RedisStore> {
        let origin = Origin::Cluster(cluster_client(nodes, op_timeout, None)?);
        Ok(RedisStore {
            keys,
            limits,
            backend: origin.backend(op_timeout)?,
            bus: Arc::new(ClusterBus::new(nodes.to_vec(), op_timeout)),
            op_timeout,
            durable: None,
            origin,
        })
    }

    /// Runs one Redis call under the operation timeout, timing it for the latency histogram.
    pub(super) async fn call<T>(
        &self,
        op: &'static str,
        f: impl Future<Output = Result<T, RedisError>>,
    ) -> StoreResult<T> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.op_timeout, f).await;
        metrics::histogram!("redis_command_seconds", "op" => op)
            .record(started.elapsed().as_secs_f64());
        match result {
            Err(_) => {
                metrics::counter!("redis_errors_total", "op" => op, "kind" => "timeout")
                    .increment(1);
                Err(StoreError::Unavailable(format!("{op}: timed out")))
            }
            Ok(Err(e)) => {
                let err = classify(e);
                let kind = match err {
                    StoreError::Unavailable(_) => "unavailable",
                    _ => "other",
                };
                metrics::counter!("redis_errors_total", "op" => op, "kind" => kind).increment(1);
                Err(err)
            }
            Ok(Ok(v)) => Ok(v),
        }
    }

    pub(super) async fn conn(&self) -> StoreResult<Conn> {
        self.conn_of(&self.backend).await
    }

    pub(super) async fn conn_of(&self, backend: &Backend) -> StoreResult<Conn> {
        match backend {
            Backend::Single(c) => Ok(Conn::Single(c.clone())),
            Backend::Sentinel(c) => Ok(Conn::Sentinel(c.clone())),
            Backend::Cluster(lazy) => {
                let connect = lazy
                    .conn
                    .get_or_try_init(|| lazy.client.get_async_connection());
                match tokio::time::timeout(self.op_timeout, connect).await {
                    Ok(Ok(c)) => Ok(Conn::Cluster(c.clone())),
                    Ok(Err(e)) => Err(classify(e)),
                    Err(_) => Err(StoreError::Unavailable("cluster connect timed out".into())),
                }
            }
        }
    }

    /// Sharded pub/sub on a cluster: a message then travels only within its slot's shard
    /// (every channel shares its game's hash tag) instead of to every node.
    pub(super) fn publish_cmd(&self) -> &'static str {
        match self.backend {
            Backend::Single(_) | Backend::Sentinel(_) => "PUBLISH",
            Backend::Cluster(_) => "SPUBLISH",
        }
    }
}

/// A move is one small script call whose reply someone is waiting for: it must not sit in
/// Nagle's buffer (redis-rs leaves `TCP_NODELAY` off by default).
fn tcp_settings() -> ::redis::io::tcp::TcpSettings {
    ::redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

/// A cluster client for commands, or (with `push`, on RESP3) for sharded pub/sub.
pub(super) fn cluster_client(
    nodes: &[String],
    op_timeout: Duration,
    push: Option<tokio::sync::mpsc::UnboundedSender<::redis::PushInfo>>,
) -> StoreResult<ClusterClient> {
    let mut builder = ::redis::cluster::ClusterClientBuilder::new(nodes.to_vec())
        .tcp_settings(tcp_settings())
        .connection_timeout(op_timeout)
        .response_timeout(op_timeout)
        .retries(2);
    if let Some(tx) = push {
        builder = builder
            .use_protocol(::redis::ProtocolVersion::RESP3)
            .push_sender(tx);
    }
    builder
        .build()
        .map_err(|e| StoreError::Config(format!("invalid Redis Cluster URLs: {e}")))
}

/// Connection trouble is `Unavailable` (retry later); anything else is a bug or bad data.
pub(super) fn classify(e: RedisError) -> StoreError {
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
            ) | ErrorKind::ClusterConnectionNotFound
        )
        || matches!(e.code(), Some("MISCONF" | "BUSY" | "LOADING"));
    if transient {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Corrupt(e.to_string())
    }
}
