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

mod bus;
mod instance;
mod lobby;
mod mailbox;
mod topic;

pub use instance::InstanceMsg;
pub use mailbox::{ChannelEvent, ConnId, Mailbox, Outbound};
pub use topic::{Sent, Subscriber};

use crate::store::{BusMessage, Keys, StoreError};
use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::{CHANNEL_TYPES, ChannelPeek, Role};
use tictactoe_rules::{GameState, Seats};
use tokio::sync::{Notify, oneshot};
use topic::{Member, Topic};

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
    mailboxes: DashMap<ConnId, Mailbox>,
    lobby_watchers: DashMap<ConnId, Mailbox>,
    /// Whether the lobby's channel is subscribed (only while someone here watches it), and
    /// how many times the bus task has checked that.
    lobby_ready: tokio::sync::watch::Sender<(bool, u64)>,
    /// The lobby's watchers may have come or gone: the bus task checks its subscription.
    lobby_sync: AtomicBool,
    lobby_dirty: AtomicBool,
    bus_up: AtomicBool,
    /// Games whose subscription may need to change; drained by the bus task.
    pending: Mutex<HashSet<GameId>>,
    wake: Notify,
    /// Asks the bus task to drop its connection and make a new one.
    renew_bus: Notify,
    probes: DashMap<u64, oneshot::Sender<()>>,
    /// Probes that came back after they were given up on: a bus that delivers, only late.
    late_echoes: AtomicU64,
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
            mailboxes: DashMap::new(),
            lobby_watchers: DashMap::new(),
            lobby_ready: tokio::sync::watch::Sender::new((false, 0)),
            lobby_sync: AtomicBool::new(false),
            lobby_dirty: AtomicBool::new(false),
            bus_up: AtomicBool::new(false),
            pending: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            renew_bus: Notify::new(),
            probes: DashMap::new(),
            late_echoes: AtomicU64::new(0),
        }
    }

    pub fn register(&self, conn: ConnId, mailbox: Mailbox) {
        self.mailboxes.insert(conn, mailbox);
        metrics::gauge!("connections").set(self.mailboxes.len() as f64);
    }

    pub fn unregister(&self, conn: ConnId) {
        self.mailboxes.remove(&conn);
        self.unwatch_lobby(conn);
        metrics::gauge!("connections").set(self.mailboxes.len() as f64);
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

    /// The newest version of a local game that came in on its channel here (0: none).
    pub fn heard(&self, game: &GameId) -> u64 {
        self.topics.get(game).map_or(0, |t| t.heard)
    }

    /// Who holds the game's seats, once both are taken and this instance has read them.
    pub fn seats(&self, game: &GameId) -> Option<Seats<Option<PlayerId>>> {
        self.topics.get(game).and_then(|t| t.seats.clone())
    }

    /// Records who holds the seats, read from the store. Kept only once both are taken: from
    /// then on they never change hands.
    pub fn observe_seats(&self, game: &GameId, seats: &Seats<Option<PlayerId>>) {
        if seats.x.is_some()
            && seats.o.is_some()
            && let Some(mut t) = self.topics.get_mut(game)
        {
            t.seats = Some(seats.clone());
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

    /// Sends a frame to one local connection, if it is still here.
    pub fn deliver(&self, conn: ConnId, out: Outbound) -> bool {
        self.mailboxes.get(&conn).is_some_and(|c| c.offer(out))
    }

    pub fn local_games(&self) -> usize {
        self.topics.len()
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
        topic.members.retain(|m| {
            m.sub.sent.has(version) || m.sub.mailbox.offer(Outbound::Game(event.clone()))
        });
    }

    /// Wakes the bus task, which sends what is due after its interval: a message may be
    /// dispatched outside that task (see [`crate::store::Deliver`]).
    fn presence_later(&self, game: &GameId) {
        let mut due = self.presence_due.lock().unwrap_or_else(|p| p.into_inner());
        let first = due.is_empty();
        due.insert(game.clone());
        drop(due);
        if first {
            self.wake.notify_one();
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    #[test]
    fn an_event_the_connection_already_sent_is_not_offered_to_it_again() {
        let keys = Keys::new("t:");
        let hub = Hub::new(keys.clone(), "lease", Duration::from_millis(100));
        let game = GameId::try_from("g1".to_string()).unwrap();
        let members = [1, 2].map(|conn| {
            let (tx, rx) = mpsc::channel(8);
            let sub = Subscriber {
                conn,
                mailbox: Mailbox::new(tx, CancellationToken::new()),
                player: PlayerId::try_from(format!("p{conn}")).unwrap(),
                role: Role::X,
                sent: Sent::default(),
            };
            (sub, rx)
        });
        let [(mover, mut mover_rx), (other, mut other_rx)] = members;
        // The mover's connection sent its own move (version 3) with its ack.
        mover.sent.set(3);
        other.sent.set(2);
        let mut topic = hub.topics.entry(game.clone()).or_insert_with(Topic::new);
        for sub in [mover, other] {
            topic.members.push(Member {
                sub,
                owes_presence: false,
            });
        }
        drop(topic);
        let moved = |v: u64| BusMessage {
            channel: keys.game_channel(&game),
            payload: format!(r#"{{"type":"moved","game":"g1","version":{v},"state":{{}}}}"#).into(),
        };
        let version = |rx: &mut mpsc::Receiver<Outbound>| match rx.try_recv() {
            Ok(Outbound::Game(e)) => e.version,
            _ => None,
        };
        hub.dispatch(moved(3));
        assert_eq!(
            version(&mut mover_rx),
            None,
            "nothing to wake the mover for"
        );
        assert_eq!(version(&mut other_rx), Some(3));
        hub.dispatch(moved(4));
        assert_eq!(version(&mut mover_rx), Some(4));
        assert_eq!(version(&mut other_rx), Some(4));
        // Both stay members.
        assert_eq!(hub.topics.get(&game).map(|t| t.members.len()), Some(2));
    }
}
