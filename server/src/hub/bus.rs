//! The bus connection's supervision: connect, subscribe to what the local games need,
//! dispatch, ping, and after a loss reconnect with backoff, resubscribe and have every local
//! connection catch up.

use super::{Hub, Outbound};
use crate::store::{Bus, BusLink, BusMessage, Deliver, StoreError, StoreResult};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tictactoe_protocol::backoff::Backoff;
use tictactoe_protocol::ids::GameId;
use tokio_util::sync::CancellationToken;

/// Channels per SUBSCRIBE or UNSUBSCRIBE: enough that a burst of new games costs a few round
/// trips, few enough that one command's confirmations stay a bounded read.
const SUBSCRIBE_BATCH: usize = 512;

/// After a reconnect, every local connection catches up once more this long after the first
/// time: a write that was in flight during the outage (a move queued by the Redis client
/// while a failover went on, or one the replicas had not confirmed) can land in the log after
/// the first catch-up read it, with its publication lost to the outage. Seen in the chaos
/// run: such a game waited for an event nobody would ever send again.
pub(super) const LATE_RESYNC: Duration = Duration::from_secs(5);

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

    /// Has every local connection of every local game catch up from the log.
    fn resync_all(&self) {
        for t in self.topics.iter() {
            for m in &t.members {
                m.sub
                    .mailbox
                    .offer(Outbound::CatchUp(Box::new(t.key().clone())));
            }
        }
    }

    pub(super) fn set_all_unready(&self) {
        for t in self.topics.iter() {
            t.ready.send_replace(false);
        }
        self.set_lobby_ready(false);
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
        // Weak: the store's link keeps it as long as it lives.
        let hub = Arc::downgrade(&self);
        let deliver: Deliver = Arc::new(move |m| {
            if let Some(hub) = hub.upgrade() {
                hub.dispatch(m);
            }
        });
        loop {
            let link = tokio::select! {
                _ = shutdown.cancelled() => return,
                c = bus.connect(deliver.clone()) => c,
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

    fn channels_of(&self, games: &[GameId]) -> Vec<String> {
        games.iter().map(|g| self.keys.game_channel(g)).collect()
    }

    /// Runs one (un)subscription of games, dispatching what arrives meanwhile: on a Cluster
    /// each channel is a round trip of its own (its slot decides the node), and thousands of
    /// them must not hold up every other message. A message of a game still being subscribed
    /// was published after Redis took the subscription, and reaches only connections waiting
    /// to join the game: they read it once their join is done, after their snapshot (read once
    /// the subscription is confirmed), which it follows or which already holds it (dropped by
    /// its version). A lost connection ends the stream: `Unavailable` then.
    async fn dispatching(
        &self,
        op: impl std::future::Future<Output = StoreResult<()>>,
        messages: &mut BoxStream<'static, BusMessage>,
    ) -> StoreResult<()> {
        tokio::pin!(op);
        loop {
            tokio::select! {
                biased;
                done = &mut op => return done,
                m = messages.next() => match m {
                    Some(m) => self.dispatch(m),
                    None => return Err(StoreError::Unavailable("pub/sub connection lost".into())),
                },
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
        let mut lobby_subscribed = self.lobby_wanted();
        let mut channels = vec![self.instance_channel.clone()];
        if lobby_subscribed {
            channels.push(self.lobby_channel.clone());
        }
        channels.extend(self.channels_of(&games));
        for batch in channels.chunks(SUBSCRIBE_BATCH) {
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
        self.set_lobby_ready(lobby_subscribed);
        let mut late_resync = None;
        if reconnected {
            tracing::info!(games = games.len(), "pub/sub reconnected; resynchronising");
            self.lobby_dirty.store(true, Ordering::Relaxed);
            self.resync_all();
            late_resync = Some(tokio::time::Instant::now() + LATE_RESYNC);
        }
        // Armed only while presence is due: an idle instance is not woken for it.
        let mut presence_at: Option<tokio::time::Instant> = None;
        loop {
            if presence_at.is_none() && self.has_presence_due() {
                presence_at = Some(tokio::time::Instant::now() + self.presence_every);
            }
            let presence_until = presence_at.unwrap_or_else(tokio::time::Instant::now);
            if let Some(wanted) = self.lobby_wanted_change() {
                if wanted != lobby_subscribed {
                    let channel = [self.lobby_channel.clone()];
                    let done = if wanted {
                        sink.subscribe(&channel).await
                    } else {
                        sink.unsubscribe(&channel).await
                    };
                    if let Err(e) = done {
                        tracing::warn!(error = %e, "pub/sub lobby (un)subscribe failed");
                        return BusExit::Lost;
                    }
                    lobby_subscribed = wanted;
                }
                // A new watcher lists the lobby once this says so: it misses nothing.
                self.set_lobby_ready(lobby_subscribed);
            }
            // Every change waiting goes in as few commands as it takes, and messages are
            // dispatched while they are on their way: a burst of arrivals (another instance's
            // players resuming here) once queued thousands of games, one round trip each with
            // nothing dispatched meanwhile, the watchdog's probes included, long enough for it
            // to think the bus dead and replace it, after which every game here caught up.
            let (mut join, mut part) = (Vec::new(), Vec::new());
            for game in self.take_pending() {
                let wanted = self.topics.contains_key(&game);
                if wanted && !subscribed.contains(&game) {
                    join.push(game);
                } else if !wanted && subscribed.contains(&game) {
                    part.push(game);
                } else if wanted {
                    self.set_ready(&game, true);
                }
            }
            for (i, batch) in join.chunks(SUBSCRIBE_BATCH).enumerate() {
                let done = self
                    .dispatching(sink.subscribe(&self.channels_of(batch)), &mut messages)
                    .await;
                if let Err(e) = done {
                    tracing::warn!(error = %e, "pub/sub subscribe failed");
                    for game in &join[i * SUBSCRIBE_BATCH..] {
                        self.request_sync(game);
                    }
                    return BusExit::Lost;
                }
                for game in batch {
                    subscribed.insert(game.clone());
                    self.set_ready(game, true);
                }
            }
            for batch in part.chunks(SUBSCRIBE_BATCH) {
                let done = self
                    .dispatching(sink.unsubscribe(&self.channels_of(batch)), &mut messages)
                    .await;
                if let Err(e) = done {
                    tracing::warn!(error = %e, "pub/sub unsubscribe failed");
                    return BusExit::Lost;
                }
                for game in batch {
                    subscribed.remove(game);
                }
            }
            if !join.is_empty() || !part.is_empty() {
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
                _ = tokio::time::sleep_until(late_resync.unwrap_or_else(tokio::time::Instant::now)),
                    if late_resync.is_some() => {
                    late_resync = None;
                    self.resync_all();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{ConnId, HubError, Mailbox, Sent, Subscriber};
    use crate::store::{BusSink, Keys, StoreResult};
    use tictactoe_protocol::Role;
    use tictactoe_protocol::ids::PlayerId;
    use tokio::sync::mpsc;

    struct QuietSink;

    #[async_trait::async_trait]
    impl BusSink for QuietSink {
        async fn subscribe(&mut self, _: &[String]) -> StoreResult<()> {
            Ok(())
        }
        async fn unsubscribe(&mut self, _: &[String]) -> StoreResult<()> {
            Ok(())
        }
    }

    /// Serves a bus link of `sink` and no messages, a connection made again if `reconnected`,
    /// until the returned token is cancelled.
    fn serve(
        hub: &Arc<Hub>,
        sink: Box<dyn BusSink>,
        reconnected: bool,
    ) -> (CancellationToken, tokio::task::JoinHandle<BusExit>) {
        serve_with(
            hub,
            sink,
            reconnected,
            futures_util::stream::pending().boxed(),
        )
    }

    /// [`serve`] with the messages of `messages`.
    fn serve_with(
        hub: &Arc<Hub>,
        sink: Box<dyn BusSink>,
        reconnected: bool,
        messages: BoxStream<'static, BusMessage>,
    ) -> (CancellationToken, tokio::task::JoinHandle<BusExit>) {
        let link = BusLink { sink, messages };
        let stop = CancellationToken::new();
        let served = tokio::spawn({
            let (hub, stop) = (hub.clone(), stop.clone());
            async move {
                let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
                hub.serve_bus(
                    link,
                    &stop,
                    reconnected,
                    &mut backoff,
                    Duration::from_secs(3600),
                )
                .await
            }
        });
        (stop, served)
    }

    /// Records what is subscribed, like Redis would.
    #[derive(Clone, Default)]
    struct RecordingSink(Arc<std::sync::Mutex<HashSet<String>>>);

    #[async_trait::async_trait]
    impl BusSink for RecordingSink {
        async fn subscribe(&mut self, channels: &[String]) -> StoreResult<()> {
            self.0.lock().unwrap().extend(channels.iter().cloned());
            Ok(())
        }
        async fn unsubscribe(&mut self, channels: &[String]) -> StoreResult<()> {
            let mut subscribed = self.0.lock().unwrap();
            channels.iter().for_each(|c| {
                subscribed.remove(c);
            });
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_lobby_channel_is_subscribed_only_while_someone_here_watches_the_lobby() {
        let keys = Keys::new("t:");
        let hub = Arc::new(Hub::new(keys.clone(), "lease", Duration::from_millis(100)));
        let sink = RecordingSink::default();
        let (stop, served) = serve(&hub, Box::new(sink.clone()), false);
        let lobby = keys.lobby_channel();
        let has_lobby = || sink.0.lock().unwrap().contains(&lobby);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!has_lobby(), "nobody watches yet");
        assert!(sink.0.lock().unwrap().contains(&hub.instance_channel));

        let mailbox = |_| Mailbox::new(mpsc::channel(8).0, CancellationToken::new());
        let timeout = Duration::from_secs(1);
        hub.watch_lobby(1, mailbox(1), timeout).await.unwrap();
        assert!(has_lobby(), "subscribed before the watcher is told to list");
        hub.watch_lobby(2, mailbox(2), timeout).await.unwrap();
        hub.unwatch_lobby(1);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(has_lobby(), "one watcher is left");
        hub.unregister(2);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!has_lobby(), "the last watcher gone");
        // Back again: the channel too.
        hub.watch_lobby(3, mailbox(3), timeout).await.unwrap();
        assert!(has_lobby());
        stop.cancel();
        assert_eq!(served.await.unwrap(), BusExit::Shutdown);
        assert_eq!(
            hub.watch_lobby(4, mailbox(4), timeout)
                .await
                .err()
                .map(|e| e.to_string()),
            Some(HubError::Unavailable.to_string()),
            "no bus, no lobby"
        );
    }

    /// Records how many channels each SUBSCRIBE carries; each takes `delay`.
    #[derive(Clone)]
    struct SlowSink {
        delay: Duration,
        sizes: Arc<std::sync::Mutex<Vec<usize>>>,
    }

    impl SlowSink {
        fn new(delay: Duration) -> SlowSink {
            SlowSink {
                delay,
                sizes: Arc::default(),
            }
        }
    }

    #[async_trait::async_trait]
    impl BusSink for SlowSink {
        async fn subscribe(&mut self, channels: &[String]) -> StoreResult<()> {
            tokio::time::sleep(self.delay).await;
            self.sizes.lock().unwrap().push(channels.len());
            Ok(())
        }
        async fn unsubscribe(&mut self, _: &[String]) -> StoreResult<()> {
            Ok(())
        }
    }

    /// A connection of `player` joining as X.
    fn subscriber(conn: ConnId, player: &str) -> (Subscriber, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(8);
        let sub = Subscriber {
            conn,
            mailbox: Mailbox::new(tx, CancellationToken::new()),
            player: PlayerId::try_from(player.to_string()).unwrap(),
            role: Role::X,
            sent: Sent::default(),
        };
        (sub, rx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_new_games_is_subscribed_in_a_few_commands() {
        let hub = Arc::new(Hub::new(
            Keys::new("t:"),
            "lease",
            Duration::from_millis(100),
        ));
        let sink = SlowSink::new(Duration::from_millis(5));
        let (stop, served) = serve(&hub, Box::new(sink.clone()), false);
        let joins: Vec<_> = (0..300)
            .map(|i| {
                let hub = hub.clone();
                tokio::spawn(async move {
                    let game = GameId::try_from(format!("g{i}")).unwrap();
                    let (sub, _rx) = subscriber(i, &format!("p{i}"));
                    hub.join(&game, sub, Duration::from_secs(5)).await
                })
            })
            .collect();
        for join in joins {
            join.await.unwrap().expect("joined once subscribed");
        }
        let calls = sink.sizes.lock().unwrap().clone();
        // The instance's own channel, then the 300 games.
        assert_eq!(calls.iter().sum::<usize>(), 301, "{calls:?}");
        assert!(calls.len() <= 3, "one command per game: {calls:?}");
        stop.cancel();
        assert_eq!(served.await.unwrap(), BusExit::Shutdown);
    }

    #[tokio::test(start_paused = true)]
    async fn messages_are_dispatched_while_games_are_being_subscribed() {
        let hub = Arc::new(Hub::new(
            Keys::new("t:"),
            "lease",
            Duration::from_millis(100),
        ));
        let (feed, messages) = mpsc::unbounded_channel::<BusMessage>();
        let sink = SlowSink::new(Duration::from_secs(1));
        let (stop, served) = serve_with(&hub, Box::new(sink), false, stream_of(messages));
        // Past the instance channel's own (slow) subscription.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (tx, mut rx) = mpsc::channel(8);
        hub.register(7, Mailbox::new(tx, CancellationToken::new()));
        let joining = tokio::spawn({
            let hub = hub.clone();
            async move {
                let (sub, _rx) = subscriber(8, "p8");
                let game = GameId::try_from("g1".to_string()).unwrap();
                hub.join(&game, sub, Duration::from_secs(5)).await
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        // While g1's subscription is on its way, a match is announced to connection 7.
        let found = crate::hub::instance::InstanceMsg::MatchFound {
            conn: 7,
            game: GameId::try_from("g2".to_string()).unwrap(),
            you: tictactoe_rules::Mark::O,
        };
        feed.send(BusMessage {
            channel: hub.instance_channel.clone(),
            payload: serde_json::to_vec(&found).unwrap().into(),
        })
        .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !joining.is_finished(),
            "the subscription is still on its way"
        );
        assert!(
            matches!(rx.try_recv(), Ok(Outbound::Matched { .. })),
            "the message waited for the subscription"
        );
        joining.await.unwrap().expect("joined once subscribed");
        stop.cancel();
        assert_eq!(served.await.unwrap(), BusExit::Shutdown);
    }

    /// Connection 1 of player p1, a member of `game` here (as if it had joined).
    fn member_of(hub: &Hub, game: &GameId) -> mpsc::Receiver<Outbound> {
        let (sub, rx) = subscriber(1, "p1");
        hub.topics
            .entry(game.clone())
            .or_insert_with(super::super::Topic::new)
            .members
            .push(super::super::Member {
                sub,
                owes_presence: false,
            });
        rx
    }

    /// Real time: a topic holds presence back by the clock (`std::time::Instant`).
    #[tokio::test]
    async fn presence_held_back_by_a_message_dispatched_outside_the_bus_task_still_goes() {
        let hub = Arc::new(Hub::new(
            Keys::new("t:"),
            "lease",
            Duration::from_millis(50),
        ));
        let game = GameId::try_from("g1".to_string()).unwrap();
        let mut rx = member_of(&hub, &game);
        // No message on the stream: they arrive as a link hands them over (`Deliver`).
        let (stop, served) = serve(&hub, Box::new(QuietSink), false);
        let presence = |n: u32| BusMessage {
            channel: hub.keys.game_channel(&game),
            payload: format!("{{\"type\":\"presence\",\"n\":{n}}}")
                .into_bytes()
                .into(),
        };
        // The bus task waits for something to do: nothing wakes it but the hub.
        tokio::time::sleep(Duration::from_millis(20)).await;
        hub.dispatch(presence(1));
        hub.dispatch(presence(2));
        let mut got = Vec::new();
        while got.len() < 2 {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Some(Outbound::Game(e))) => got.push(e.payload.to_string()),
                Ok(other) => panic!("{other:?}"),
                Err(_) => panic!("the presence held back never went; got {got:?}"),
            }
        }
        assert_eq!(
            got,
            [
                r#"{"type":"presence","n":1}"#,
                r#"{"type":"presence","n":2}"#
            ]
        );
        stop.cancel();
        assert_eq!(served.await.unwrap(), BusExit::Shutdown);
    }

    fn stream_of(mut rx: mpsc::UnboundedReceiver<BusMessage>) -> BoxStream<'static, BusMessage> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }

    fn catch_ups(rx: &mut mpsc::Receiver<Outbound>) -> usize {
        std::iter::from_fn(|| rx.try_recv().ok())
            .filter(|o| matches!(o, Outbound::CatchUp(_)))
            .count()
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_reconnect_every_connection_catches_up_again_a_little_later() {
        let hub = Arc::new(Hub::new(
            Keys::new("t:"),
            "lease",
            Duration::from_millis(100),
        ));
        let mut rx = member_of(&hub, &GameId::try_from("g1".to_string()).unwrap());
        let (stop, served) = serve(&hub, Box::new(QuietSink), true);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(catch_ups(&mut rx), 1, "at once after the reconnect");
        tokio::time::sleep(LATE_RESYNC - Duration::from_millis(100)).await;
        assert_eq!(catch_ups(&mut rx), 0, "not before the late resync");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(catch_ups(&mut rx), 1, "once more, late");
        tokio::time::sleep(LATE_RESYNC * 3).await;
        assert_eq!(catch_ups(&mut rx), 0, "and only once");
        stop.cancel();
        assert_eq!(served.await.unwrap(), BusExit::Shutdown);
    }
}
