//! The bus connection's supervision: connect, subscribe to what the local games need,
//! dispatch, ping, and after a loss reconnect with backoff, resubscribe and have every local
//! connection catch up.

use super::{Hub, Outbound};
use crate::store::{Bus, BusLink};
use futures_util::StreamExt;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tictactoe_protocol::backoff::Backoff;
use tictactoe_protocol::ids::GameId;
use tokio_util::sync::CancellationToken;

impl Hub {
    /// Replaces the bus connection (it stopped delivering): the bus task reconnects,
    /// resubscribes and has every local connection catch up, as after any other loss.
    pub fn renew_bus(&self) {
        if self.is_bus_up() {
            self.renew_bus.notify_one();
        }
    }

    pub fn is_bus_up(&self) -> bool {
        self.bus_up.load(Ordering::Relaxed)
    }

    pub(super) fn request_sync(&self, game: &GameId) {
        if let Ok(mut p) = self.pending.lock() {
            p.insert(game.clone());
        }
        self.wake.notify_one();
    }

    pub(super) fn take_pending(&self) -> HashSet<GameId> {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }

    pub(super) fn set_ready(&self, game: &GameId, ready: bool) {
        if let Some(t) = self.topics.get(game) {
            t.ready.send_replace(ready);
        }
    }

    pub(super) fn set_all_unready(&self) {
        for t in self.topics.iter() {
            t.ready.send_replace(false);
        }
    }

    /// Owns the bus connection for the life of the instance: connects, subscribes to what
    /// the topics need, dispatches messages, pings the connection every `ping_every` (a hung
    /// connection delivers nothing and reports nothing), and after a loss reconnects with
    /// backoff, resubscribes and tells every local connection to resynchronise.
    pub async fn run_bus(
        self: Arc<Self>,
        bus: Arc<dyn Bus>,
        ping_every: Duration,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut connected_before = false;
        loop {
            let link = tokio::select! {
                _ = shutdown.cancelled() => return,
                c = bus.connect() => c,
            };
            match link {
                Ok(link) => {
                    let outcome = self
                        .serve_bus(link, &shutdown, connected_before, &mut backoff, ping_every)
                        .await;
                    self.bus_up.store(false, Ordering::Relaxed);
                    self.set_all_unready();
                    metrics::gauge!("pubsub_subscriptions").set(0.0);
                    if outcome == BusExit::Shutdown {
                        return;
                    }
                    connected_before = true;
                    metrics::counter!("pubsub_disconnects_total").increment(1);
                    tracing::warn!("pub/sub connection lost; reconnecting");
                }
                Err(e) => tracing::warn!(error = %e, "pub/sub connect failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    async fn serve_bus(
        &self,
        link: BusLink,
        shutdown: &CancellationToken,
        reconnected: bool,
        backoff: &mut Backoff,
        ping_every: Duration,
    ) -> BusExit {
        let BusLink {
            mut sink,
            mut messages,
        } = link;
        // Whatever is wanted now; changes from here on arrive through `pending`.
        self.take_pending();
        let games: Vec<GameId> = self.topics.iter().map(|t| t.key().clone()).collect();
        let mut channels = vec![self.instance_channel.clone(), self.lobby_channel.clone()];
        channels.extend(games.iter().map(|g| self.keys.game_channel(g)));
        for batch in channels.chunks(512) {
            if let Err(e) = sink.subscribe(batch).await {
                tracing::warn!(error = %e, "pub/sub subscribe failed");
                return BusExit::Lost;
            }
        }
        let mut subscribed: HashSet<GameId> = games.iter().cloned().collect();
        metrics::gauge!("pubsub_subscriptions").set(subscribed.len() as f64);
        let mut ping = tokio::time::interval(ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        // A renewal asked for the previous connection is not one for this one.
        let _ = futures_util::FutureExt::now_or_never(self.renew_bus.notified());
        self.bus_up.store(true, Ordering::Relaxed);
        backoff.reset();
        for g in &games {
            self.set_ready(g, true);
        }
        if reconnected {
            tracing::info!(games = games.len(), "pub/sub reconnected; resynchronising");
            self.lobby_dirty.store(true, Ordering::Relaxed);
            for g in &games {
                if let Some(t) = self.topics.get(g) {
                    for m in &t.members {
                        m.sub.mailbox.offer(Outbound::CatchUp(Box::new(g.clone())));
                    }
                }
            }
        }
        // Armed only while presence is due: an idle instance is not woken for it.
        let mut presence_at: Option<tokio::time::Instant> = None;
        loop {
            if presence_at.is_none() && self.has_presence_due() {
                presence_at = Some(tokio::time::Instant::now() + self.presence_every);
            }
            let presence_until = presence_at.unwrap_or_else(tokio::time::Instant::now);
            for game in self.take_pending() {
                let wanted = self.topics.contains_key(&game);
                let channel = [self.keys.game_channel(&game)];
                if wanted && !subscribed.contains(&game) {
                    if let Err(e) = sink.subscribe(&channel).await {
                        tracing::warn!(error = %e, "pub/sub subscribe failed");
                        self.request_sync(&game);
                        return BusExit::Lost;
                    }
                    subscribed.insert(game.clone());
                } else if !wanted && subscribed.contains(&game) {
                    if let Err(e) = sink.unsubscribe(&channel).await {
                        tracing::warn!(error = %e, "pub/sub unsubscribe failed");
                        return BusExit::Lost;
                    }
                    subscribed.remove(&game);
                }
                if wanted {
                    self.set_ready(&game, true);
                }
                metrics::gauge!("pubsub_subscriptions").set(subscribed.len() as f64);
            }
            tokio::select! {
                _ = shutdown.cancelled() => return BusExit::Shutdown,
                _ = self.wake.notified() => {}
                _ = self.renew_bus.notified() => {
                    tracing::warn!("pub/sub connection stopped delivering: replacing it");
                    return BusExit::Lost;
                }
                _ = ping.tick() => {
                    if let Err(e) = sink.ping().await {
                        tracing::warn!(error = %e, "pub/sub connection does not answer: replacing it");
                        return BusExit::Lost;
                    }
                }
                _ = tokio::time::sleep_until(presence_until), if presence_at.is_some() => {
                    presence_at = None;
                    self.flush_presence();
                }
                m = messages.next() => match m {
                    Some(m) => self.dispatch(m),
                    None => return BusExit::Lost,
                },
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum BusExit {
    Lost,
    Shutdown,
}
