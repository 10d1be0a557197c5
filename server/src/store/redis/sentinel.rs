//! Redis behind Sentinel: connections that follow the primary through a failover.
//!
//! redis-rs 1.8 asks the Sentinels for the primary only when it opens a connection
//! (`SentinelClient::async_get_client`), and its `ConnectionManager` reconnects to the address
//! it was built with, which after a failover is the dead or demoted node (redis-rs issue
//! 1438). So a [`SentinelHandle`] keeps one multiplexed connection to the node the Sentinels
//! named, forgets it at the first sign that the node is gone or no longer primary, and the
//! next call asks the Sentinels again. Pub/sub rides on that connection (see `link_bus`), so
//! it leaves with it and follows to the next one. The asking is
//! done here too (`SENTINEL MASTER` to every Sentinel, the highest configuration epoch
//! believed): redis-rs takes the first Sentinel's answer that names a node saying it is
//! primary, and right after a failover by hand that can still be the old primary.
//!
//! A primary moved away while it still runs (`SENTINEL FAILOVER`, or a partition) gives no
//! such sign until the Sentinels demote it, up to their 10 s check later, and meanwhile it
//! takes writes that the promoted replica never sees. So the Sentinels are also asked every
//! [`WATCH_EVERY`] which node is primary; when the answer changes, every connection to the
//! old one is dropped (its subscriptions with it) and the next call finds the new one.

use super::link_bus::{PushRoute, speaking_resp3};
use super::{StoreError, StoreResult};
use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::{
    AsyncConnectionConfig, Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult,
    ServerErrorKind, Value,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// After a lookup that found no primary, calls fail at once for this long instead of each
/// asking the Sentinels again: during a failover, every request would otherwise queue up
/// for its own lookup.
const LOOKUP_BACKOFF: Duration = Duration::from_millis(100);

/// How often the Sentinels are asked which node is primary.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// The credentials of the primary: the Sentinels give only its address, so they cannot come
/// from a URL (REDIS_USERNAME, REDIS_PASSWORD).
#[derive(Clone, Debug, Default)]
pub struct PrimaryAuth {
    pub username: Option<String>,
    pub password: Option<String>,
}

/// The Sentinels of one primary, shared by every connection that follows it.
pub struct Sentinels {
    /// The Sentinels' URLs, in the configured order.
    urls: Vec<String>,
    master: String,
    auth: PrimaryAuth,
    /// The primary is reached over TLS when the Sentinels are: TLS everywhere or nowhere,
    /// as `tls-replication` deployments run.
    tls: bool,
    timeout: Duration,
    tcp: ::redis::io::tcp::TcpSettings,
    /// One connection per Sentinel. Lookups hold the lock: one at a time is enough.
    conns: tokio::sync::Mutex<Vec<Option<MultiplexedConnection>>>,
    /// The last lookup: when it finished, and the primary it found (if any).
    last: Mutex<Option<(Instant, Option<::redis::Client>)>>,
    /// The primary's address (`host:port`) as last found, to log a change once.
    primary: Mutex<String>,
    /// Bumped whenever the Sentinels name another primary: connections made before are left.
    epoch: tokio::sync::watch::Sender<u64>,
    watching: std::sync::Once,
}

/// What the Sentinels say about the primary.
struct Named {
    addr: String,
    /// Sentinel's configuration epoch for the primary: each failover raises it, so the
    /// highest one is the newest view when the Sentinels do not agree yet.
    config_epoch: u64,
    /// The Sentinels think it is down (before a failover has promoted another node).
    down: bool,
}

impl Sentinels {
    /// `addrs` are `host:port` (or `redis://host:port`) of the Sentinels; nothing is
    /// connected until first use.
    pub fn new(
        addrs: &[String],
        master: &str,
        auth: PrimaryAuth,
        tcp: ::redis::io::tcp::TcpSettings,
        timeout: Duration,
    ) -> StoreResult<Arc<Sentinels>> {
        let urls: Vec<String> = addrs
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .map(|a| {
                if a.contains("://") {
                    a.to_string()
                } else {
                    format!("redis://{a}")
                }
            })
            .collect();
        if urls.is_empty() {
            return Err(StoreError::Config("REDIS_SENTINELS is empty".into()));
        }
        for url in &urls {
            url.as_str()
                .into_connection_info()
                .map_err(|e| StoreError::Config(format!("invalid REDIS_SENTINELS: {e}")))?;
        }
        if master.trim().is_empty() {
            return Err(StoreError::Config(
                "REDIS_SENTINEL_MASTER is needed with REDIS_SENTINELS".into(),
            ));
        }
        let tls = urls.iter().filter(|u| u.starts_with("rediss://")).count();
        if tls != 0 && tls != urls.len() {
            return Err(StoreError::Config(
                "REDIS_SENTINELS mixes TLS (rediss://) and plain addresses".into(),
            ));
        }
        Ok(Arc::new(Sentinels {
            conns: tokio::sync::Mutex::new(vec![None; urls.len()]),
            urls,
            master: master.trim().to_string(),
            auth,
            tls: tls != 0,
            timeout,
            tcp,
            last: Mutex::new(None),
            primary: Mutex::new(String::new()),
            epoch: tokio::sync::watch::Sender::new(0),
            watching: std::sync::Once::new(),
        }))
    }

    /// The current epoch: it changes when the Sentinels name another primary.
    pub fn epoch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// A client for the node the Sentinels name primary now.
    pub async fn primary(self: &Arc<Self>) -> StoreResult<::redis::Client> {
        self.watching.call_once(|| {
            tokio::spawn(watch(Arc::downgrade(self)));
        });
        let started = Instant::now();
        let mut conns = tokio::time::timeout(self.timeout, self.conns.lock())
            .await
            .map_err(|_| StoreError::Unavailable("Sentinel lookup queue timed out".into()))?;
        // Someone else may have looked while this call waited for its turn.
        if let Some((at, found)) = self.last.lock().ok().and_then(|l| l.clone())
            && at >= started
        {
            return found.ok_or_else(|| no_primary(&self.master));
        }
        if let Some((at, None)) = self.last.lock().ok().and_then(|l| l.clone())
            && at.elapsed() < LOOKUP_BACKOFF
        {
            return Err(no_primary(&self.master));
        }
        let found = match self.ask(&mut conns).await {
            Some(named) if !named.down => self.client(&named.addr),
            Some(_) => {
                tracing::debug!(master = %self.master, "the Sentinels see the primary down");
                None
            }
            None => {
                tracing::warn!(master = %self.master, "no Sentinel answered");
                None
            }
        };
        drop(conns);
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), found.clone()));
        }
        let client = found.ok_or_else(|| no_primary(&self.master))?;
        let addr = client.get_connection_info().addr().to_string();
        if let Ok(mut primary) = self.primary.lock()
            && *primary != addr
        {
            if primary.is_empty() {
                tracing::info!(master = %self.master, primary = %addr, "Redis primary found through Sentinel");
            } else {
                tracing::warn!(master = %self.master, primary = %addr, previous = %*primary,
                    "Redis primary changed (Sentinel failover)");
                metrics::counter!("redis_primary_changes_total").increment(1);
            }
            *primary = addr;
        }
        Ok(client)
    }

    fn client(&self, addr: &str) -> Option<::redis::Client> {
        ::redis::Client::open(speaking_resp3(self.primary_info(addr)?)).ok()
    }

    /// How to reach the primary at `addr`: TLS as the Sentinels, its own credentials.
    fn primary_info(&self, addr: &str) -> Option<::redis::ConnectionInfo> {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let info = format!("{scheme}://{addr}")
            .into_connection_info()
            .ok()?
            .set_tcp_settings(self.tcp.clone());
        let mut settings = info.redis_settings().clone();
        if let Some(user) = self.auth.username.as_deref().filter(|u| !u.is_empty()) {
            settings = settings.set_username(user);
        }
        if let Some(password) = self.auth.password.as_deref().filter(|p| !p.is_empty()) {
            settings = settings.set_password(password);
        }
        Some(info.set_redis_settings(settings))
    }

    /// Asks every Sentinel (at once, each within the timeout) about the primary, and believes
    /// the newest view: the highest configuration epoch. Right after a failover some
    /// Sentinels still name the old primary, which may still run and say it is one.
    async fn ask(&self, conns: &mut [Option<MultiplexedConnection>]) -> Option<Named> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let asks = self.urls.iter().zip(conns.iter_mut()).map(|(url, handle)| {
            let config = config.clone();
            async move {
                let fresh = handle.is_none();
                if fresh {
                    let client = ::redis::Client::open(url.as_str()).ok()?;
                    *handle = tokio::time::timeout(
                        self.timeout,
                        client.get_multiplexed_async_connection_with_config(&config),
                    )
                    .await
                    .ok()
                    .and_then(Result::ok);
                }
                let c = handle.as_mut()?;
                let reply: RedisResult<HashMap<String, String>> = ::redis::cmd("SENTINEL")
                    .arg("MASTER")
                    .arg(&self.master)
                    .query_async(c)
                    .await;
                match reply {
                    Ok(fields) => named(&fields),
                    Err(_) => {
                        *handle = None;
                        None
                    }
                }
            }
        });
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .fold(None, |best: Option<Named>, n| match best {
                Some(b) if b.config_epoch >= n.config_epoch => Some(b),
                _ => Some(n),
            })
    }
}

/// A Sentinel's `SENTINEL MASTER` reply, read.
fn named(fields: &HashMap<String, String>) -> Option<Named> {
    let ip = fields.get("ip")?;
    let port = fields.get("port")?;
    let flags = fields.get("flags").map(String::as_str).unwrap_or_default();
    Some(Named {
        addr: format!("{ip}:{port}"),
        config_epoch: fields
            .get("config-epoch")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0),
        down: flags.split(',').any(|f| f == "s_down" || f == "o_down"),
    })
}

/// Asks the Sentinels which node is primary every [`WATCH_EVERY`] for as long as the
/// [`Sentinels`] live, and moves the epoch on when the answer is not the node in use.
async fn watch(sentinels: std::sync::Weak<Sentinels>) {
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let Some(s) = sentinels.upgrade() else {
            return;
        };
        let named = {
            let mut conns = s.conns.lock().await;
            s.ask(&mut conns).await
        };
        let Some(named) = named.filter(|n| !n.down) else {
            continue;
        };
        let moved = match s.primary.lock() {
            Ok(mut primary) if !primary.is_empty() && *primary != named.addr => {
                tracing::warn!(master = %s.master, primary = %named.addr, previous = %*primary,
                    "the Sentinels name another primary; leaving the old one");
                metrics::counter!("redis_primary_changes_total").increment(1);
                *primary = named.addr;
                true
            }
            _ => false,
        };
        if moved {
            if let Ok(mut last) = s.last.lock() {
                *last = None;
            }
            s.epoch.send_modify(|e| *e += 1);
        }
    }
}

fn no_primary(master: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "the Sentinels name no reachable primary for {master}"
    ))
}

/// A connection to the current primary, for commands and scripts. Clones share the
/// connection; each [`SentinelHandle::new`] is a connection of its own (its own order of
/// commands on the server, which `WAIT` relies on).
#[derive(Clone)]
pub struct SentinelHandle {
    sentinels: Arc<Sentinels>,
    link: Arc<Link>,
}

struct Link {
    /// The connection in use, a number that changes with each new one, and the epoch it was
    /// made in.
    current: Mutex<Option<Current>>,
    /// One connect at a time: a burst of calls after a failover makes one connection.
    connecting: tokio::sync::Mutex<u64>,
    config: AsyncConnectionConfig,
    /// Where the connections' pushes go, if this link carries pub/sub.
    pushes: Option<Arc<PushRoute>>,
}

struct Current {
    generation: u64,
    epoch: u64,
    handle: MultiplexedConnection,
    /// The number of its pushes' connection (see [`PushRoute`]).
    pushes: Option<u64>,
}

impl SentinelHandle {
    pub fn new(
        sentinels: Arc<Sentinels>,
        timeout: Duration,
        pushes: Option<Arc<PushRoute>>,
    ) -> SentinelHandle {
        SentinelHandle {
            sentinels,
            link: Arc::new(Link {
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(0),
                config: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout)),
                pushes,
            }),
        }
    }

    pub(super) fn carries_pushes(&self) -> bool {
        self.link.pushes.is_some()
    }

    /// The Sentinels' epoch: it changes when they name another primary, whose connection
    /// is then a new one.
    pub(super) fn epoch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.sentinels.epoch()
    }

    /// The connection in use (made if there is none), for pub/sub: its generation, the number
    /// of its pushes' connection, and the connection.
    pub(super) async fn push_connection(&self) -> RedisResult<(u64, u64, MultiplexedConnection)> {
        let (generation, handle, pushes) = self.connection().await?;
        let pushes = pushes.ok_or_else(|| {
            RedisError::from(std::io::Error::other("this link carries no pub/sub"))
        })?;
        Ok((generation, pushes, handle))
    }

    /// A call made on connection `generation` outside this handle (pub/sub's) failed with
    /// `e`: the connection is dropped if that means the node is gone or demoted, as a
    /// command's failure would.
    pub(super) fn forget_if_lost(&self, generation: u64, e: &RedisError) {
        if lost_primary(e) {
            self.forget(generation);
        }
    }

    /// The connection in use, unless the Sentinels have named another primary since.
    fn cached(&self) -> Option<(u64, MultiplexedConnection, Option<u64>)> {
        let epoch = *self.sentinels.epoch.borrow();
        let current = self.link.current.lock().ok()?;
        match current.as_ref() {
            Some(c) if c.epoch == epoch => Some((c.generation, c.handle.clone(), c.pushes)),
            _ => None,
        }
    }

    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection, Option<u64>)> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let mut generation = self.link.connecting.lock().await;
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let epoch = *self.sentinels.epoch.borrow();
        let client = self.sentinels.primary().await.map_err(unavailable)?;
        let mut config = self.link.config.clone();
        let mut pushes = None;
        if let Some(route) = &self.link.pushes {
            let (number, sender) = route.sender();
            config = config.set_push_sender(sender);
            pushes = Some(number);
        }
        let handle = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *generation += 1;
        // A bus on the connection replaced here ended already: it was forgotten (and
        // detached), or another primary was named (its stream ends with the epoch).
        if let Ok(mut current) = self.link.current.lock() {
            *current = Some(Current {
                generation: *generation,
                epoch,
                handle: handle.clone(),
                pushes,
            });
        }
        Ok((*generation, handle, pushes))
    }

    /// Drops connection `generation` if it is still the one in use.
    fn forget(&self, generation: u64) {
        if let Ok(mut current) = self.link.current.lock()
            && current.as_ref().is_some_and(|c| c.generation == generation)
        {
            if let (Some(route), Some(number)) =
                (&self.link.pushes, current.as_ref().and_then(|c| c.pushes))
            {
                route.detach_connection(number);
            }
            *current = None;
        }
    }
}

fn unavailable(e: StoreError) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        e.to_string(),
    ))
}

/// Whether an error means the node is gone, unreachable or no longer the primary.
fn lost_primary(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ::redis::ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}

/// Whether a reply is an error that says the node is no longer the primary (a demoted primary
/// answers writes with READONLY).
fn demoted(v: &Value) -> bool {
    matches!(v, Value::ServerError(e)
        if matches!(e.kind(), Some(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)))
}

impl ConnectionLike for SentinelHandle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut handle, _) = self.connection().await?;
            let reply = handle.req_packed_command(cmd).await;
            match &reply {
                Err(e) if lost_primary(e) => self.forget(generation),
                Ok(v) if demoted(v) => self.forget(generation),
                _ => {}
            }
            reply
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut handle, _) = self.connection().await?;
            let reply = handle.req_packed_commands(pipeline, offset, count).await;
            match &reply {
                Err(e) if lost_primary(e) => self.forget(generation),
                Ok(vs) if vs.iter().any(demoted) => self.forget(generation),
                _ => {}
            }
            reply
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp() -> ::redis::io::tcp::TcpSettings {
        ::redis::io::tcp::TcpSettings::default()
    }

    fn none() -> PrimaryAuth {
        PrimaryAuth::default()
    }

    #[test]
    fn the_primary_is_reached_with_its_credentials_and_the_sentinels_tls() {
        let auth = PrimaryAuth {
            username: Some("game".into()),
            password: Some("s3cret".into()),
        };
        let second = Duration::from_secs(1);
        let plain = Sentinels::new(
            &["10.0.0.1:26379".into()],
            "ttt",
            auth.clone(),
            tcp(),
            second,
        )
        .unwrap();
        let info = plain.primary_info("10.0.0.9:6379").unwrap();
        assert_eq!(info.redis_settings().username(), Some("game"));
        assert_eq!(info.redis_settings().password(), Some("s3cret"));
        assert!(matches!(info.addr(), ::redis::ConnectionAddr::Tcp(h, 6379) if h == "10.0.0.9"));
        let tls = Sentinels::new(
            &[
                "rediss://10.0.0.1:26379".into(),
                "rediss://10.0.0.2:26379".into(),
            ],
            "ttt",
            none(),
            tcp(),
            second,
        )
        .unwrap();
        let info = tls.primary_info("10.0.0.9:6379").unwrap();
        assert!(matches!(
            info.addr(),
            ::redis::ConnectionAddr::TcpTls { port: 6379, .. }
        ));
        assert_eq!(info.redis_settings().password(), None);
        assert!(matches!(
            Sentinels::new(
                &["rediss://10.0.0.1:26379".into(), "10.0.0.2:26379".into()],
                "ttt",
                none(),
                tcp(),
                second,
            ),
            Err(StoreError::Config(_))
        ));
    }

    #[test]
    fn sentinels_need_addresses_and_a_master_name() {
        let second = Duration::from_secs(1);
        assert!(matches!(
            Sentinels::new(&[" ".into()], "ttt", none(), tcp(), second),
            Err(StoreError::Config(_))
        ));
        assert!(matches!(
            Sentinels::new(&["127.0.0.1:26379".into()], " ", none(), tcp(), second),
            Err(StoreError::Config(_))
        ));
    }

    #[test]
    fn sentinel_addresses_may_be_bare_or_urls() {
        let addrs = [
            "127.0.0.1:26379".to_string(),
            "redis://127.0.0.1:26380".to_string(),
        ];
        assert!(Sentinels::new(&addrs, "ttt", none(), tcp(), Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn errors_that_mean_the_primary_is_gone_or_demoted() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(lost_primary(&refused));
        let readonly = RedisError::from((
            ::redis::ErrorKind::Server(ServerErrorKind::ReadOnly),
            "READONLY",
        ));
        assert!(lost_primary(&readonly));
        let script = RedisError::from((
            ::redis::ErrorKind::Server(ServerErrorKind::NoScript),
            "NOSCRIPT",
        ));
        assert!(!lost_primary(&script));
    }
}
