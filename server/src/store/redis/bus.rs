//! Pub/sub behind Sentinel: a dedicated connection per instance to the primary the Sentinels
//! name, whose message stream ends when the connection is lost or another primary is named
//! (the hub then reconnects, resubscribes and catches up), and which answers pings, so that a
//! connection that hangs without an error is noticed too. (On a single Redis pub/sub rides
//! on the command link: see `link_bus`.)

use super::link::classify;
use super::sentinel::Sentinels;
use crate::store::{Bus, BusLink, BusMessage, BusSink, StoreError, StoreResult};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Connects to whichever node the Sentinels name primary at each (re)connect: after a
/// failover the old connection ends with the old primary, and the next one finds the new
/// primary.
pub struct RedisBus {
    sentinels: Arc<Sentinels>,
    op_timeout: Duration,
}

impl RedisBus {
    pub(super) fn following(sentinels: Arc<Sentinels>, op_timeout: Duration) -> RedisBus {
        RedisBus {
            sentinels,
            op_timeout,
        }
    }
}

struct RedisBusSink {
    sink: ::redis::aio::PubSubSink,
    op_timeout: Duration,
}

#[async_trait]
impl Bus for RedisBus {
    async fn connect(&self) -> StoreResult<BusLink> {
        let mut epoch = self.sentinels.epoch();
        let client = self.sentinels.primary().await?;
        let pubsub = tokio::time::timeout(self.op_timeout, client.get_async_pubsub())
            .await
            .map_err(|_| StoreError::Unavailable("pub/sub connect timed out".into()))?
            .map_err(classify)?;
        let (sink, stream) = pubsub.split();
        // Behind Sentinel the stream also ends when the Sentinels name another primary: the
        // old one may still run and no longer hear what the new one publishes.
        let moved = async move {
            let _ = epoch.changed().await;
        };
        let messages = stream
            .map(|msg| BusMessage {
                channel: msg.get_channel_name().to_string(),
                payload: Bytes::copy_from_slice(msg.get_payload_bytes()),
            })
            .take_until(moved)
            .boxed();
        Ok(BusLink {
            sink: Box::new(RedisBusSink {
                sink,
                op_timeout: self.op_timeout,
            }),
            messages,
        })
    }
}

#[async_trait]
impl BusSink for RedisBusSink {
    async fn subscribe(&mut self, channels: &[String]) -> StoreResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        tokio::time::timeout(self.op_timeout, self.sink.subscribe(channels))
            .await
            .map_err(|_| StoreError::Unavailable("subscribe timed out".into()))?
            .map_err(classify)
    }

    async fn unsubscribe(&mut self, channels: &[String]) -> StoreResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        tokio::time::timeout(self.op_timeout, self.sink.unsubscribe(channels))
            .await
            .map_err(|_| StoreError::Unavailable("unsubscribe timed out".into()))?
            .map_err(classify)
    }

    async fn ping(&mut self) -> StoreResult<()> {
        // No longer than a probe waits for its echo: a hung subscription must be noticed (and
        // replaced) well within REDIS_LOST_MS.
        let within = self.op_timeout.min(Duration::from_secs(1));
        let _: ::redis::Value = tokio::time::timeout(within, self.sink.ping())
            .await
            .map_err(|_| StoreError::Unavailable("pub/sub ping timed out".into()))?
            .map_err(classify)?;
        Ok(())
    }
}
