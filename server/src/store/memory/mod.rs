//! The in-memory store: the same semantics as the Redis scripts, for one instance with nothing
//! else installed. All state sits behind one `std::sync::Mutex` (never held across an await,
//! so a blocking lock is right and cheaper than an async one); publishing happens under the
//! same lock, which gives the same total order of events per game as Redis does.
//!
//! One file per area, as `store/redis/`: this one holds the state and the `Store` impl, which
//! hands each call to its area's function.

mod bus;
mod chat;
mod deadlines;
mod games;
mod lobby;
mod matching;
mod presence;
mod profiles;
mod rates;
mod sessions;
mod waiting;

pub use bus::MemoryBus;

use crate::ratelimit::{Decision, Rule};
use crate::session::TokenHash;
use crate::store::{Appended, Author, ChatRecord, Creation, LobbyRecord, PresenceRecord};
use crate::store::{
    Applied, Attendance, Bus, BusMessage, Hold, Keys, LeaseRenewal, LobbyOwner, LobbyShare, Missed,
    OpenSession, PresenceChange, PresenceEntry, PresenceEvent, SeatsView, SessionRecord, Store,
    StoreLimits, StoreResult, StoredGame, Ticket, Transition,
};
use async_trait::async_trait;
use bytes::Bytes;
use chat::{LineKey, MemChat};
use games::MemGame;
use lobby::Opener;
use presence::MemPresence;
use sessions::MemSession;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::templates::{ChatTemplate, PresenceTemplate};
use tictactoe_rules::{GameState, Seats};
use tokio::sync::broadcast;

/// Messages the bus buffers for a slow hub before it counts as disconnected (and resyncs).
const BUS_CAPACITY: usize = 4096;
/// How often expired entries are purged, at most.
const PURGE_EVERY_MS: u64 = 10_000;

pub(super) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub(super) fn now_ms() -> u64 {
    now_us() / 1000
}

pub(super) fn ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

#[derive(Default)]
struct Inner {
    games: HashMap<GameId, MemGame>,
    presence: HashMap<GameId, MemPresence>,
    chats: HashMap<Option<GameId>, MemChat>,
    /// Stream-id sequence for chat lines created in the same millisecond.
    chat_seq: (u64, u64),
    /// Client line ids, as chat.lua keeps them: (game or lobby, author, id) -> (the line's
    /// stream id, expiry ms).
    line_ids: HashMap<LineKey, (String, u64)>,
    sessions: HashMap<TokenHash, MemSession>,
    /// Bucket -> (theoretical arrival time us, expiry ms).
    rates: HashMap<String, (u64, u64)>,
    /// Game -> (entry, last update ms, who opened it while it waits).
    lobby: HashMap<GameId, (LobbyRecord, u64, Option<Opener>)>,
    /// Player -> its waiting games, with when each was held (ms).
    waiting: HashMap<PlayerId, BTreeMap<GameId, u64>>,
    /// Waiting tickets: player -> (last refresh ms, ticket).
    queue: HashMap<PlayerId, (u64, Ticket)>,
    /// Players whose ticket was just paired -> when (ms), as in match.lua.
    paired: HashMap<PlayerId, u64>,
    /// Live leases -> expiry (ms), and lapsed ones being swept -> when the claim lapses, as in
    /// lease.lua.
    leases: HashMap<String, u64>,
    lease_sweeps: HashMap<String, u64>,
    lease_games: HashMap<String, HashSet<GameId>>,
    deadlines: HashMap<GameId, u64>,
    /// Match-confirmation dates, apart from the games' own (see deadline.lua).
    match_clocks: HashMap<GameId, u64>,
    profiles: profiles::MemProfiles,
    last_purge: u64,
}

impl Inner {
    fn live_game(&mut self, g: &GameId, now: u64) -> Option<&mut MemGame> {
        if self.games.get(g).is_some_and(|m| m.expires <= now) {
            self.games.remove(g);
        }
        self.games.get_mut(g)
    }

    fn purge(&mut self, now: u64) {
        if now < self.last_purge + PURGE_EVERY_MS {
            return;
        }
        self.last_purge = now;
        self.games.retain(|_, g| g.expires > now);
        self.presence.retain(|_, p| p.expires > now);
        self.chats.retain(|_, c| c.expires > now);
        self.line_ids.retain(|_, (_, e)| *e > now);
        self.sessions.retain(|_, s| s.expires > now);
        self.rates.retain(|_, (_, e)| *e > now);
        self.waiting.retain(|_, held| !held.is_empty());
        self.profiles.purge(now);
    }
}

pub struct MemoryStore {
    keys: Keys,
    limits: StoreLimits,
    inner: Mutex<Inner>,
    bus: Arc<MemoryBus>,
    /// Tests: how many of the next due-date writes fail, as when Redis does not answer.
    #[cfg(test)]
    pub(crate) failing_dates: std::sync::atomic::AtomicU32,
}

impl MemoryStore {
    pub fn new(keys: Keys, limits: StoreLimits) -> MemoryStore {
        let (tx, _) = broadcast::channel(BUS_CAPACITY);
        MemoryStore {
            keys,
            limits,
            inner: Mutex::new(Inner::default()),
            bus: Arc::new(MemoryBus { tx }),
            #[cfg(test)]
            failing_dates: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Tests: whether this due-date write is one of those made to fail.
    #[cfg(test)]
    fn date_write_fails(&self) -> StoreResult<()> {
        use std::sync::atomic::Ordering;
        match self
            .failing_dates
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        {
            Ok(_) => Err(crate::store::StoreError::Unavailable("made to fail".into())),
            Err(_) => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug in this file; the data is still
        // consistent per operation, so keep serving rather than poisoning every later call.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, channel: String, payload: Bytes) {
        // No receiver is fine: like PUBLISH to a channel nobody listens to.
        let _ = self.bus.tx.send(BusMessage { channel, payload });
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn keys(&self) -> &Keys {
        &self.keys
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn publish(&self, channel: &str, payload: Bytes) -> StoreResult<()> {
        self.send(channel.to_string(), payload);
        Ok(())
    }

    fn bus(&self) -> Arc<dyn Bus> {
        self.bus.clone()
    }

    async fn create_session(
        &self,
        token: &TokenHash,
        record: &SessionRecord,
        ttl: Duration,
    ) -> StoreResult<()> {
        sessions::create_session(self, token, record, ttl)
    }

    async fn open_session(
        &self,
        token: &TokenHash,
        rename: Option<&str>,
        ttl: Duration,
    ) -> StoreResult<Option<OpenSession>> {
        sessions::open_session(self, token, rename, ttl)
    }

    async fn remember_game(
        &self,
        token: &TokenHash,
        game: &GameId,
        _ttl: Duration,
    ) -> StoreResult<()> {
        sessions::remember_game(self, token, game, _ttl)
    }

    async fn forget_game(&self, token: &TokenHash, game: &GameId) -> StoreResult<()> {
        sessions::forget_game(self, token, game)
    }

    async fn create_game(
        &self,
        game: &GameId,
        seats: &Seats<Option<PlayerId>>,
        state: &GameState,
        event: Bytes,
        ttl: Duration,
        cid: Option<&str>,
    ) -> StoreResult<Creation> {
        games::create_game(self, game, seats, state, event, ttl, cid)
    }

    async fn load_game(&self, game: &GameId) -> StoreResult<Option<StoredGame>> {
        games::load_game(self, game)
    }

    async fn transition(&self, t: &Transition<'_>) -> StoreResult<Applied> {
        games::transition(self, t)
    }

    async fn events_since(&self, game: &GameId, since: u64) -> StoreResult<Missed> {
        games::events_since(self, game, since)
    }

    async fn applied_move(
        &self,
        game: &GameId,
        player: &PlayerId,
        mid: &str,
    ) -> StoreResult<Option<u64>> {
        games::applied_move(self, game, player, mid)
    }

    /// Never asked: this store has no replicas, so nothing is left unconfirmed.
    async fn publish_confirmed(
        &self,
        _game: &GameId,
        _version: u64,
        _event: Bytes,
    ) -> StoreResult<bool> {
        Ok(true)
    }

    async fn append_chat(
        &self,
        game: Option<&GameId>,
        author: &Author<'_>,
        text: &str,
        lid: Option<&str>,
        event: &ChatTemplate,
        ttl: Duration,
    ) -> StoreResult<Appended> {
        chat::append_chat(self, game, author, text, lid, event, ttl)
    }

    async fn recent_chat(&self, game: Option<&GameId>, n: usize) -> StoreResult<Vec<ChatRecord>> {
        chat::recent_chat(self, game, n)
    }

    async fn chat_line_of(
        &self,
        game: Option<&GameId>,
        player: &PlayerId,
        lid: &str,
    ) -> StoreResult<Option<String>> {
        Ok(chat::line_of(self, game, player, lid))
    }

    async fn rate(&self, key: &str, rule: Rule) -> StoreResult<Decision> {
        rates::rate(self, key, rule)
    }

    async fn rate_refund(&self, key: &str, rule: Rule) -> StoreResult<()> {
        rates::refund(self, key, rule)
    }

    async fn presence_change(
        &self,
        game: &GameId,
        entry: &PresenceEntry<'_>,
        change: Attendance,
        event: &PresenceTemplate,
        ttl: Duration,
    ) -> StoreResult<PresenceChange> {
        presence::presence_change(self, game, entry, change, event, ttl)
    }

    async fn presence(&self, game: &GameId) -> StoreResult<PresenceRecord> {
        presence::presence(self, game)
    }

    async fn inspect_seats(&self, game: &GameId) -> StoreResult<Option<SeatsView>> {
        presence::inspect_seats(self, game)
    }

    async fn renew_lease(&self, lease: &str, ttl: Duration) -> StoreResult<LeaseRenewal> {
        presence::renew_lease(self, lease, ttl)
    }

    async fn claim_lapsed_leases(&self, claim_ttl: Duration) -> StoreResult<Vec<String>> {
        presence::claim_lapsed_leases(self, claim_ttl)
    }

    async fn sweep_lease(
        &self,
        lease: &str,
        ttl: Duration,
        event: PresenceEvent,
    ) -> StoreResult<Vec<(GameId, Seats<bool>)>> {
        presence::sweep_lease(self, lease, ttl, event)
    }

    async fn hold_waiting(
        &self,
        player: &PlayerId,
        game: &GameId,
        cap: usize,
        ttl: Duration,
    ) -> StoreResult<Hold> {
        waiting::hold_waiting(self, player, game, cap, ttl)
    }

    async fn release_waiting(&self, player: &PlayerId, game: &GameId) -> StoreResult<()> {
        waiting::release_waiting(self, player, game)
    }

    async fn lobby_update(
        &self,
        entry: &LobbyRecord,
        owner: Option<LobbyOwner<'_>>,
        event: Bytes,
    ) -> StoreResult<()> {
        lobby::lobby_update(self, entry, owner, event)
    }

    async fn lobby_list(
        &self,
        max: usize,
        share: LobbyShare,
        ttl: Duration,
    ) -> StoreResult<(Vec<LobbyRecord>, Vec<LobbyRecord>)> {
        lobby::lobby_list(self, max, share, ttl)
    }

    async fn match_enqueue(&self, ticket: &Ticket, fresh: Duration) -> StoreResult<Option<Ticket>> {
        matching::match_enqueue(self, ticket, fresh)
    }

    async fn match_cancel(&self, player: &PlayerId) -> StoreResult<bool> {
        matching::match_cancel(self, player)
    }

    async fn match_queued(&self, player: &PlayerId, fresh: Duration) -> StoreResult<bool> {
        matching::match_queued(self, player, fresh)
    }

    async fn match_rename(&self, player: &PlayerId, name: &str) -> StoreResult<bool> {
        matching::match_rename(self, player, name)
    }

    async fn match_refresh(
        &self,
        players: &[PlayerId],
        fresh: Duration,
    ) -> StoreResult<Vec<PlayerId>> {
        matching::match_refresh(self, players, fresh)
    }

    async fn set_deadline(&self, game: &GameId, at_ms: u64) -> StoreResult<()> {
        #[cfg(test)]
        self.date_write_fails()?;
        deadlines::set_deadline(self, game, at_ms)
    }

    async fn set_match_clock(&self, game: &GameId, at_ms: u64) -> StoreResult<()> {
        #[cfg(test)]
        self.date_write_fails()?;
        deadlines::set_match_clock(self, game, at_ms)
    }

    async fn clear_match_clock(&self, game: &GameId) -> StoreResult<()> {
        deadlines::clear_match_clock(self, game)
    }

    async fn due_deadlines(&self, max: usize) -> StoreResult<(u64, Vec<(GameId, u64)>)> {
        deadlines::due_deadlines(self, max)
    }

    async fn settle_deadline(
        &self,
        game: &GameId,
        due: u64,
        next: Option<u64>,
    ) -> StoreResult<bool> {
        deadlines::settle_deadline(self, game, due, next)
    }
}
