//! Pub/sub on a single Redis: a dedicated connection per instance, whose message stream ends
//! when the connection is lost (the hub then reconnects, resubscribes and catches up), and
//! which answers pings, so that a connection that hangs without an error is noticed too.

use super::connection::classify;
use super::*;
use futures_util::StreamExt;

pub struct RedisBus {
    client: ::redis::Client,
    op_timeout: Duration,
}

impl RedisBus {
    pub(super) fn new(client: ::redis::Client, op_timeout: Duration) -> RedisBus {
        RedisBus { client, op_timeout }
    }
}

struct RedisBusSink {
    sink: ::redis::aio::PubSubSink,
    op_timeout: Duration,
}

#[async_trait]
impl Bus for RedisBus {
    async fn connect(&self) -> StoreResult<BusConnection> {
        let pubsub = tokio::time::timeout(self.op_timeout, self.client.get_async_pubsub())
            .await
            .map_err(|_| StoreError::Unavailable("pub/sub connect timed out".into()))?
            .map_err(classify)?;
        let (sink, stream) = pubsub.split();
        let messages = stream
            .map(|msg| BusMessage {
                channel: msg.get_channel_name().to_string(),
                payload: Bytes::copy_from_slice(msg.get_payload_bytes()),
            })
            .boxed();
        Ok(BusConnection {
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
