//! The command connection: one multiplexed, self-reconnecting connection to a Redis (or to
//! the primary the Sentinels name, or a cluster client that follows slot moves), replaced
//! when a call times out, every call bounded by the operation timeout and timed, and Redis
//! errors sorted into "retry later" and "something is wrong". On one Redis and behind
//! Sentinel it also carries the instance's pub/sub (see `link_bus`).

use super::RedisStore;
use super::decode::resp2;
use super::link_bus::{LinkBus, PushRoute, speaking_resp3};
use super::sentinel::{PrimaryAuth, SentinelHandle, Sentinels};
use super::sharded_bus::ClusterBus;
use crate::store::{Keys, StoreError, StoreLimits, StoreResult};
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisFuture, ScriptInvocation,
    ServerErrorKind, Value,
};
use dashmap::DashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use std::time::Instant;

/// The connection commands and scripts go through, replaced when it stops answering.
///
/// The client library reconnects after an I/O error, but a hung link (packets accepted,
/// nothing answered, nothing reset: a wedged proxy, a peer host that died before TCP gave up)
/// produces no error, only timeouts, and every later command would wait on the same dead
/// socket. So a command that times out marks its connection suspect, and the next command
/// gets a fresh one. The generation number makes a burst of timeouts on one connection replace
/// it once, not once per command.
pub(super) struct Link {
    kind: LinkKind,
    current: std::sync::Mutex<Arc<Generation>>,
}

/// How to make a connection.
#[derive(Clone)]
enum LinkKind {
    Single {
        client: ::redis::Client,
        config: ConnectionManagerConfig,
        /// The link also carries the instance's pub/sub (see [`super::link_bus`]).
        pushes: Option<Arc<PushRoute>>,
    },
    /// The primary the Sentinels name, followed through failovers (see [`super::sentinel`]),
    /// also carrying the instance's pub/sub where `pushes` is set.
    Sentinel {
        sentinels: Arc<Sentinels>,
        timeout: Duration,
        pushes: Option<Arc<PushRoute>>,
    },
    Cluster(ClusterClient),
}

struct Generation {
    id: u64,
    handle: GenerationConn,
}

enum GenerationConn {
    /// Connected on first use: an instance can start while Redis is down. With the number of
    /// its pushes' connection where it carries pub/sub.
    Single(ConnectionManager, Option<u64>),
    Sentinel(SentinelHandle),
    /// Connected on first use and kept: the cluster client follows slot moves and reconnects
    /// to nodes by itself, but its first connection needs the cluster up.
    Cluster(Box<LazyCluster>),
}

struct LazyCluster {
    client: ClusterClient,
    handle: tokio::sync::OnceCell<ClusterConnection>,
}

impl Link {
    fn new(kind: LinkKind) -> StoreResult<Link> {
        let first = Arc::new(Generation {
            id: 0,
            handle: kind.connection()?,
        });
        Ok(Link {
            kind,
            current: std::sync::Mutex::new(first),
        })
    }

    fn current(&self) -> Arc<Generation> {
        // A std Mutex: held for a pointer copy or swap, never across an await.
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A command on connection `generation` timed out: replace it, unless that was done
    /// already.
    pub(super) fn suspect(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.id != generation {
            return;
        }
        match self.kind.connection() {
            Ok(handle) => {
                *current = Arc::new(Generation {
                    id: generation + 1,
                    handle,
                });
                drop(current);
                if let Some(route) = self.kind.pushes() {
                    // Its subscriptions went with it: the hub subscribes again on the new one.
                    route.detach_generation(generation);
                }
                metrics::counter!("redis_link_replaced_total").increment(1);
                tracing::warn!(
                    generation,
                    "a Redis command timed out: replacing its connection with a fresh one"
                );
            }
            Err(e) => tracing::warn!(error = %e, "could not prepare a new Redis connection"),
        }
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self.kind, LinkKind::Cluster(_))
    }

    /// Another link of the same kind, with connections of its own (see `durable`) and no
    /// pub/sub.
    pub(super) fn another(&self) -> StoreResult<Link> {
        let mut kind = self.kind.clone();
        if let LinkKind::Single { pushes, .. } | LinkKind::Sentinel { pushes, .. } = &mut kind {
            *pushes = None;
        }
        Link::new(kind)
    }

    /// Where pub/sub goes on the current connection, if this link carries it, with the
    /// connection's generation.
    pub(super) fn bus_connection(&self) -> Option<(u64, BusConnection)> {
        let current = self.current();
        let bus = match &current.handle {
            GenerationConn::Single(c, Some(pushes)) => BusConnection::Manager(c.clone(), *pushes),
            GenerationConn::Sentinel(handle) if handle.carries_pushes() => {
                BusConnection::Sentinel(handle.clone())
            }
            _ => return None,
        };
        Some((current.id, bus))
    }
}

/// The connection a bus subscribes on (see [`Link::bus_connection`]).
pub(super) enum BusConnection {
    /// The single Redis's connection manager, and the number of its pushes' connection.
    Manager(ConnectionManager, u64),
    /// The Sentinel link, whose connection to the primary is made (or found) on demand.
    Sentinel(SentinelHandle),
}

impl LinkKind {
    fn pushes(&self) -> Option<&Arc<PushRoute>> {
        match self {
            LinkKind::Single { pushes, .. } | LinkKind::Sentinel { pushes, .. } => pushes.as_ref(),
            LinkKind::Cluster(_) => None,
        }
    }

    /// A new connection, not connected yet.
    fn connection(&self) -> StoreResult<GenerationConn> {
        Ok(match self {
            LinkKind::Single {
                client,
                config,
                pushes,
            } => {
                let mut config = config.clone();
                let mut connection = None;
                if let Some(route) = pushes {
                    let (number, sender) = route.sender();
                    config = config.set_push_sender(sender);
                    connection = Some(number);
                }
                GenerationConn::Single(
                    ConnectionManager::new_lazy_with_config(client.clone(), config)
                        .map_err(|e| StoreError::Config(e.to_string()))?,
                    connection,
                )
            }
            LinkKind::Sentinel {
                sentinels,
                timeout,
                pushes,
            } => GenerationConn::Sentinel(SentinelHandle::new(
                sentinels.clone(),
                *timeout,
                pushes.clone(),
            )),
            LinkKind::Cluster(client) => GenerationConn::Cluster(Box::new(LazyCluster {
                client: client.clone(),
                handle: tokio::sync::OnceCell::new(),
            })),
        })
    }
}

/// A connection to either kind of backend, for the commands and scripts, with the generation
/// of the link it belongs to (see [`RedisStore::call`]).
#[derive(Clone)]
pub(super) struct LinkHandle {
    pub(super) generation: u64,
    inner: HandleInner,
}

#[derive(Clone)]
enum HandleInner {
    Single(ConnectionManager),
    Sentinel(SentinelHandle),
    Cluster(ClusterConnection),
}

impl ::redis::aio::ConnectionLike for LinkHandle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.inner {
            HandleInner::Single(c) => as_resp2(c.req_packed_command(cmd)),
            HandleInner::Sentinel(c) => as_resp2(c.req_packed_command(cmd)),
            HandleInner::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.inner {
            HandleInner::Single(c) => all_as_resp2(c.req_packed_commands(pipeline, offset, count)),
            HandleInner::Sentinel(c) => {
                all_as_resp2(c.req_packed_commands(pipeline, offset, count))
            }
            HandleInner::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            HandleInner::Single(c) => c.get_db(),
            HandleInner::Sentinel(c) => c.get_db(),
            HandleInner::Cluster(c) => c.get_db(),
        }
    }
}

/// A reply of a RESP3 connection (one that carries pub/sub) in RESP2's shapes, which every
/// decoder expects (see [`resp2`]).
fn as_resp2(reply: RedisFuture<'_, Value>) -> RedisFuture<'_, Value> {
    Box::pin(async move { reply.await.map(resp2) })
}

fn all_as_resp2(replies: RedisFuture<'_, Vec<Value>>) -> RedisFuture<'_, Vec<Value>> {
    Box::pin(async move { Ok(replies.await?.into_iter().map(resp2).collect()) })
}

/// When Redis last answered, as milliseconds since the store was made: one atomic store per
/// command, so that the watchdog can tell a Redis that is slow to deliver its probes (busy,
/// but answering) from one that cannot be reached.
pub(super) struct Answered {
    epoch: Instant,
    ms: AtomicU64,
}

impl Default for Answered {
    fn default() -> Self {
        Answered {
            epoch: Instant::now(),
            ms: AtomicU64::new(0),
        }
    }
}

impl Answered {
    fn now(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.ms.store(ms, Ordering::Relaxed);
    }

    pub(super) fn last(&self) -> Instant {
        self.epoch + Duration::from_millis(self.ms.load(Ordering::Relaxed))
    }
}

/// The latency histogram's handle for each operation, looked up once: the `histogram!` macro
/// with a label that is not a literal builds and registers its key (two allocations) on every
/// call, and a move makes one or two calls.
#[derive(Default)]
pub(super) struct Timings {
    by_op: DashMap<&'static str, metrics::Histogram>,
}

impl Timings {
    fn record(&self, op: &'static str, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(h) = self.by_op.get(op) {
            return h.record(secs);
        }
        let h = metrics::histogram!("redis_command_seconds", "op" => op);
        h.record(secs);
        self.by_op.insert(op, h);
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
        let client = ::redis::Client::open(speaking_resp3(info))
            .map_err(|e| StoreError::Config(format!("invalid Redis URL: {e}")))?;
        // Few retries per reconnect attempt: a command waiting on a reconnect should fail
        // within the operation timeout; the next command starts a new attempt.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(op_timeout))
            .set_response_timeout(Some(op_timeout));
        let route = Arc::new(PushRoute::default());
        let link = Arc::new(Link::new(LinkKind::Single {
            client,
            config,
            pushes: Some(route.clone()),
        })?);
        Ok(RedisStore {
            answered: Answered::default(),
            timings: Timings::default(),
            keys,
            limits,
            bus: Arc::new(LinkBus::new(link.clone(), route, op_timeout)),
            link,
            op_timeout,
            durable: None,
        })
    }

    /// A store on the primary the Sentinels at `sentinels` (`host:port`) name for `master`,
    /// reached with `auth`, following it through failovers. Nothing is connected until first
    /// use.
    pub fn connect_sentinel(
        sentinels: &[String],
        master: &str,
        auth: PrimaryAuth,
        keys: Keys,
        limits: StoreLimits,
        op_timeout: Duration,
    ) -> StoreResult<RedisStore> {
        let sentinels = Sentinels::new(sentinels, master, auth, tcp_settings(), op_timeout)?;
        let route = Arc::new(PushRoute::default());
        let link = Arc::new(Link::new(LinkKind::Sentinel {
            sentinels,
            timeout: op_timeout,
            pushes: Some(route.clone()),
        })?);
        Ok(RedisStore {
            answered: Answered::default(),
            timings: Timings::default(),
            keys,
            limits,
            bus: Arc::new(LinkBus::new(link.clone(), route, op_timeout)),
            link,
            op_timeout,
            durable: None,
        })
    }

    /// A store on a Redis Cluster, from seed node URLs. Nothing is connected until first use.
    pub fn connect_cluster(
        nodes: &[String],
        keys: Keys,
        limits: StoreLimits,
        op_timeout: Duration,
    ) -> StoreResult<RedisStore> {
        let client = cluster_client(nodes, op_timeout, None)?;
        Ok(RedisStore {
            answered: Answered::default(),
            timings: Timings::default(),
            keys,
            limits,
            link: Arc::new(Link::new(LinkKind::Cluster(client))?),
            bus: Arc::new(ClusterBus::new(nodes.to_vec(), op_timeout)),
            op_timeout,
            durable: None,
        })
    }

    /// Runs one Redis call on connection `generation` under the operation timeout, timing it
    /// for the latency histogram. A timeout makes the connection suspect (see [`Link`]).
    pub(super) async fn call<T>(
        &self,
        op: &'static str,
        generation: u64,
        f: impl Future<Output = Result<T, RedisError>>,
    ) -> StoreResult<T> {
        self.call_on(&self.link, op, generation, f).await
    }

    /// [`RedisStore::call`] on a link of its own (a `durable` lane).
    pub(super) async fn call_on<T>(
        &self,
        link: &Link,
        op: &'static str,
        generation: u64,
        f: impl Future<Output = Result<T, RedisError>>,
    ) -> StoreResult<T> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.op_timeout, f).await;
        self.timings.record(op, started.elapsed());
        match result {
            Err(_) => {
                metrics::counter!("redis_errors_total", "op" => op, "kind" => "timeout")
                    .increment(1);
                link.suspect(generation);
                Err(StoreError::Unavailable(format!("{op}: timed out")))
            }
            Ok(Err(e)) => {
                if e.is_timeout() {
                    link.suspect(generation);
                }
                let err = classify(e);
                let kind = match err {
                    StoreError::Unavailable(_) | StoreError::Unconfirmed { .. } => "unavailable",
                    _ => "other",
                };
                metrics::counter!("redis_errors_total", "op" => op, "kind" => kind).increment(1);
                Err(err)
            }
            Ok(Ok(v)) => {
                self.answered.now();
                Ok(v)
            }
        }
    }

    /// One command on the shared link, under [`RedisStore::call`].
    pub(super) async fn query<T: FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &Cmd,
    ) -> StoreResult<T> {
        let mut handle = self.handle().await?;
        self.call(op, handle.generation, cmd.query_async(&mut handle))
            .await
    }

    /// One pipeline on the shared link, under [`RedisStore::call`].
    pub(super) async fn query_pipeline<T: FromRedisValue>(
        &self,
        op: &'static str,
        pipe: &Pipeline,
    ) -> StoreResult<T> {
        let mut handle = self.handle().await?;
        self.call(op, handle.generation, pipe.query_async(&mut handle))
            .await
    }

    /// One script call on the shared link (loaded first where the node lacks it), under
    /// [`RedisStore::call`].
    pub(super) async fn invoke<T: FromRedisValue>(
        &self,
        op: &'static str,
        inv: &ScriptInvocation<'_>,
    ) -> StoreResult<T> {
        let mut handle = self.handle().await?;
        self.call(op, handle.generation, inv.invoke_async(&mut handle))
            .await
    }

    pub(super) async fn handle(&self) -> StoreResult<LinkHandle> {
        self.handle_on(&self.link).await
    }

    /// A connection of `link` (the shared one, or a `durable` lane).
    pub(super) async fn handle_on(&self, link: &Link) -> StoreResult<LinkHandle> {
        let generation = link.current();
        let inner = match &generation.handle {
            GenerationConn::Single(c, _) => HandleInner::Single(c.clone()),
            GenerationConn::Sentinel(c) => HandleInner::Sentinel(c.clone()),
            GenerationConn::Cluster(lazy) => {
                let connect = lazy
                    .handle
                    .get_or_try_init(|| lazy.client.get_async_connection());
                match tokio::time::timeout(self.op_timeout, connect).await {
                    Ok(Ok(c)) => HandleInner::Cluster(c.clone()),
                    Ok(Err(e)) => return Err(classify(e)),
                    Err(_) => {
                        link.suspect(generation.id);
                        return Err(StoreError::Unavailable("cluster connect timed out".into()));
                    }
                }
            }
        };
        Ok(LinkHandle {
            generation: generation.id,
            inner,
        })
    }

    /// Sharded pub/sub on a cluster: a message then travels only within its slot's shard
    /// (every channel shares its game's hash tag) instead of to every node.
    pub(super) fn publish_cmd(&self) -> &'static str {
        if self.link.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
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
