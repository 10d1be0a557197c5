//! Pub/sub on the command link itself, on a single Redis: over RESP3 a subscribed connection
//! keeps taking commands, and a channel's messages arrive on it as pushes. One connection per
//! instance then carries both, so a move's own event leaves Redis in the same write as the
//! script's reply and reaches the instance in the same read, where a separate subscriber
//! connection cost Redis one more write and the instance one more read and wake-up per move
//! (docs/benchmarks.md, "Human pace, fourth pass").
//!
//! The stream of messages ends whenever the subscriptions can no longer be trusted: the
//! connection dropped (the connection manager reports it), or the link replaced a hung
//! connection by a fresh one. The hub then connects again, resubscribes on the link's current
//! connection and has its clients catch up, as with a connection of its own.

use super::decode::text;
use super::link::{Link, classify};
use crate::store::{Bus, BusLink, BusMessage, BusSink, StoreError, StoreResult};
use ::redis::aio::{AsyncPushSender, ConnectionManager, SendError};
use ::redis::{PushInfo, PushKind, Value};
use async_trait::async_trait;
use futures_util::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// Where the pushes of the link's connections go: to the stream of the bus connected on the
/// link's current generation, if any. A generation's sender forwards only while it is the one
/// attached, so a replaced connection that wakes up again cannot feed the stream stale
/// messages.
#[derive(Default)]
pub(super) struct PushRoute {
    attached: Mutex<Option<(u64, UnboundedSender<PushInfo>)>>,
}

impl PushRoute {
    /// Routes `generation`'s pushes to a new stream, ending the previous one.
    fn attach(&self, generation: u64) -> UnboundedReceiver<PushInfo> {
        let (tx, rx) = unbounded_channel();
        *self.lock() = Some((generation, tx));
        rx
    }

    /// `generation` was replaced: its stream ends, so that the hub moves to the new one.
    pub(super) fn detach(&self, generation: u64) {
        let mut attached = self.lock();
        if attached.as_ref().is_some_and(|(g, _)| *g == generation) {
            *attached = None;
        }
    }

    /// The push sender of one generation's connection.
    pub(super) fn sender(self: &Arc<Self>, generation: u64) -> GenerationPushes {
        GenerationPushes {
            generation,
            route: self.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, UnboundedSender<PushInfo>)>> {
        // Held for a send or a swap, never across an await.
        self.attached.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) struct GenerationPushes {
    generation: u64,
    route: Arc<PushRoute>,
}

impl AsyncPushSender for GenerationPushes {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        if let Some((generation, tx)) = self.route.lock().as_ref()
            && *generation == self.generation
        {
            // The stream's end (receiver dropped) is the hub reconnecting: nothing to report.
            let _ = tx.send(info);
        }
        Ok(())
    }
}

/// The bus of a single Redis, on the store's own link.
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
    connection: ConnectionManager,
    generation: u64,
    link: Arc<Link>,
    op_timeout: Duration,
}

impl LinkBusSink {
    /// One subscription command (or ping) under the operation timeout; a timeout makes the
    /// connection suspect, as a command's does (see [`Link`]).
    async fn bounded<T>(
        &self,
        what: &'static str,
        within: Duration,
        f: impl Future<Output = ::redis::RedisResult<T>>,
    ) -> StoreResult<T> {
        match tokio::time::timeout(within, f).await {
            Err(_) => {
                self.link.suspect(self.generation);
                Err(StoreError::Unavailable(format!("{what} timed out")))
            }
            Ok(r) => r.map_err(classify),
        }
    }
}

/// What one push means for the message stream.
enum Push {
    Message(BusMessage),
    Ignore,
    /// The connection dropped: whatever was published meanwhile was not heard.
    Lost,
}

fn on_push(push: PushInfo) -> Push {
    match push.kind {
        PushKind::Disconnection => Push::Lost,
        PushKind::Message => {
            let mut data = push.data.into_iter();
            match (data.next().as_ref().and_then(text), data.next()) {
                (Some(channel), Some(Value::BulkString(payload))) => Push::Message(BusMessage {
                    channel,
                    payload: payload.into(),
                }),
                _ => Push::Ignore,
            }
        }
        // Subscription confirmations and anything else a RESP3 server pushes.
        _ => Push::Ignore,
    }
}

#[async_trait]
impl Bus for LinkBus {
    async fn connect(&self) -> StoreResult<BusLink> {
        let (generation, connection) = self
            .link
            .shared_connection()
            .ok_or_else(|| StoreError::Config("this link carries no pub/sub".into()))?;
        // Attached before anything is subscribed: no message of this connection is missed.
        let rx = self.route.attach(generation);
        let sink = LinkBusSink {
            connection,
            generation,
            link: self.link.clone(),
            op_timeout: self.op_timeout,
        };
        // The manager connects lazily: this makes the link's connection now, or says why not.
        let mut ping = sink.connection.clone();
        let _: Value = sink
            .bounded(
                "pub/sub connect",
                self.op_timeout,
                ::redis::cmd("PING").query_async(&mut ping),
            )
            .await?;
        let messages = futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match on_push(rx.recv().await?) {
                    Push::Message(m) => return Some((m, rx)),
                    Push::Ignore => continue,
                    Push::Lost => return None,
                }
            }
        })
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
        let within = self.op_timeout.min(Duration::from_secs(1));
        let mut c = self.connection.clone();
        let _: Value = self
            .bounded(
                "pub/sub ping",
                within,
                ::redis::cmd("PING").query_async(&mut c),
            )
            .await?;
        Ok(())
    }
}
