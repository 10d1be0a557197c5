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
pub use topic::Subscriber;

use crate::store::{BusMessage, Keys, StoreError};
use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::{CHANNEL_TYPES, ChannelPeek, Role};
use tictactoe_rules::GameState;
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
            mailboxes: DashMap::new(),
            lobby_watchers: DashMap::new(),
            lobby_dirty: AtomicBool::new(false),
            bus_up: AtomicBool::new(false),
            pending: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            renew_bus: Notify::new(),
            probes: DashMap::new(),
        }
    }

    pub fn register(&self, conn: ConnId, mailbox: Mailbox) {
        self.mailboxes.insert(conn, mailbox);
        metrics::gauge!("connections").set(self.mailboxes.len() as f64);
    }

    pub fn unregister(&self, conn: ConnId) {
        self.mailboxes.remove(&conn);
        self.lobby_watchers.remove(&conn);
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
        topic
            .members
            .retain(|m| m.sub.mailbox.offer(Outbound::Game(event.clone())));
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
}
