//! Pub/sub on the command link itself, on one Redis and behind Sentinel: over RESP3 a
//! subscribed connection keeps taking commands, and a channel's messages arrive on it as
//! pushes. One connection per instance then carries both, so a move's own event leaves Redis
//! in the same write as the script's reply and reaches the instance in the same read, where a
//! separate subscriber connection cost Redis one more write and the instance one more read and
//! wake-up per move (docs/benchmarks.md, "Human pace, fourth pass").
//!
//! Each message goes to the hub as the client reads it, in the client's own task (see
//! [`crate::store::Deliver`]): a channel to the hub's task cost every message one more task
//! wake-up and a turn of the hub's loop. The link's stream then carries no messages, only the
//! end of the subscriptions, whenever they can no longer be trusted: the connection dropped
//! (the client reports it), the link replaced a hung connection by a fresh one, or (behind
//! Sentinel) the connection was left for another primary. The hub then connects again,
//! resubscribes on the link's current connection and has its clients catch up, as with a
//! connection of its own.

use super::decode::text;
use super::link::{BusConnection, Link, classify};
use super::sentinel::SentinelHandle;
use crate::store::{Bus, BusLink, BusMessage, BusSink, Deliver, StoreError, StoreResult};
use ::redis::aio::{AsyncPushSender, ConnectionManager, MultiplexedConnection, SendError};
use ::redis::{ConnectionInfo, PushInfo, PushKind, RedisResult, ToRedisArgs, Value};
use async_trait::async_trait;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// `info` made to speak RESP3, which a connection needs to take commands while subscribed;
/// its replies are read in RESP2's shapes (`decode::resp2`).
pub(super) fn speaking_resp3(info: ConnectionInfo) -> ConnectionInfo {
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(::redis::ProtocolVersion::RESP3);
    info.set_redis_settings(settings)
}

/// Where the pushes of the link's connections go: to the hub of the bus connected on one of
/// them, if any. Each connection has its own sender, which forwards only while its connection
/// is the one attached, so a replaced connection that wakes up again cannot feed the hub stale
/// messages.
#[derive(Default)]
pub(super) struct PushRoute {
    next_connection: AtomicU64,
    attached: Mutex<Option<Attached>>,
}

struct Attached {
    /// The link's generation (see [`Link`]) and the connection within it.
    generation: u64,
    connection: u64,
    deliver: Deliver,
    /// Dropped with the route: the end of the subscriptions, for the stream.
    _held: oneshot::Sender<()>,
}

impl PushRoute {
    /// Routes `connection`'s messages to `deliver`, ending the previous route. The receiver
    /// resolves when this route ends (replaced, detached, or its connection dropped).
    fn attach(&self, generation: u64, connection: u64, deliver: Deliver) -> oneshot::Receiver<()> {
        let (held, ended) = oneshot::channel();
        *self.lock() = Some(Attached {
            generation,
            connection,
            deliver,
            _held: held,
        });
        ended
    }

    /// The link replaced generation `generation`: its stream ends, so that the hub moves to
    /// the new one.
    pub(super) fn detach_generation(&self, generation: u64) {
        let mut attached = self.lock();
        if attached
            .as_ref()
            .is_some_and(|a| a.generation == generation)
        {
            *attached = None;
        }
    }

    /// Connection `connection` was dropped (behind Sentinel: the node is gone or demoted).
    pub(super) fn detach_connection(&self, connection: u64) {
        let mut attached = self.lock();
        if attached
            .as_ref()
            .is_some_and(|a| a.connection == connection)
        {
            *attached = None;
        }
    }

    /// The push sender of a new connection, and the number that names the connection.
    pub(super) fn sender(self: &Arc<Self>) -> (u64, ConnectionPushes) {
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let pushes = ConnectionPushes {
            connection,
            route: self.clone(),
        };
        (connection, pushes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Attached>> {
        // Held for a send or a swap, never across an await.
        self.attached.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) struct ConnectionPushes {
    connection: u64,
    route: Arc<PushRoute>,
}

impl AsyncPushSender for ConnectionPushes {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        let mut attached = self.route.lock();
        let Some(a) = attached.as_ref() else {
            return Ok(());
        };
        if a.connection != self.connection {
            return Ok(());
        }
        match info.kind {
            // Under the lock, so that nothing is delivered once another connection is
            // attached.
            PushKind::Message => {
                if let Some(m) = channel_message(info.data) {
                    (a.deliver)(m);
                }
            }
            // The route's end ends the stream; nothing this connection reads after it
            // reaches the hub before the hub attaches again.
            PushKind::Disconnection => *attached = None,
            // Subscription confirmations and anything else a RESP3 server pushes.
            _ => {}
        }
        Ok(())
    }
}

/// The connection a bus subscribes on: the single Redis's connection manager, or the
/// connection a Sentinel link has to the primary, with the handle that made it and its
/// generation there (dropped when a call says the node is gone: the next connect then asks
/// the Sentinels again).
#[derive(Clone)]
enum Subscriber {
    Manager(ConnectionManager),
    Sentinel {
        connection: MultiplexedConnection,
        handle: SentinelHandle,
        made: u64,
    },
}

impl Subscriber {
    async fn subscribe(&mut self, channels: impl ToRedisArgs) -> RedisResult<()> {
        match self {
            Subscriber::Manager(c) => c.subscribe(channels).await,
            Subscriber::Sentinel { connection, .. } => connection.subscribe(channels).await,
        }
    }

    async fn unsubscribe(&mut self, channels: impl ToRedisArgs) -> RedisResult<()> {
        match self {
            Subscriber::Manager(c) => c.unsubscribe(channels).await,
            Subscriber::Sentinel { connection, .. } => connection.unsubscribe(channels).await,
        }
    }

    async fn ping(&mut self) -> RedisResult<Value> {
        let ping = ::redis::cmd("PING");
        match self {
            Subscriber::Manager(c) => ping.query_async(c).await,
            Subscriber::Sentinel { connection, .. } => ping.query_async(connection).await,
        }
    }
}

/// The bus of one Redis or of a Sentinel-watched primary, on the store's own link.
pub struct LinkBus {
    link: Arc<Link>,
    route: Arc<PushRoute>,
    op_timeout: Duration,
}

impl LinkBus {
    pub(super) fn new(link: Arc<Link>, route: Arc<PushRoute>, op_timeout: Duration) -> LinkBus {
        LinkBus {
            link,
            route,
            op_timeout,
        }
    }
}

struct LinkBusSink {
    connection: Subscriber,
    generation: u64,
    link: Arc<Link>,
    op_timeout: Duration,
}

impl LinkBusSink {
    async fn ping_within(&mut self, within: Duration) -> StoreResult<()> {
        let mut c = self.connection.clone();
        let _: Value = self.bounded("pub/sub ping", within, c.ping()).await?;
        Ok(())
    }

    /// One subscription command (or ping) under the operation timeout; a timeout makes the
    /// connection suspect, as a command's does (see [`Link`]).
    async fn bounded<T>(
        &self,
        what: &'static str,
        within: Duration,
        f: impl Future<Output = RedisResult<T>>,
    ) -> StoreResult<T> {
        match tokio::time::timeout(within, f).await {
            Err(_) => {
                self.link.suspect(self.generation);
                Err(StoreError::Unavailable(format!("{what} timed out")))
            }
            Ok(Err(e)) => {
                if let Subscriber::Sentinel { handle, made, .. } = &self.connection {
                    handle.forget_if_lost(*made, &e);
                }
                Err(classify(e))
            }
            Ok(Ok(v)) => Ok(v),
        }
    }
}

/// The message of a channel message's push (here and in `sharded_bus`): the channel, then
/// the payload.
pub(super) fn channel_message(data: Vec<Value>) -> Option<BusMessage> {
    let mut data = data.into_iter();
    match (data.next().as_ref().and_then(text), data.next()) {
        (Some(channel), Some(Value::BulkString(payload))) => Some(BusMessage {
            channel,
            payload: payload.into(),
        }),
        _ => None,
    }
}

#[async_trait]
impl Bus for LinkBus {
    async fn connect(&self, deliver: Deliver) -> StoreResult<BusLink> {
        let (generation, target) = self
            .link
            .bus_connection()
            .ok_or_else(|| StoreError::Config("this link carries no pub/sub".into()))?;
        let (connection, subscriber, mut moved) = match target {
            BusConnection::Manager(c, connection) => (connection, Subscriber::Manager(c), None),
            BusConnection::Sentinel(handle) => {
                // Taken before the connection: a primary named after it ends this stream.
                let epoch = handle.epoch();
                let found = tokio::time::timeout(self.op_timeout, handle.push_connection()).await;
                let (made, connection, c) = match found {
                    Err(_) => {
                        self.link.suspect(generation);
                        return Err(StoreError::Unavailable("pub/sub connect timed out".into()));
                    }
                    Ok(found) => found.map_err(classify)?,
                };
                let subscriber = Subscriber::Sentinel {
                    connection: c,
                    handle,
                    made,
                };
                (connection, subscriber, Some(epoch))
            }
        };
        // Attached before anything is subscribed: no message of this connection is missed.
        let ended = self.route.attach(generation, connection, deliver);
        let mut sink = LinkBusSink {
            connection: subscriber,
            generation,
            link: self.link.clone(),
            op_timeout: self.op_timeout,
        };
        // The single Redis's manager connects lazily: this makes the connection now, or says
        // why not.
        sink.ping_within(self.op_timeout).await?;
        let moved = async move {
            match moved.as_mut() {
                Some(epoch) => drop(epoch.changed().await),
                None => std::future::pending::<()>().await,
            }
        };
        // No message comes this way (`ConnectionPushes` delivers them): the stream only ends,
        // with the route or when the Sentinels name another primary.
        let messages = futures_util::stream::once(ended)
            .filter_map(|_| std::future::ready(None))
            .take_until(moved)
            .boxed();
        Ok(BusLink {
            sink: Box::new(sink),
            messages,
        })
    }
}

#[async_trait]
impl BusSink for LinkBusSink {
    async fn subscribe(&mut self, channels: &[String]) -> StoreResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        let mut c = self.connection.clone();
        self.bounded("subscribe", self.op_timeout, c.subscribe(channels))
            .await
    }

    async fn unsubscribe(&mut self, channels: &[String]) -> StoreResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        let mut c = self.connection.clone();
        self.bounded("unsubscribe", self.op_timeout, c.unsubscribe(channels))
            .await
    }

    async fn ping(&mut self) -> StoreResult<()> {
        // No longer than a probe waits for its echo: a hung connection must be noticed (and
        // replaced) well within REDIS_LOST_MS.
        self.ping_within(self.op_timeout.min(Duration::from_secs(1)))
            .await
    }
}
