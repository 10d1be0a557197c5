//! Sharded pub/sub on a Redis Cluster (SSUBSCRIBE over RESP3 pushes). The cluster client
//! resubscribes by itself after reconnects and slot moves, but whatever was published while a
//! node was unreachable is lost: on any disconnection the stream ends, so that the hub
//! reconnects and has its clients catch up, exactly as with a single Redis.

use super::decode::text;
use super::link::{classify, cluster_client};
use super::link_bus::channel_message;
use crate::store::{Bus, BusLink, BusMessage, BusSink, Deliver, StoreError, StoreResult};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{PushInfo, PushKind};
use async_trait::async_trait;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// Sharded (un)subscriptions in flight at once, on whichever nodes their slots live.
const CHANNELS_AT_ONCE: usize = 16;

pub struct ClusterBus {
    nodes: Vec<String>,
    op_timeout: Duration,
}

impl ClusterBus {
    pub(super) fn new(nodes: Vec<String>, op_timeout: Duration) -> ClusterBus {
        ClusterBus { nodes, op_timeout }
    }
}

/// Channels a sink is unsubscribing from: their `sunsubscribe` confirmations are expected.
/// Any other `sunsubscribe` comes from the server (the slot moved to another master) and means
/// the subscription is gone.
type Leaving = Arc<Mutex<HashSet<String>>>;

struct ClusterBusSink {
    handle: ClusterConnection,
    op_timeout: Duration,
    leaving: Leaving,
}

/// What one push means for the stream.
enum Push {
    Message(BusMessage),
    Ignore,
    /// The subscriptions can no longer be trusted (the connection dropped, or the server
    /// dropped a channel whose slot moved): end the stream.
    Lost,
}

fn on_push(push: PushInfo, leaving: &Leaving) -> Push {
    match push.kind {
        PushKind::Disconnection => Push::Lost,
        PushKind::SUnsubscribe => {
            let channel = push.data.first().and_then(text).unwrap_or_default();
            let ours = leaving
                .lock()
                .map(|mut set| set.remove(&channel))
                .unwrap_or(false);
            if ours {
                Push::Ignore
            } else {
                tracing::info!(
                    %channel,
                    "shard channel dropped by the server (slot moved); resubscribing"
                );
                Push::Lost
            }
        }
        PushKind::SMessage | PushKind::Message => {
            channel_message(push.data).map_or(Push::Ignore, Push::Message)
        }
        _ => Push::Ignore,
    }
}

#[async_trait]
impl Bus for ClusterBus {
    // Messages come on the stream, through `on_push`'s bookkeeping of channels being left;
    // handing them over as read is done and measured on one Redis only (`link_bus`).
    async fn connect(&self, _deliver: Deliver) -> StoreResult<BusLink> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let client = cluster_client(&self.nodes, self.op_timeout, Some(tx))?;
        let handle = tokio::time::timeout(self.op_timeout, client.get_async_connection())
            .await
            .map_err(|_| StoreError::Unavailable("cluster connect timed out".into()))?
            .map_err(classify)?;
        let leaving = Leaving::default();
        let expected = leaving.clone();
        let messages = messages(rx, move |push| on_push(push, &expected));
        Ok(BusLink {
            sink: Box::new(ClusterBusSink {
                handle,
                op_timeout: self.op_timeout,
                leaving,
            }),
            messages,
        })
    }
}

/// A sharded subscription command.
#[derive(Clone, Copy)]
enum Shard {
    Subscribe,
    Unsubscribe,
}

impl Shard {
    fn name(self) -> &'static str {
        match self {
            Shard::Subscribe => "ssubscribe",
            Shard::Unsubscribe => "sunsubscribe",
        }
    }
}

impl ClusterBusSink {
    /// One command per channel (channels of different slots live on different nodes), a few
    /// at a time: a burst of new games is not one round trip after another.
    async fn each_channel(&self, channels: &[String], command: Shard) -> StoreResult<()> {
        let op_timeout = self.op_timeout;
        futures_util::stream::iter(channels.to_vec())
            .map(|c| {
                let mut handle = self.handle.clone();
                async move {
                    let sent = async {
                        match command {
                            Shard::Subscribe => handle.ssubscribe(&c).await,
                            Shard::Unsubscribe => handle.sunsubscribe(&c).await,
                        }
                    };
                    tokio::time::timeout(op_timeout, sent)
                        .await
                        .map_err(|_| {
                            StoreError::Unavailable(format!("{} timed out", command.name()))
                        })?
                        .map_err(classify)
                }
            })
            .buffer_unordered(CHANNELS_AT_ONCE)
            .try_collect()
            .await
    }
}

#[async_trait]
impl BusSink for ClusterBusSink {
    async fn subscribe(&mut self, channels: &[String]) -> StoreResult<()> {
        self.each_channel(channels, Shard::Subscribe).await
    }

    async fn unsubscribe(&mut self, channels: &[String]) -> StoreResult<()> {
        if let Ok(mut set) = self.leaving.lock() {
            set.extend(channels.iter().cloned());
        }
        self.each_channel(channels, Shard::Unsubscribe).await
    }
}

/// The messages among `rx`'s pushes, as `read` tells them apart, until the first it calls
/// lost.
fn messages<F>(rx: UnboundedReceiver<PushInfo>, read: F) -> BoxStream<'static, BusMessage>
where
    F: Fn(PushInfo) -> Push + Send + Sync + 'static,
{
    futures_util::stream::unfold((rx, read), |(mut rx, read)| async move {
        loop {
            match read(rx.recv().await?) {
                Push::Message(m) => return Some((m, (rx, read))),
                Push::Ignore => continue,
                Push::Lost => return None,
            }
        }
    })
    .boxed()
}
