//! Where every game, seat, session, chat line and budget lives, behind one trait.
//!
//! [`redis::RedisStore`] is the reference implementation (Lua scripts, one round trip per
//! move); [`memory::MemoryStore`] is the zero-setup single-instance default. Both pass the same
//! conformance suite (`tests/it/store_conformance.rs`). The [`Bus`] half is the pub/sub side:
//! game events reach instances through it.
//!
//! The store knows no message layout: events reach it rendered, as bytes (or, where only the
//! store knows some values, as a template from `protocol::templates`), and it stores and
//! publishes them verbatim.

pub mod keys;
pub mod memory;
mod missed;
pub mod profiles;
pub mod redis;

use crate::config::{Config, RedisLayout};
use crate::ratelimit::{Decision, Rule};
use crate::session::TokenHash;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::templates::{ChatTemplate, PresenceSlot, PresenceTemplate, away_json};
use tictactoe_protocol::{Away, AwayReason, Role};
use tictactoe_rules::{GameState, Mark, Seats, Status};

pub use keys::Keys;
pub(crate) use missed::missed_since;
pub use profiles::ProfileStore;

/// Builds the store `layout` names: Redis, a primary found through Sentinel, a Redis Cluster,
/// or the in-memory store of a lone instance; `config` gives the timeouts, limits and key
/// prefix.
pub fn connect(layout: &RedisLayout, config: &Config) -> StoreResult<Arc<dyn Store>> {
    let keys = Keys::new(config.key_prefix.clone());
    let limits = StoreLimits {
        log_len: config.event_log_len,
        chat_len: config.chat_kept,
        ..StoreLimits::default()
    };
    let durable = |store: redis::RedisStore| -> StoreResult<Arc<dyn Store>> {
        if config.redis_wait_replicas > 0 {
            tracing::info!(
                replicas = config.redis_wait_replicas,
                timeout_ms = config.redis_wait_timeout.as_millis() as u64,
                "game changes are acknowledged once replicas have them (WAIT)"
            );
        }
        Ok(Arc::new(store.wait_for_replicas(
            config.redis_wait_replicas,
            config.redis_wait_timeout,
        )?))
    };
    let timeout = config.redis_timeout;
    match layout {
        RedisLayout::Sentinel { sentinels, master } => {
            tracing::info!(sentinels = ?without_credentials(sentinels), master, "finding the Redis primary through Sentinel");
            let auth = redis::PrimaryAuth {
                username: config.redis_username.clone(),
                password: config.redis_password.clone(),
            };
            durable(redis::RedisStore::connect_sentinel(
                sentinels, master, auth, keys, limits, timeout,
            )?)
        }
        RedisLayout::Single { url } => {
            durable(redis::RedisStore::connect(url, keys, limits, timeout)?)
        }
        RedisLayout::Cluster { nodes } => {
            tracing::info!(nodes = ?without_credentials(nodes), "using Redis Cluster with sharded pub/sub");
            durable(redis::RedisStore::connect_cluster(
                nodes, keys, limits, timeout,
            )?)
        }
        RedisLayout::Memory => {
            tracing::warn!(
                "REDIS_URL is not set: using the IN-MEMORY store. This instance cannot share \
                 games with any other, and everything is lost when it stops."
            );
            Ok(Arc::new(memory::MemoryStore::new(keys, limits)))
        }
    }
}

/// Redis URLs as they may be logged: a password in one (`redis://user:secret@host`) is left
/// out, as is the user.
fn without_credentials(urls: &[String]) -> Vec<String> {
    urls.iter()
        .map(|url| match url.split_once("://") {
            Some((scheme, rest)) => {
                let host_end = rest.find('/').unwrap_or(rest.len());
                match rest[..host_end].rfind('@') {
                    Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                    None => url.clone(),
                }
            }
            None => match url.rfind('@') {
                Some(at) => url[at + 1..].to_string(),
                None => url.clone(),
            },
        })
        .collect()
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or did not answer in time. The operation may or may not
    /// have been applied (it is idempotent where that matters: moves carry a move id).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A transition (or a retry of one) is in the store at `version`, but the replicas did
    /// not confirm it in time (`REDIS_WAIT_REPLICAS`): unavailable to the client, and its
    /// event is not published until they do ([`Store::publish_confirmed`]).
    #[error("store unavailable: the replicas did not confirm version {version} in time")]
    Unconfirmed { version: u64 },
    /// The backend answered with something this version does not understand.
    #[error("unexpected data in the store: {0}")]
    Corrupt(String),
    /// The store cannot be set up as configured.
    #[error("store misconfigured: {0}")]
    Config(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A game as stored: the public state plus who holds each seat.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredGame {
    pub version: u64,
    pub state: GameState,
    pub seats: Seats<Option<PlayerId>>,
}

impl StoredGame {
    /// The seat `player` holds, if any.
    pub fn seat_of(&self, player: &PlayerId) -> Option<Mark> {
        [Mark::X, Mark::O]
            .into_iter()
            .find(|m| self.seats.get(*m).as_ref() == Some(player))
    }
}

/// What a transition requires of the actor's seat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeatCheck {
    /// Nothing (the deadline sweeper acts for nobody).
    None,
    /// The actor must hold this seat.
    Holds(Mark),
    /// The seat must be empty; the actor takes it.
    Claims(Mark),
}

/// One compare-and-set of a game: applied only if the stored version is still `expected`.
#[derive(Clone, Debug)]
pub struct Transition<'a> {
    pub game: &'a GameId,
    pub expected: u64,
    pub actor: &'a PlayerId,
    pub seat: SeatCheck,
    /// The state after the transition, computed by the rules from version `expected`.
    pub state: &'a GameState,
    /// The event JSON, carrying version `expected + 1`; logged and published as is.
    pub event: Bytes,
    pub ttl: Duration,
    /// The actor's move budget in this game, checked in the same atomic step.
    pub limit: Option<Rule>,
    /// Client move id: if this player already had a transition with it, nothing happens.
    pub mid: Option<&'a str>,
    /// The lobby entry of a change of status, recorded and announced in the same step; only
    /// where [`Store::lobby_with_transitions`] says the store can.
    pub lobby: Option<&'a LobbyChange>,
}

/// A game's lobby entry and the `lobby_changed` message that announces it.
#[derive(Clone, Debug)]
pub struct LobbyChange {
    pub entry: LobbyRecord,
    pub event: Bytes,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    Ok {
        version: u64,
    },
    /// The game moved on: here it is, recompute and try again.
    Stale(StoredGame),
    /// This move id was already applied, at `version`.
    Duplicate {
        version: u64,
    },
    NotSeated,
    SeatTaken,
    UnknownGame,
    RateLimited {
        retry_after_ms: u64,
    },
}

/// What creating a game under a given id did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Creation {
    Created,
    /// The game exists, created by the same X with the same create id: a retry, and
    /// nothing changed.
    Duplicate,
    /// Another game has this id.
    Taken,
}

/// Who says a chat line: the player (whose client line ids are remembered), the name shown
/// with the line and what the player is in the game (none in the lobby).
#[derive(Clone, Copy, Debug)]
pub struct Author<'a> {
    pub player: &'a PlayerId,
    pub name: &'a str,
    pub role: Option<Role>,
}

/// What appending a chat line did.
#[derive(Clone, Debug, PartialEq)]
pub enum Appended {
    Line(ChatRecord),
    /// The author already sent a line with this client line id: it has this stream id, and
    /// nothing was added.
    Duplicate {
        id: String,
    },
    UnknownGame,
}

/// Events after a version, from a game's log.
#[derive(Clone, Debug, PartialEq)]
pub enum Missed {
    UpToDate,
    /// Every event after the requested version, in order, as logged.
    Events(Vec<Bytes>),
    /// The log no longer reaches back that far (or the gap is too long): send a snapshot.
    TooOld,
    UnknownGame,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub player: PlayerId,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSession {
    pub record: SessionRecord,
    /// The session's games, most recently joined first.
    pub games: Vec<GameId>,
}

/// Sizes and lifetimes the store enforces.
#[derive(Clone, Debug)]
pub struct StoreLimits {
    /// Events kept per game log (for replay on resume).
    pub log_len: usize,
    /// Client move ids remembered per player and game (for exactly-once retries): a move
    /// retried with the same id is recognised while it is among the player's last this many.
    pub mids_kept: usize,
    /// Chat lines kept per game and in the lobby.
    pub chat_len: usize,
    /// Games remembered per session.
    pub session_games: usize,
    /// How long a chat line's client id is remembered (for exactly-once retries): longer
    /// than a client keeps retrying through an outage, short enough that ids cost little.
    pub line_ids_ttl: Duration,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            log_len: 64,
            mids_kept: 32,
            chat_len: 100,
            session_games: 20,
            line_ids_ttl: Duration::from_secs(600),
        }
    }
}

/// A presence entry: one player in one role, on the instance holding `lease`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceEntry<'a> {
    pub lease: &'a str,
    pub player: &'a PlayerId,
    pub role: Role,
}

/// What renewing an instance's lease found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseRenewal {
    /// The lease was live (or lapsed but not claimed yet): renewed, nothing was swept.
    Renewed,
    /// The lease lapsed and another instance is sweeping its presence entries: nothing
    /// changed. Entries announced now could be swept with the old ones; try again later.
    Sweeping,
    /// The store did not know the lease (first start, or it lapsed and was swept): it is
    /// registered now, and its presence entries must be announced again.
    Registered,
}

/// A connection arriving in a game's presence, or leaving it and why (which the game's
/// presence then tells of an emptied seat).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attendance {
    Arrive,
    Leave(AwayReason),
    /// The lease holds exactly this many connections of the player in that role: presence
    /// announced again after the lease lapsed. Absolute, so that an entry the sweep missed
    /// (a connection that arrived meanwhile) is not counted twice.
    Announce(u32),
}

/// A quick-match ticket: who waits, and where to tell them they were matched.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ticket {
    pub player: PlayerId,
    pub name: String,
    /// The instance lease holding the waiting connection.
    pub lease: String,
    pub conn: u64,
}

/// A game's lobby entry as the store keeps it (JSON in Redis, in this layout: the stored form
/// is the store's, the wire's `LobbyGame` is made from it by the operations).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LobbyRecord {
    pub game: GameId,
    pub status: Status,
    pub players: Seats<Option<String>>,
    pub round: u32,
    #[serde(flatten)]
    pub terms: tictactoe_protocol::Terms,
}

/// A chat line as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatRecord {
    /// Stream id: increasing within a game (or the lobby).
    pub id: String,
    pub from: String,
    /// What the author was in the game (none in the lobby).
    pub role: Option<Role>,
    pub text: String,
    /// Milliseconds since the epoch, on the store's clock.
    pub ts: u64,
}

/// Who is connected to a game, as the store counts it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresenceRecord {
    pub players: Seats<bool>,
    pub spectators: u32,
    /// For each seat whose player was here and is not now: why, and how long ago.
    pub away: Seats<Option<Absence>>,
}

/// A seated player's absence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Absence {
    pub reason: AwayReason,
    /// How long ago the player went, when it was read.
    pub for_ms: u64,
}

impl PresenceRecord {
    /// The presence event `template` describes, with this presence's values.
    pub fn render(&self, template: &PresenceTemplate) -> String {
        let away = |a: Option<Absence>| {
            away_json(a.map(|a| Away {
                reason: a.reason,
                for_ms: a.for_ms,
            }))
        };
        template.fill_with(|slot| match slot {
            PresenceSlot::XPresent => self.players.x.to_string(),
            PresenceSlot::OPresent => self.players.o.to_string(),
            PresenceSlot::Spectators => self.spectators.to_string(),
            PresenceSlot::XAway => away(self.away.x),
            PresenceSlot::OAway => away(self.away.o),
        })
    }
}

/// Who opened a game waiting in the lobby: the player, and the address it is counted under
/// (a per-address budget key, never shown to anyone).
#[derive(Clone, Copy, Debug)]
pub struct LobbyOwner<'a> {
    pub player: &'a PlayerId,
    pub address: &'a str,
}

/// How many open games of one owner, and of one address, a lobby list shows (0: no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LobbyShare {
    pub per_owner: usize,
    pub per_address: usize,
}

#[async_trait]
pub trait Store: ProfileStore + Send + Sync + 'static {
    fn keys(&self) -> &Keys;

    /// A cheap round trip, for readiness.
    async fn ping(&self) -> StoreResult<()>;

    /// When the backend last answered a command, if it is one that can stop answering.
    fn last_answer(&self) -> Option<std::time::Instant> {
        None
    }

    /// Publishes on a channel (game channels are published by the transition scripts).
    async fn publish(&self, channel: &str, payload: Bytes) -> StoreResult<()>;

    fn bus(&self) -> Arc<dyn Bus>;

    // Sessions.
    async fn create_session(
        &self,
        token: &TokenHash,
        record: &SessionRecord,
        ttl: Duration,
    ) -> StoreResult<()>;
    /// Loads a session and renews its lifetime; `rename` changes its display name.
    async fn open_session(
        &self,
        token: &TokenHash,
        rename: Option<&str>,
        ttl: Duration,
    ) -> StoreResult<Option<OpenSession>>;
    async fn remember_game(
        &self,
        token: &TokenHash,
        game: &GameId,
        ttl: Duration,
    ) -> StoreResult<()>;
    async fn forget_game(&self, token: &TokenHash, game: &GameId) -> StoreResult<()>;

    // Games.
    /// Creates a game at version 1 with `event` as its first log entry, unless the id is
    /// taken. `cid`, the client's create id, is kept with the game for as long as it lives:
    /// the same X creating it again with the same `cid` is told [`Creation::Duplicate`].
    async fn create_game(
        &self,
        game: &GameId,
        seats: &Seats<Option<PlayerId>>,
        state: &GameState,
        event: Bytes,
        ttl: Duration,
        cid: Option<&str>,
    ) -> StoreResult<Creation>;
    async fn load_game(&self, game: &GameId) -> StoreResult<Option<StoredGame>>;
    async fn transition(&self, t: &Transition<'_>) -> StoreResult<Applied>;
    /// Whether a transition can record its lobby entry in the same step (the lobby and the
    /// game on one node, and no `WAIT` holding the announcement back): one round trip fewer
    /// per change of status, and no follow-up that another instance's could overtake.
    fn lobby_with_transitions(&self) -> bool {
        false
    }
    async fn events_since(&self, game: &GameId, since: u64) -> StoreResult<Missed>;
    /// The version at which `player`'s move `mid` was applied, if it was (and is still
    /// remembered).
    async fn applied_move(
        &self,
        game: &GameId,
        player: &PlayerId,
        mid: &str,
    ) -> StoreResult<Option<u64>>;
    /// Publishes the logged event at `version` once the replicas confirm everything up to
    /// it, and only if the log still holds `event` there (empty: whatever it holds). True once
    /// nothing is left to do (published, or the version was taken back); false while the
    /// replicas have not confirmed.
    async fn publish_confirmed(
        &self,
        game: &GameId,
        version: u64,
        event: Bytes,
    ) -> StoreResult<bool>;

    // Chat.
    /// Appends a chat line to a game (or the lobby) and publishes `event`, filled with the
    /// line's id and time; returns the line as stored. With `lid`, the client's line id, in
    /// the same atomic step: a line the author already sent with it (within
    /// [`StoreLimits::line_ids_ttl`]) is not added again.
    async fn append_chat(
        &self,
        game: Option<&GameId>,
        author: &Author<'_>,
        text: &str,
        lid: Option<&str>,
        event: &ChatTemplate,
        ttl: Duration,
    ) -> StoreResult<Appended>;
    /// The most recent `n` lines, oldest first.
    async fn recent_chat(&self, game: Option<&GameId>, n: usize) -> StoreResult<Vec<ChatRecord>>;
    /// The id of the line `player` added with the line id `lid` (still remembered, within
    /// [`StoreLimits::line_ids_ttl`]), if any.
    async fn chat_line_of(
        &self,
        game: Option<&GameId>,
        player: &PlayerId,
        lid: &str,
    ) -> StoreResult<Option<String>>;

    // Rate limits.
    /// One GCRA step on the named bucket, on the store's clock.
    async fn rate(&self, key: &str, rule: Rule) -> StoreResult<Decision>;
    /// Gives back one request that [`Store::rate`] allowed on the bucket and that turned out
    /// to add nothing (see [`crate::ratelimit::gcra_refund`]).
    async fn rate_refund(&self, key: &str, rule: Rule) -> StoreResult<()>;

    // PresenceRecord.
    /// Adds or removes a connection of `entry` in `game`, and publishes the game's presence
    /// (`event`, filled) when it changed. A seat that empties remembers why and since when
    /// (`PresenceRecord::away`).
    async fn presence_change(
        &self,
        game: &GameId,
        entry: &PresenceEntry<'_>,
        change: Attendance,
        event: &PresenceTemplate,
        ttl: Duration,
    ) -> StoreResult<PresenceChange>;
    async fn presence(&self, game: &GameId) -> StoreResult<PresenceRecord>;
    /// The game and its seats' attendance, for the forfeit clock. Starts the away clock of
    /// an absent seat that has none. `None` for an unknown game.
    async fn inspect_seats(&self, game: &GameId) -> StoreResult<Option<SeatsView>>;
    /// Renews this instance's lease, or registers it when the store does not know it (first
    /// start, or it lapsed and its sweep has ended); leaves it alone while another instance
    /// sweeps it. See [`LeaseRenewal`].
    async fn renew_lease(&self, lease: &str, ttl: Duration) -> StoreResult<LeaseRenewal>;
    /// Claims the leases that expired without being dropped (their instance died, or could
    /// not renew) and those whose earlier claim lapsed (their sweeper died): the caller, and
    /// no other instance, sweeps each one returned, within `claim_ttl`.
    async fn claim_lapsed_leases(&self, claim_ttl: Duration) -> StoreResult<Vec<String>>;
    /// Removes every presence entry of a lease, publishes the new presence of each game
    /// touched (with the template `event` gives for it), and forgets the lease and any claim
    /// on it: for a claimed lease, and for an instance's own at shutdown. Returns the games
    /// whose seats it emptied.
    async fn sweep_lease(
        &self,
        lease: &str,
        ttl: Duration,
        event: PresenceEvent,
    ) -> StoreResult<Vec<(GameId, Seats<bool>)>>;

    // Waiting games.
    /// Counts `game` among the games `player` has waiting for an opponent, unless it already
    /// has `cap` of them: then nothing changes and the held games are returned. Entries older
    /// than `ttl` no longer count.
    async fn hold_waiting(
        &self,
        player: &PlayerId,
        game: &GameId,
        cap: usize,
        ttl: Duration,
    ) -> StoreResult<Hold>;
    /// Stops counting `game` among `player`'s waiting games.
    async fn release_waiting(&self, player: &PlayerId, game: &GameId) -> StoreResult<()>;

    // Lobby.
    /// Records where a game stands in the lobby and publishes `event` (the change) on the
    /// lobby channel. `owner` is who opened a waiting game, and from where.
    async fn lobby_update(
        &self,
        entry: &LobbyRecord,
        owner: Option<LobbyOwner<'_>>,
        event: Bytes,
    ) -> StoreResult<()>;
    /// Open and live games, newest first, at most `max` of each and at most `share` open
    /// games of one owner and of one address; entries not updated within `ttl` are pruned.
    async fn lobby_list(
        &self,
        max: usize,
        share: LobbyShare,
        ttl: Duration,
    ) -> StoreResult<(Vec<LobbyRecord>, Vec<LobbyRecord>)>;

    // Quick match.
    /// Queues `ticket`, unless another ticket refreshed within `fresh` waits: then that one
    /// leaves the queue and is returned, and the two are paired. Atomic: a ticket is paired
    /// at most once.
    async fn match_enqueue(&self, ticket: &Ticket, fresh: Duration) -> StoreResult<Option<Ticket>>;
    /// Removes a waiting ticket. False if it was no longer queued.
    async fn match_cancel(&self, player: &PlayerId) -> StoreResult<bool>;
    /// Whether `player` waits in the queue with a ticket refreshed within `fresh`.
    async fn match_queued(&self, player: &PlayerId, fresh: Duration) -> StoreResult<bool>;
    /// The player waiting with a ticket is now called `name`: the game a pairing makes uses
    /// it. False if no ticket of the player is queued.
    async fn match_rename(&self, player: &PlayerId, name: &str) -> StoreResult<bool>;
    /// Marks these tickets as still waiting; returns those no longer queued, except players
    /// paired within `fresh` (the news of their match may still be on its way to them).
    async fn match_refresh(
        &self,
        players: &[PlayerId],
        fresh: Duration,
    ) -> StoreResult<Vec<PlayerId>>;

    // Deadlines: a game has up to two due dates, its own (forfeit clocks, the computer's next
    // step, a finished round's recording) and its match-confirmation date.
    /// Sets a game's due date, keeping the earlier one if it already has one.
    async fn set_deadline(&self, game: &GameId, at_ms: u64) -> StoreResult<()>;
    /// Sets a game's match-confirmation date (keeping the earlier one). It is kept apart from
    /// the game's own date so that [`Store::clear_match_clock`] can take it away when both
    /// players are there without taking away a forfeit clock set meanwhile.
    async fn set_match_clock(&self, game: &GameId, at_ms: u64) -> StoreResult<()>;
    /// Removes a game's match-confirmation date: both players arrived.
    async fn clear_match_clock(&self, game: &GameId) -> StoreResult<()>;
    /// The store's clock (ms) and up to `max` dates that have passed, oldest first, as
    /// (game, date): a game whose two dates have both passed is listed twice.
    async fn due_deadlines(&self, max: usize) -> StoreResult<(u64, Vec<(GameId, u64)>)>;
    /// Moves the game's date that is still `due` to `next` (or removes it), the game's own
    /// date first. False if another instance changed it meanwhile.
    async fn settle_deadline(
        &self,
        game: &GameId,
        due: u64,
        next: Option<u64>,
    ) -> StoreResult<bool>;
}

/// The answer to [`Store::hold_waiting`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    Held,
    /// The player already has as many waiting games as allowed: these.
    Full(Vec<GameId>),
}

/// The result of a presence change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresenceChange {
    pub presence: PresenceRecord,
    /// Seats whose player just left (their forfeit clock started).
    pub left: Seats<bool>,
    /// Connections this lease still has in the game.
    pub lease_entries: u64,
}

/// A game's seats as the forfeit clock sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct SeatsView {
    pub now_ms: u64,
    pub version: u64,
    pub state: GameState,
    pub present: Seats<bool>,
    /// Whether each seat's player was ever present.
    pub seen: Seats<bool>,
    /// Since when each absent seat has been away (ms).
    pub away_since: Seats<Option<u64>>,
}

/// Renders the presence template of a game, for operations that find the games they touch
/// as they go (sweeping a lease).
pub type PresenceEvent = fn(&GameId) -> PresenceTemplate;

/// A message received on a subscribed channel.
#[derive(Clone, Debug)]
pub struct BusMessage {
    pub channel: String,
    pub payload: Bytes,
}

/// Takes a bus message in the task that read it off the connection: a link that can hand
/// messages over that way spares each one a task hop and a turn of the hub's loop.
pub type Deliver = Arc<dyn Fn(BusMessage) + Send + Sync>;

/// The pub/sub side of a store: one connection per instance, used by the hub.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Connects. The link hands each message to `deliver` as it reads it, or yields it on its
    /// stream (the in-memory bus, a Cluster's sharded one): the hub takes both.
    async fn connect(&self, deliver: Deliver) -> StoreResult<BusLink>;
}

/// A live subscription connection. The stream ends when the connection is lost; whatever was
/// published meanwhile is gone, so the hub re-reads state after reconnecting.
pub struct BusLink {
    pub sink: Box<dyn BusSink>,
    pub messages: BoxStream<'static, BusMessage>,
}

#[async_trait]
pub trait BusSink: Send {
    /// Returns once the subscription is confirmed: messages published after that arrive.
    async fn subscribe(&mut self, channels: &[String]) -> StoreResult<()>;
    async fn unsubscribe(&mut self, channels: &[String]) -> StoreResult<()>;
    /// A round trip on the subscription connection itself, where the backend has one: a
    /// connection that stopped answering is otherwise indistinguishable from a quiet one.
    async fn ping(&mut self) -> StoreResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::without_credentials;

    #[test]
    fn logged_urls_carry_no_password() {
        let urls = [
            "redis://:s3cret@10.0.0.1:6379/0",
            "rediss://game:p@ss@node-2:7000",
            "redis://10.0.0.3:7000/",
            "user:pw@10.0.0.4:26379",
        ]
        .map(String::from);
        let logged = without_credentials(&urls);
        assert_eq!(
            logged,
            [
                "redis://10.0.0.1:6379/0",
                "rediss://node-2:7000",
                "redis://10.0.0.3:7000/",
                "10.0.0.4:26379",
            ]
        );
    }
}
