//! The in-process pub/sub: every subscriber sees every message of the channels it asked for,
//! in publishing order; one that falls too far behind sees its stream end, as after a
//! dropped Redis connection.

use crate::store::{Bus, BusLink, BusMessage, BusSink, Deliver, StoreResult};
use async_trait::async_trait;
use futures_util::StreamExt;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// The in-process pub/sub. A hub that falls `BUS_CAPACITY` messages behind sees its stream
/// end, exactly like a dropped Redis connection, and resynchronises.
pub struct MemoryBus {
    pub(super) tx: broadcast::Sender<BusMessage>,
}

struct MemorySink {
    channels: Arc<Mutex<HashSet<String>>>,
}

#[async_trait]
impl Bus for MemoryBus {
    // Messages come on the stream, in publishing order from the broadcast channel.
    async fn connect(&self, _deliver: Deliver) -> StoreResult<BusLink> {
        let channels: Arc<Mutex<HashSet<String>>> = Arc::default();
        let filter = channels.clone();
        let rx = self.tx.subscribe();
        let messages = futures_util::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(m) => Some((m, rx)),
                Err(_) => None,
            }
        })
        .filter(move |m| {
            let wanted = filter
                .lock()
                .map(|set| set.contains(&m.channel))
                .unwrap_or(false);
            async move { wanted }
        })
        .boxed();
        Ok(BusLink {
            sink: Box::new(MemorySink { channels }),
            messages,
        })
    }
}

#[async_trait]
impl BusSink for MemorySink {
    async fn subscribe(&mut self, channels: &[String]) -> StoreResult<()> {
        if let Ok(mut set) = self.channels.lock() {
            set.extend(channels.iter().cloned());
        }
        Ok(())
    }

    async fn unsubscribe(&mut self, channels: &[String]) -> StoreResult<()> {
        if let Ok(mut set) = self.channels.lock() {
            for c in channels {
                set.remove(c);
            }
        }
        Ok(())
    }
}
