//! Fan-out of pub/sub messages to this instance's connections.
//!
//! One bus connection per instance. A game's channel is subscribed while at least one local
//! connection has joined the game (reference counted by the topic's subscriber list) and
//! unsubscribed when the last one leaves; never one subscription per client, never a pattern.
//! Every connection has a bounded queue: a client that cannot keep up is closed, and nobody
//! else waits for it. The hub also keeps the latest state of each local game (the highest
//! version it has seen), so a move can be computed without reading Redis first.
//!
//! Presence is third parties' doing (spectators come and go at will), so it never costs a
//! player their connection: a game's presence reaches local clients at most once per
//! `presence_every` (the first change at once, the latest of the rest at the end of the
//! interval), and a client whose queue is short of room is owed the latest presence instead
//! of being sent every change or closed as slow.

use crate::ids::{GameId, PlayerId};
use crate::protocol::{CHANNEL_TYPES, ChannelPeek, Role, ServerMsg, event_state};
use crate::rules::{GameState, Mark};
use crate::store::{Bus, BusConnection, BusMessage, Keys, LobbyShare, Store, StoreError};
use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tictactoe_protocol::backoff::Backoff;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub type ConnId = u64;

/// A message from a game's channel, shared by every local subscriber of the game.
#[derive(Debug)]
pub struct ChannelEvent {
    pub game: GameId,
    /// Set for versioned game events.
    pub version: Option<u64>,
    pub payload: Utf8Bytes,
}

/// Room a client's queue must have left for a presence message: a quarter of the queue stays
/// for game events, which cannot be merged or dropped.
fn presence_headroom(queue: usize) -> usize {
    (queue / 4).max(1)
}

/// What the hub (or another instance, through it) hands to a connection. Kept to two words:
/// every connection's queue allocates a block of 32 of these up front, idle or not, so the
/// rarer messages are boxed.
#[derive(Debug)]
pub enum Outbound {
    Game(Arc<ChannelEvent>),
    /// Messages of this game may have been lost (the bus reconnected): catch up from the log.
    Resync(Box<GameId>),
    /// A lobby frame (a coalesced `lobby` list or a lobby chat line), shared by every watcher.
    Lobby(Arc<Utf8Bytes>),
    /// Quick match paired this connection into `game`.
    Matched {
        game: Box<GameId>,
        you: Mark,
    },
    /// This connection's quick-match ticket vanished without a match: queue it again.
    Requeue,
}

const _: () = assert!(std::mem::size_of::<Outbound>() <= 16);

/// The sending half of one connection's bounded queue, and the switch that closes it.
#[derive(Clone, Debug)]
pub struct Client {
    tx: mpsc::Sender<Outbound>,
    kill: CancellationToken,
}

impl Client {
    pub fn new(tx: mpsc::Sender<Outbound>, kill: CancellationToken) -> Client {
        Client { tx, kill }
    }

    /// Queues without waiting. A full queue means the client is too slow: it is closed
    /// rather than allowed to hold anyone up. False once the connection is gone.
    pub fn offer(&self, out: Outbound) -> bool {
        match self.tx.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("outbound_dropped_total").increment(1);
                if !self.kill.is_cancelled() {
                    metrics::counter!("slow_client_closes_total").increment(1);
                    self.kill.cancel();
                }
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a presence message if the queue has room to spare; never closes the client.
    /// `Owed` when there was no room: the latest presence is offered again later.
    fn offer_presence(&self, event: &Arc<ChannelEvent>) -> Offer {
        if self.tx.is_closed() {
            return Offer::Gone;
        }
        if self.tx.capacity() <= presence_headroom(self.tx.max_capacity()) {
            metrics::counter!("presence_deferred_total").increment(1);
            return Offer::Owed;
        }
        match self.tx.try_send(Outbound::Game(event.clone())) {
            Ok(()) => Offer::Sent,
            Err(mpsc::error::TrySendError::Full(_)) => Offer::Owed,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Gone,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Offer {
    Sent,
    Owed,
    Gone,
}

/// A local connection's membership in a game.
#[derive(Clone, Debug)]
pub struct Subscriber {
    pub conn: ConnId,
    pub client: Client,
    pub player: PlayerId,
    pub role: Role,
}

/// A local member of a game: its subscription, and whether it is owed the game's latest
/// presence (its queue had no room for it).
struct Member {
    sub: Subscriber,
    owes_presence: bool,
}

/// The pace of a game's presence on this instance.
#[derive(Default)]
struct PresencePace {
    /// The newest presence from the channel.
    latest: Option<Arc<ChannelEvent>>,
    /// Whether `latest` is still to be fanned out.
    unsent: bool,
    /// When presence was last fanned out.
    sent_at: Option<Instant>,
}

struct Topic {
    members: Vec<Member>,
    cache: Option<(u64, Latest)>,
    /// True while the game's channel is subscribed on the current bus connection.
    ready: watch::Sender<bool>,
    presence: PresencePace,
}

/// The newest state of a game seen here: parsed, or still inside the event that brought it.
/// Most events only pass through to clients; their state is read only when a local player
/// acts on it, and then once.
#[derive(Debug)]
enum Latest {
    State(GameState),
    Event(Arc<ChannelEvent>),
}

impl Topic {
    fn new() -> Topic {
        Topic {
            members: Vec::new(),
            cache: None,
            ready: watch::Sender::new(false),
            presence: PresencePace::default(),
        }
    }

    /// Takes a presence message from the channel: fanned out now if the game's last one went
    /// out at least `every` ago, else kept (the newest wins) for [`Topic::flush_presence`].
    /// True if something is left to send later.
    fn on_presence(&mut self, event: Arc<ChannelEvent>, now: Instant, every: Duration) -> bool {
        self.presence.latest = Some(event);
        self.presence.unsent = true;
        self.flush_presence(now, every)
    }

    /// Sends the latest presence to every member if it is unsent and the interval has passed,
    /// and to members owed it whenever their queue has room. True if something is left.
    fn flush_presence(&mut self, now: Instant, every: Duration) -> bool {
        let Some(event) = self.presence.latest.clone() else {
            return false;
        };
        let paced = self
            .presence
            .sent_at
            .is_some_and(|at| now.duration_since(at) < every);
        if self.presence.unsent && !paced {
            self.presence.unsent = false;
            self.presence.sent_at = Some(now);
            for m in &mut self.members {
                m.owes_presence = true;
            }
        }
        self.members.retain_mut(|m| {
            if !m.owes_presence {
                return true;
            }
            match m.sub.client.offer_presence(&event) {
                Offer::Sent => {
                    m.owes_presence = false;
                    true
                }
                Offer::Owed => true,
                Offer::Gone => false,
            }
        });
        self.presence.unsent || self.members.iter().any(|m| m.owes_presence)
    }

    fn is_newer(&self, version: u64) -> bool {
        self.cache.as_ref().is_none_or(|(v, _)| version > *v)
    }

    fn observe(&mut self, version: u64, state: &GameState) {
        if self.is_newer(version) {
            self.cache = Some((version, Latest::State(state.clone())));
        }
    }

    fn observe_event(&mut self, version: u64, event: &Arc<ChannelEvent>) {
        if self.is_newer(version) {
            self.cache = Some((version, Latest::Event(event.clone())));
        }
    }

    fn latest(&mut self) -> Option<(u64, GameState)> {
        let (version, latest) = self.cache.as_mut()?;
        let version = *version;
        let state = match latest {
            Latest::State(state) => state.clone(),
            Latest::Event(event) => {
                let Some(state) = event_state(&event.payload) else {
                    // Not a state after all: forget it, the store has the real one.
                    self.cache = None;
                    return None;
                };
                *latest = Latest::State(state.clone());
                state
            }
        };
        Some((version, state))
    }
}

/// Messages on an instance's own channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InstanceMsg {
    /// Tell connection `conn` it was matched into `game` as `you`.
    MatchFound {
        conn: ConnId,
        game: GameId,
        you: Mark,
    },
    /// A readiness probe the instance sends itself.
    Probe { nonce: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("pub/sub is not connected")]
    Unavailable,
    /// The probe was published but never came back: the subscription connection is not
    /// delivering (hung, or silently unsubscribed).
    #[error("pub/sub did not deliver the probe in time")]
    NoEcho,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Hub {
    keys: Keys,
    instance_channel: String,
    lobby_channel: String,
    topics: DashMap<GameId, Topic>,
    /// Shortest time between two presence messages of one game to local clients.
    presence_every: Duration,
    /// Games with presence left to send (paced, or owed to a client short of room); drained
    /// by the bus task at the end of the interval.
    presence_due: Mutex<HashSet<GameId>>,
    clients: DashMap<ConnId, Client>,
    lobby_watchers: DashMap<ConnId, Client>,
    lobby_dirty: AtomicBool,
    bus_up: AtomicBool,
    /// Games whose subscription may need to change; drained by the bus task.
    pending: Mutex<HashSet<GameId>>,
    wake: Notify,
    /// Asks the bus task to drop its connection and make a new one.
    renew_bus: Notify,
    probes: DashMap<u64, oneshot::Sender<()>>,
}

impl Hub {
    pub fn new(keys: Keys, lease: &str, presence_every: Duration) -> Hub {
        Hub {
            instance_channel: keys.instance_channel(lease),
            lobby_channel: keys.lobby_channel(),
            keys,
            topics: DashMap::new(),
            presence_every,
            presence_due: Mutex::new(HashSet::new()),
            clients: DashMap::new(),
            lobby_watchers: DashMap::new(),
            lobby_dirty: AtomicBool::new(false),
            bus_up: AtomicBool::new(false),
            pending: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            renew_bus: Notify::new(),
            probes: DashMap::new(),
        }
    }

    pub fn register(&self, conn: ConnId, client: Client) {
        self.clients.insert(conn, client);
        metrics::gauge!("connections").set(self.clients.len() as f64);
    }

    pub fn unregister(&self, conn: ConnId) {
        self.clients.remove(&conn);
        self.lobby_watchers.remove(&conn);
        metrics::gauge!("connections").set(self.clients.len() as f64);
    }

    /// Adds a connection to a game and returns once the game's channel is subscribed, so
    /// that a snapshot read afterwards misses no event.
    pub async fn join(
        &self,
        game: &GameId,
        sub: Subscriber,
        timeout: Duration,
    ) -> Result<(), HubError> {
        let mut ready = {
            let mut topic = self.topics.entry(game.clone()).or_insert_with(Topic::new);
            topic.members.retain(|m| m.sub.conn != sub.conn);
            topic.members.push(Member {
                sub,
                owes_presence: false,
            });
            topic.ready.subscribe()
        };
        metrics::gauge!("games_local").set(self.topics.len() as f64);
        self.request_sync(game);
        match tokio::time::timeout(timeout, ready.wait_for(|r| *r)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(HubError::Unavailable),
        }
    }

    /// Removes a connection from a game; the last one out unsubscribes the instance.
    pub fn leave(&self, game: &GameId, conn: ConnId) {
        let empty = match self.topics.get_mut(game) {
            Some(mut t) => {
                t.members.retain(|m| m.sub.conn != conn);
                t.members.is_empty()
            }
            None => false,
        };
        if empty {
            self.topics.remove_if(game, |_, t| t.members.is_empty());
            metrics::gauge!("games_local").set(self.topics.len() as f64);
            self.request_sync(game);
        }
    }

    /// The newest state of a local game this instance knows of.
    pub fn cached(&self, game: &GameId) -> Option<(u64, GameState)> {
        self.topics.get_mut(game).and_then(|mut t| t.latest())
    }

    /// Records a state this instance learnt outside the bus (a snapshot, its own write).
    pub fn observe(&self, game: &GameId, version: u64, state: &GameState) {
        if let Some(mut t) = self.topics.get_mut(game) {
            t.observe(version, state);
        }
    }

    /// Every local membership, for re-announcing presence after this instance's lease lapsed.
    pub fn memberships(&self) -> Vec<(GameId, PlayerId, Role)> {
        self.topics
            .iter()
            .flat_map(|t| {
                let game = t.key().clone();
                t.members
                    .iter()
                    .map(|m| (game.clone(), m.sub.player.clone(), m.sub.role))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn watch_lobby(&self, conn: ConnId, client: Client) {
        self.lobby_watchers.insert(conn, client);
    }

    pub fn unwatch_lobby(&self, conn: ConnId) {
        self.lobby_watchers.remove(&conn);
    }

    /// Sends a frame to one local connection, if it is still here.
    pub fn deliver(&self, conn: ConnId, out: Outbound) -> bool {
        self.clients.get(&conn).is_some_and(|c| c.offer(out))
    }

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

    pub fn local_games(&self) -> usize {
        self.topics.len()
    }

    fn request_sync(&self, game: &GameId) {
        if let Ok(mut p) = self.pending.lock() {
            p.insert(game.clone());
        }
        self.wake.notify_one();
    }

    fn take_pending(&self) -> HashSet<GameId> {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }

    fn set_ready(&self, game: &GameId, ready: bool) {
        if let Some(t) = self.topics.get(game) {
            t.ready.send_replace(ready);
        }
    }

    fn set_all_unready(&self) {
        for t in self.topics.iter() {
            t.ready.send_replace(false);
        }
    }

    /// Routes one bus message to the local connections that want it.
    fn dispatch(&self, msg: BusMessage) {
        // Instances publish JSON only; anything else on these channels was not sent by one.
        let Ok(payload) = Utf8Bytes::try_from(msg.payload) else {
            tracing::debug!(channel = %msg.channel, "dropping a message that is not UTF-8");
            return;
        };
        if msg.channel == self.instance_channel {
            return self.on_instance_msg(&payload);
        }
        if msg.channel == self.lobby_channel {
            return self.on_lobby_msg(payload);
        }
        let Some(game) = self.keys.game_of_channel(&msg.channel) else {
            return;
        };
        // Only protocol messages reach clients: a stray PUBLISH by hand on a game channel is
        // dropped here. Only what the hub needs is read, not the whole message.
        let peek = match serde_json::from_str::<ChannelPeek>(&payload) {
            Ok(p) if CHANNEL_TYPES.contains(&p.kind.as_str()) => p,
            _ => {
                tracing::debug!(%game, "dropping a malformed message from the game channel");
                return;
            }
        };
        let version = peek.versioned();
        let Some(mut topic) = self.topics.get_mut(&game) else {
            return;
        };
        let presence = peek.kind == "presence";
        let event = Arc::new(ChannelEvent {
            game,
            version,
            payload,
        });
        if presence {
            if topic.on_presence(event.clone(), Instant::now(), self.presence_every) {
                drop(topic);
                self.presence_later(&event.game);
            }
            return;
        }
        if let Some(v) = version {
            topic.observe_event(v, &event);
        }
        topic
            .members
            .retain(|m| m.sub.client.offer(Outbound::Game(event.clone())));
    }

    fn presence_later(&self, game: &GameId) {
        self.presence_due
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(game.clone());
    }

    fn has_presence_due(&self) -> bool {
        !self
            .presence_due
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Sends the presence that waited for its interval or for room in a queue; what is still
    /// waiting stays due.
    fn flush_presence(&self) {
        let due = std::mem::take(&mut *self.presence_due.lock().unwrap_or_else(|p| p.into_inner()));
        let now = Instant::now();
        for game in due {
            let left = self
                .topics
                .get_mut(&game)
                .is_some_and(|mut t| t.flush_presence(now, self.presence_every));
            if left {
                self.presence_later(&game);
            }
        }
    }

    fn on_instance_msg(&self, payload: &str) {
        match serde_json::from_str::<InstanceMsg>(payload) {
            Ok(InstanceMsg::MatchFound { conn, game, you }) => {
                self.deliver(
                    conn,
                    Outbound::Matched {
                        game: Box::new(game),
                        you,
                    },
                );
            }
            Ok(InstanceMsg::Probe { nonce }) => {
                if let Some((_, tx)) = self.probes.remove(&nonce) {
                    let _ = tx.send(());
                }
            }
            Err(e) => tracing::debug!(error = %e, "malformed instance message"),
        }
    }

    fn on_lobby_msg(&self, payload: Utf8Bytes) {
        match serde_json::from_str::<ServerMsg>(&payload) {
            Ok(ServerMsg::LobbyChanged { .. }) => self.lobby_dirty.store(true, Ordering::Relaxed),
            Ok(ServerMsg::Chat { .. }) => {
                let frame = Arc::new(payload);
                self.lobby_watchers
                    .retain(|_, c| c.offer(Outbound::Lobby(frame.clone())));
            }
            _ => {}
        }
    }

    /// Publishes a probe to this instance's own channel and waits for it to come back:
    /// proof that Redis answers and the subscription delivers. Returns the round trip.
    pub async fn probe(&self, store: &dyn Store, timeout: Duration) -> Result<Duration, HubError> {
        if !self.is_bus_up() {
            return Err(HubError::Unavailable);
        }
        let nonce = uuid::Uuid::new_v4().as_u64_pair().0;
        let (tx, rx) = oneshot::channel();
        self.probes.insert(nonce, tx);
        let started = Instant::now();
        let result = async {
            let msg = serde_json::to_string(&InstanceMsg::Probe { nonce })
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            store.publish(&self.instance_channel, msg.into()).await?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(())) => Ok(started.elapsed()),
                _ => Err(HubError::NoEcho),
            }
        }
        .await;
        self.probes.remove(&nonce);
        if let Ok(lag) = result {
            metrics::histogram!("pubsub_lag_seconds").record(lag.as_secs_f64());
        }
        result
    }

    /// Sends the lobby list to every watcher if it changed since the last call.
    pub async fn flush_lobby(
        &self,
        store: &dyn Store,
        max: usize,
        share: LobbyShare,
        ttl: Duration,
    ) {
        if self.lobby_watchers.is_empty() || !self.lobby_dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        match store.lobby_list(max, share, ttl).await {
            Ok((open, live)) => {
                let frame = Arc::new(Utf8Bytes::from(ServerMsg::Lobby { open, live }.to_json()));
                self.lobby_watchers
                    .retain(|_, c| c.offer(Outbound::Lobby(frame.clone())));
            }
            Err(e) => {
                // Try again on the next tick.
                self.lobby_dirty.store(true, Ordering::Relaxed);
                tracing::warn!(error = %e, "could not refresh the lobby");
            }
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
            let conn = tokio::select! {
                _ = shutdown.cancelled() => return,
                c = bus.connect() => c,
            };
            match conn {
                Ok(conn) => {
                    let outcome = self
                        .serve_bus(conn, &shutdown, connected_before, &mut backoff, ping_every)
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
        conn: BusConnection,
        shutdown: &CancellationToken,
        reconnected: bool,
        backoff: &mut Backoff,
        ping_every: Duration,
    ) -> BusExit {
        let BusConnection {
            mut sink,
            mut messages,
        } = conn;
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
                        m.sub.client.offer(Outbound::Resync(Box::new(g.clone())));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_closes_the_slow_client_and_only_it() {
        let (tx, _rx) = mpsc::channel(1);
        let slow = Client::new(tx, CancellationToken::new());
        assert!(slow.offer(Outbound::Requeue));
        assert!(!slow.kill.is_cancelled());
        assert!(slow.offer(Outbound::Requeue));
        assert!(slow.kill.is_cancelled());

        let (tx, mut rx) = mpsc::channel(4);
        let fine = Client::new(tx, CancellationToken::new());
        assert!(fine.offer(Outbound::Requeue));
        assert!(rx.try_recv().is_ok());
        assert!(!fine.kill.is_cancelled());
        drop(rx);
        assert!(!fine.offer(Outbound::Requeue), "a gone client is reported");
    }

    fn presence_event(n: u32) -> Arc<ChannelEvent> {
        Arc::new(ChannelEvent {
            game: GameId::try_from("g1".to_string()).unwrap(),
            version: None,
            payload: format!("{{\"type\":\"presence\",\"n\":{n}}}").into(),
        })
    }

    fn member(queue: usize) -> (Member, mpsc::Receiver<Outbound>, CancellationToken) {
        let (tx, rx) = mpsc::channel(queue);
        let kill = CancellationToken::new();
        let sub = Subscriber {
            conn: 1,
            client: Client::new(tx, kill.clone()),
            player: PlayerId::try_from("p1".to_string()).unwrap(),
            role: Role::X,
        };
        let m = Member {
            sub,
            owes_presence: false,
        };
        (m, rx, kill)
    }

    fn received(rx: &mut mpsc::Receiver<Outbound>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|o| match o {
                Outbound::Game(e) => e.payload.to_string(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn presence_goes_at_once_then_at_most_once_per_interval_the_latest_winning() {
        let every = Duration::from_millis(250);
        let mut t = Topic::new();
        let (m, mut rx, _) = member(64);
        t.members.push(m);
        let t0 = Instant::now();
        assert!(
            !t.on_presence(presence_event(1), t0, every),
            "first goes at once"
        );
        for n in 2..=50 {
            assert!(t.on_presence(
                presence_event(n),
                t0 + Duration::from_millis(n.into()),
                every
            ));
        }
        assert_eq!(received(&mut rx), [r#"{"type":"presence","n":1}"#]);
        // Too early: still held.
        assert!(t.flush_presence(t0 + Duration::from_millis(200), every));
        assert!(received(&mut rx).is_empty());
        assert!(!t.flush_presence(t0 + every, every));
        assert_eq!(received(&mut rx), [r#"{"type":"presence","n":50}"#]);
        // Nothing new: nothing sent.
        assert!(!t.flush_presence(t0 + every * 3, every));
        assert!(received(&mut rx).is_empty());
    }

    #[test]
    fn presence_never_closes_a_client_short_of_room_and_is_owed_until_it_has_some() {
        let every = Duration::from_millis(250);
        let mut t = Topic::new();
        let (m, mut rx, kill) = member(8);
        t.members.push(m);
        // Game events fill the queue to its presence headroom.
        for _ in 0..6 {
            assert!(t.members[0].sub.client.offer(Outbound::Requeue));
        }
        let t0 = Instant::now();
        assert!(t.on_presence(presence_event(1), t0, every), "owed");
        assert!(
            t.on_presence(presence_event(2), t0 + every, every),
            "still owed"
        );
        assert!(!kill.is_cancelled(), "presence never closes a client");
        assert_eq!(rx.len(), 6);
        // The client reads; the latest presence is then delivered, once.
        while rx.try_recv().is_ok() {}
        assert!(!t.flush_presence(t0 + every * 2, every));
        assert_eq!(received(&mut rx), [r#"{"type":"presence","n":2}"#]);
        // Game events still close a client whose queue is full.
        for _ in 0..9 {
            t.members[0].sub.client.offer(Outbound::Requeue);
        }
        assert!(kill.is_cancelled());
    }

    #[test]
    fn the_cache_keeps_the_newest_version() {
        let mut t = Topic::new();
        let a = GameState::new("a");
        let b = a.seat_o("b").unwrap();
        t.observe(2, &b);
        t.observe(1, &a);
        assert_eq!(t.latest(), Some((2, b.clone())));
        // A newer event's state is read from it when asked for, an older one is ignored.
        let c = b
            .play(Mark::X, crate::rules::Cell::new(4).unwrap())
            .unwrap();
        let event = |version, state: &GameState| {
            let msg = ServerMsg::Moved {
                game: GameId::try_from("g1".to_string()).unwrap(),
                version,
                mark: Mark::X,
                cell: crate::rules::Cell::new(4).unwrap(),
                state: state.clone(),
            };
            Arc::new(ChannelEvent {
                game: GameId::try_from("g1".to_string()).unwrap(),
                version: Some(version),
                payload: msg.to_json().into(),
            })
        };
        t.observe_event(2, &event(2, &c));
        assert_eq!(t.latest(), Some((2, b)));
        t.observe_event(3, &event(3, &c));
        assert!(matches!(t.cache, Some((3, Latest::Event(_)))));
        assert_eq!(t.latest(), Some((3, c.clone())));
        assert!(matches!(t.cache, Some((3, Latest::State(_)))));
    }
}
