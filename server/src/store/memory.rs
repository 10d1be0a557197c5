//! The in-memory store: the same semantics as the Redis scripts, for one instance with nothing
//! else installed. All state sits behind one `std::sync::Mutex` (never held across an await,
//! so a blocking lock is right and cheaper than an async one); publishing happens under the
//! same lock, which gives the same total order of events per game as Redis does.

use super::*;
use crate::protocol::Away;
use crate::ratelimit::gcra;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// Messages the bus buffers for a slow hub before it counts as disconnected (and resyncs).
const BUS_CAPACITY: usize = 4096;
/// How often expired entries are purged, at most.
const PURGE_EVERY_MS: u64 = 10_000;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn now_ms() -> u64 {
    now_us() / 1000
}

fn ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

/// The version `player`'s move `mid` produced, if it is among the recent ones.
fn applied(g: &MemGame, player: &PlayerId, mid: &str) -> Option<u64> {
    g.mids
        .get(player)?
        .iter()
        .find(|(m, _)| m == mid)
        .map(|(_, v)| *v)
}

struct MemGame {
    version: u64,
    state: GameState,
    seats: Seats<Option<PlayerId>>,
    log: VecDeque<(u64, Bytes)>,
    /// Per player, as transition.lua keeps them in the game hash: the recent move ids with
    /// the version each produced (oldest first), and the move budget (GCRA arrival time, us).
    mids: HashMap<PlayerId, VecDeque<(String, u64)>>,
    budgets: HashMap<PlayerId, u64>,
    expires: u64,
}

#[derive(Default)]
struct MemPresence {
    /// `c|<lease>|<player>|<role>` -> connections.
    conns: BTreeMap<String, i64>,
    seen: Seats<bool>,
    away: Seats<Option<u64>>,
    /// Why each seat emptied, while it is empty (`why|M` in presence.lua).
    why: Seats<Option<AwayReason>>,
    expires: u64,
}

impl MemPresence {
    fn summary(&self) -> Presence {
        let mut p = Presence::default();
        let mut spectators = HashSet::new();
        for field in self.conns.keys() {
            let mut parts = field.splitn(4, '|').skip(2);
            let (player, role) = (parts.next(), parts.next());
            match role {
                Some("X") => p.players.x = true,
                Some("O") => p.players.o = true,
                Some(_) => {
                    spectators.insert(player.unwrap_or_default().to_string());
                }
                None => {}
            }
        }
        p.spectators = spectators.len() as u32;
        p
    }

    /// The summary with each emptied seat's absence, as presence.lua reports it.
    fn view(&self, now: u64) -> Presence {
        let mut p = self.summary();
        for m in [Mark::X, Mark::O] {
            if *p.players.get(m) {
                continue;
            }
            if let (Some(reason), Some(since)) = (*self.why.get(m), *self.away.get(m)) {
                *p.away.get_mut(m) = Some(Away {
                    reason,
                    for_ms: now.saturating_sub(since),
                });
            }
        }
        p
    }

    fn lease_entries(&self, lease: &str) -> u64 {
        let prefix = format!("c|{lease}|");
        self.conns.keys().filter(|f| f.starts_with(&prefix)).count() as u64
    }

    /// Seat bookkeeping after a change, as presence.lua does it.
    fn settle(
        &mut self,
        before: &Presence,
        after: &Presence,
        now: u64,
        why: AwayReason,
    ) -> Seats<bool> {
        let mut left = Seats::default();
        for m in [Mark::X, Mark::O] {
            if *after.players.get(m) {
                *self.away.get_mut(m) = None;
                *self.why.get_mut(m) = None;
                *self.seen.get_mut(m) = true;
            } else if *before.players.get(m) {
                *self.away.get_mut(m) = Some(now);
                *self.why.get_mut(m) = Some(why);
                *left.get_mut(m) = true;
            }
        }
        left
    }
}

struct MemChat {
    lines: VecDeque<ChatLine>,
    expires: u64,
}

struct MemSession {
    record: SessionRecord,
    /// Game -> when last joined (ms).
    games: HashMap<GameId, u64>,
    expires: u64,
}

#[derive(Default)]
struct Inner {
    games: HashMap<GameId, MemGame>,
    presence: HashMap<GameId, MemPresence>,
    chats: HashMap<Option<GameId>, MemChat>,
    /// Stream-id sequence for chat lines created in the same millisecond.
    chat_seq: (u64, u64),
    sessions: HashMap<TokenHash, MemSession>,
    /// Bucket -> (theoretical arrival time us, expiry ms).
    rates: HashMap<String, (u64, u64)>,
    /// Game -> (entry, last update ms, who opened it while it waits).
    lobby: HashMap<GameId, (LobbyGame, u64, Option<Opener>)>,
    /// Player -> its waiting games, with when each was held (ms).
    waiting: HashMap<PlayerId, BTreeMap<GameId, u64>>,
    /// Waiting tickets: player -> (last refresh ms, ticket).
    queue: HashMap<PlayerId, (u64, Ticket)>,
    /// Players whose ticket was just paired -> when (ms), as in match.lua.
    paired: HashMap<PlayerId, u64>,
    leases: HashMap<String, u64>,
    lease_games: HashMap<String, HashSet<GameId>>,
    deadlines: HashMap<GameId, u64>,
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
        self.sessions.retain(|_, s| s.expires > now);
        self.rates.retain(|_, (_, e)| *e > now);
        self.waiting.retain(|_, held| !held.is_empty());
    }
}

/// Who opened a waiting game, and the address it is counted under.
type Opener = (PlayerId, String);

pub struct MemoryStore {
    keys: Keys,
    limits: StoreLimits,
    inner: Mutex<Inner>,
    bus: Arc<MemoryBus>,
}

impl MemoryStore {
    pub fn new(keys: Keys, limits: StoreLimits) -> MemoryStore {
        let (tx, _) = broadcast::channel(BUS_CAPACITY);
        MemoryStore {
            keys,
            limits,
            inner: Mutex::new(Inner::default()),
            bus: Arc::new(MemoryBus { tx }),
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
        let now = now_ms();
        let mut inner = self.lock();
        inner.purge(now);
        inner.sessions.insert(
            token.clone(),
            MemSession {
                record: record.clone(),
                games: HashMap::new(),
                expires: now + ms(ttl),
            },
        );
        Ok(())
    }

    async fn open_session(
        &self,
        token: &TokenHash,
        rename: Option<&str>,
        ttl: Duration,
    ) -> StoreResult<Option<OpenSession>> {
        let now = now_ms();
        let mut inner = self.lock();
        let Some(s) = inner.sessions.get_mut(token).filter(|s| s.expires > now) else {
            return Ok(None);
        };
        if let Some(name) = rename {
            s.record.name = name.to_string();
        }
        s.expires = now + ms(ttl);
        let mut games: Vec<_> = s.games.iter().map(|(g, t)| (*t, g.clone())).collect();
        games.sort_by(|a, b| b.cmp(a));
        Ok(Some(OpenSession {
            record: s.record.clone(),
            games: games
                .into_iter()
                .take(self.limits.session_games)
                .map(|(_, g)| g)
                .collect(),
        }))
    }

    async fn remember_game(
        &self,
        token: &TokenHash,
        game: &GameId,
        _ttl: Duration,
    ) -> StoreResult<()> {
        let now = now_ms();
        let mut inner = self.lock();
        if let Some(s) = inner.sessions.get_mut(token) {
            s.games.insert(game.clone(), now);
            while s.games.len() > self.limits.session_games {
                let oldest = s
                    .games
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(g, _)| g.clone());
                if let Some(g) = oldest {
                    s.games.remove(&g);
                }
            }
        }
        Ok(())
    }

    async fn forget_game(&self, token: &TokenHash, game: &GameId) -> StoreResult<()> {
        if let Some(s) = self.lock().sessions.get_mut(token) {
            s.games.remove(game);
        }
        Ok(())
    }

    async fn create_game(
        &self,
        game: &GameId,
        seats: &Seats<Option<PlayerId>>,
        state: &GameState,
        event: Bytes,
        ttl: Duration,
    ) -> StoreResult<bool> {
        if seats.x.is_none() {
            return Err(StoreError::Corrupt("a game needs X".into()));
        }
        let now = now_ms();
        let mut inner = self.lock();
        inner.purge(now);
        if inner.live_game(game, now).is_some() {
            return Ok(false);
        }
        inner.games.insert(
            game.clone(),
            MemGame {
                version: 1,
                state: state.clone(),
                seats: seats.clone(),
                log: VecDeque::from([(1, event.clone())]),
                mids: HashMap::new(),
                budgets: HashMap::new(),
                expires: now + ms(ttl),
            },
        );
        self.send(self.keys.game_channel(game), event);
        Ok(true)
    }

    async fn load_game(&self, game: &GameId) -> StoreResult<Option<StoredGame>> {
        let mut inner = self.lock();
        Ok(inner.live_game(game, now_ms()).map(|g| StoredGame {
            version: g.version,
            state: g.state.clone(),
            seats: g.seats.clone(),
        }))
    }

    async fn transition(&self, t: &Transition<'_>) -> StoreResult<Applied> {
        let now = now_ms();
        let mut inner = self.lock();
        let Some(g) = inner.live_game(t.game, now) else {
            return Ok(Applied::UnknownGame);
        };
        if let Some(v) = t.mid.and_then(|mid| applied(g, t.actor, mid)) {
            return Ok(Applied::Duplicate { version: v });
        }
        if g.version != t.expected {
            return Ok(Applied::Stale(StoredGame {
                version: g.version,
                state: g.state.clone(),
                seats: g.seats.clone(),
            }));
        }
        match t.seat {
            SeatCheck::Holds(m) if g.seats.get(m).as_ref() != Some(t.actor) => {
                return Ok(Applied::NotSeated);
            }
            SeatCheck::Claims(m) if g.seats.get(m).is_some() => return Ok(Applied::SeatTaken),
            _ => {}
        }
        let version = t.expected + 1;
        // The budget is checked last among the refusals, as in transition.lua.
        if let Some(rule) = t.limit {
            match gcra(now_us(), g.budgets.get(t.actor).copied(), rule) {
                Decision::Deny { retry_after_us } => {
                    return Ok(Applied::RateLimited {
                        retry_after_ms: Decision::retry_after_ms(retry_after_us),
                    });
                }
                Decision::Allow { new_tat } => {
                    g.budgets.insert(t.actor.clone(), new_tat);
                }
            }
        }
        if let SeatCheck::Claims(m) = t.seat {
            *g.seats.get_mut(m) = Some(t.actor.clone());
        }
        g.version = version;
        g.state = t.state.clone();
        g.log.push_back((version, t.event.clone()));
        while g.log.len() > self.limits.log_len {
            g.log.pop_front();
        }
        if let Some(mid) = t.mid {
            let mids = g.mids.entry(t.actor.clone()).or_default();
            mids.push_back((mid.to_string(), version));
            while mids.len() > self.limits.mids_kept {
                mids.pop_front();
            }
        }
        let expires = now + ms(t.ttl);
        g.expires = expires;
        if let Some(c) = inner.chats.get_mut(&Some(t.game.clone())) {
            c.expires = expires;
        }
        if let Some(p) = inner.presence.get_mut(t.game) {
            p.expires = expires;
        }
        self.send(self.keys.game_channel(t.game), t.event.clone());
        Ok(Applied::Ok { version })
    }

    async fn events_since(&self, game: &GameId, since: u64) -> StoreResult<Replay> {
        let mut inner = self.lock();
        let Some(g) = inner.live_game(game, now_ms()) else {
            return Ok(Replay::UnknownGame);
        };
        let entries = g.log.iter().filter(|(v, _)| *v > since).cloned();
        Ok(replay_from(since, g.version, entries))
    }

    async fn applied_move(
        &self,
        game: &GameId,
        player: &PlayerId,
        mid: &str,
    ) -> StoreResult<Option<u64>> {
        let mut inner = self.lock();
        Ok(inner
            .live_game(game, now_ms())
            .and_then(|g| applied(g, player, mid)))
    }

    async fn append_chat(
        &self,
        game: Option<&GameId>,
        from: &str,
        role: Option<Role>,
        text: &str,
        event: &ChatTemplate,
        ttl: Duration,
    ) -> StoreResult<Option<ChatLine>> {
        let now = now_ms();
        let mut inner = self.lock();
        if let Some(g) = game
            && inner.live_game(g, now).is_none()
        {
            return Ok(None);
        }
        let seq = if inner.chat_seq.0 == now {
            inner.chat_seq.1 + 1
        } else {
            0
        };
        inner.chat_seq = (now, seq);
        let line = ChatLine {
            id: format!("{now}-{seq}"),
            from: from.to_string(),
            role,
            text: text.to_string(),
            ts: now,
        };
        let chat = inner.chats.entry(game.cloned()).or_insert_with(|| MemChat {
            lines: VecDeque::new(),
            expires: 0,
        });
        chat.lines.push_back(line.clone());
        while chat.lines.len() > self.limits.chat_len {
            chat.lines.pop_front();
        }
        chat.expires = now + ms(ttl);
        let channel = match game {
            Some(g) => self.keys.game_channel(g),
            None => self.keys.lobby_channel(),
        };
        self.send(channel, event.fill(&line.id, line.ts).into());
        Ok(Some(line))
    }

    async fn recent_chat(&self, game: Option<&GameId>, n: usize) -> StoreResult<Vec<ChatLine>> {
        let now = now_ms();
        let inner = self.lock();
        Ok(inner
            .chats
            .get(&game.cloned())
            .filter(|c| c.expires > now)
            .map(|c| {
                let skip = c.lines.len().saturating_sub(n);
                c.lines.iter().skip(skip).cloned().collect()
            })
            .unwrap_or_default())
    }

    async fn rate(&self, key: &str, rule: Rule) -> StoreResult<Decision> {
        let now_us = now_us();
        let now = now_us / 1000;
        let mut inner = self.lock();
        inner.purge(now);
        let tat = inner
            .rates
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(tat, _)| *tat);
        let d = gcra(now_us, tat, rule);
        if let Decision::Allow { new_tat } = d {
            inner.rates.insert(
                key.to_string(),
                (new_tat, now + (new_tat - now_us) / 1000 + 1),
            );
        }
        Ok(d)
    }

    async fn presence_change(
        &self,
        game: &GameId,
        entry: &PresenceEntry<'_>,
        change: Attendance,
        event: &PresenceTemplate,
        ttl: Duration,
    ) -> StoreResult<PresenceChange> {
        let now = now_ms();
        let mut inner = self.lock();
        let (delta, why) = match change {
            Attendance::Arrive => (1, AwayReason::Disconnected),
            Attendance::Leave(why) => (-1, why),
        };
        if delta > 0 {
            inner
                .lease_games
                .entry(entry.lease.to_string())
                .or_default()
                .insert(game.clone());
        }
        let field = format!(
            "c|{}|{}|{}",
            entry.lease,
            entry.player,
            match entry.role {
                Role::X => "X",
                Role::O => "O",
                Role::Spectator => "spectator",
            }
        );
        let p = inner.presence.entry(game.clone()).or_default();
        let before = p.summary();
        let count = p.conns.entry(field.clone()).or_insert(0);
        *count += delta;
        if *count <= 0 {
            p.conns.remove(&field);
        }
        let after = p.summary();
        let left = p.settle(&before, &after, now, why);
        p.expires = now + ms(ttl);
        let changed = before != after;
        let after = p.view(now);
        let mine = p.lease_entries(entry.lease);
        if mine == 0
            && let Some(set) = inner.lease_games.get_mut(entry.lease)
        {
            set.remove(game);
        }
        if changed {
            self.send(self.keys.game_channel(game), event.fill(&after).into());
        }
        Ok(PresenceChange {
            presence: after,
            left,
            lease_entries: mine,
        })
    }

    async fn presence(&self, game: &GameId) -> StoreResult<Presence> {
        let now = now_ms();
        Ok(self
            .lock()
            .presence
            .get(game)
            .filter(|p| p.expires > now)
            .map(|p| p.view(now))
            .unwrap_or_default())
    }

    async fn inspect_seats(&self, game: &GameId) -> StoreResult<Option<SeatsView>> {
        let now = now_ms();
        let mut inner = self.lock();
        let Some(g) = inner.live_game(game, now) else {
            return Ok(None);
        };
        let (version, state) = (g.version, g.state.clone());
        let p = inner.presence.entry(game.clone()).or_default();
        let present = p.summary().players;
        for m in [Mark::X, Mark::O] {
            if !*present.get(m) && p.away.get(m).is_none() {
                *p.away.get_mut(m) = Some(now);
            }
        }
        let away_since = Seats {
            x: if present.x { None } else { p.away.x },
            o: if present.o { None } else { p.away.o },
        };
        Ok(Some(SeatsView {
            now_ms: now,
            version,
            state,
            present,
            seen: p.seen.clone(),
            away_since,
        }))
    }

    async fn renew_lease(&self, lease: &str, ttl: Duration) -> StoreResult<bool> {
        let expiry = now_ms() + ms(ttl);
        Ok(self
            .lock()
            .leases
            .insert(lease.to_string(), expiry)
            .is_some())
    }

    async fn expired_leases(&self) -> StoreResult<Vec<String>> {
        let now = now_ms();
        Ok(self
            .lock()
            .leases
            .iter()
            .filter(|(_, exp)| **exp < now)
            .map(|(l, _)| l.clone())
            .collect())
    }

    async fn sweep_lease(
        &self,
        lease: &str,
        ttl: Duration,
        event: PresenceEvent,
    ) -> StoreResult<Vec<(GameId, Seats<bool>)>> {
        let now = now_ms();
        let mut inner = self.lock();
        let games = inner.lease_games.remove(lease).unwrap_or_default();
        inner.leases.remove(lease);
        let prefix = format!("c|{lease}|");
        let mut emptied = Vec::new();
        let mut changed = Vec::new();
        for g in games {
            let Some(p) = inner.presence.get_mut(&g) else {
                continue;
            };
            let before = p.summary();
            p.conns.retain(|f, _| !f.starts_with(&prefix));
            let after = p.summary();
            let left = p.settle(&before, &after, now, AwayReason::Disconnected);
            p.expires = now + ms(ttl);
            if before != after {
                changed.push((g.clone(), p.view(now)));
            }
            if left.x || left.o {
                emptied.push((g, left));
            }
        }
        drop(inner);
        for (g, p) in changed {
            self.send(self.keys.game_channel(&g), event(&g).fill(&p).into());
        }
        Ok(emptied)
    }

    async fn hold_waiting(
        &self,
        player: &PlayerId,
        game: &GameId,
        cap: usize,
        ttl: Duration,
    ) -> StoreResult<Hold> {
        let now = now_ms();
        let cutoff = now.saturating_sub(ms(ttl));
        let mut inner = self.lock();
        let held = inner.waiting.entry(player.clone()).or_default();
        held.retain(|_, at| *at >= cutoff);
        if held.contains_key(game) || held.len() < cap {
            held.insert(game.clone(), now);
            return Ok(Hold::Held);
        }
        Ok(Hold::Full(held.keys().cloned().collect()))
    }

    async fn release_waiting(&self, player: &PlayerId, game: &GameId) -> StoreResult<()> {
        if let Some(held) = self.lock().waiting.get_mut(player) {
            held.remove(game);
        }
        Ok(())
    }

    async fn lobby_update(
        &self,
        entry: &LobbyGame,
        owner: Option<LobbyOwner<'_>>,
        event: Bytes,
    ) -> StoreResult<()> {
        let now = now_ms();
        let mut inner = self.lock();
        match entry.status {
            crate::rules::Status::Waiting => {
                let owner = owner
                    .map(|o| (o.player.clone(), o.address.to_string()))
                    .or_else(|| inner.lobby.get(&entry.game).and_then(|e| e.2.clone()));
                inner
                    .lobby
                    .insert(entry.game.clone(), (entry.clone(), now, owner));
            }
            crate::rules::Status::Playing => {
                inner
                    .lobby
                    .insert(entry.game.clone(), (entry.clone(), now, None));
            }
            _ => {
                inner.lobby.remove(&entry.game);
            }
        }
        self.send(self.keys.lobby_channel(), event);
        Ok(())
    }

    async fn lobby_list(
        &self,
        max: usize,
        share: LobbyShare,
        ttl: Duration,
    ) -> StoreResult<(Vec<LobbyGame>, Vec<LobbyGame>)> {
        let LobbyShare {
            per_owner,
            per_address,
        } = share;
        let now = now_ms();
        let cutoff = now.saturating_sub(ms(ttl));
        let max = max.max(1);
        let mut inner = self.lock();
        inner.lobby.retain(|_, (_, t, _)| *t >= cutoff);
        let mut entries: Vec<_> = inner.lobby.values().cloned().collect();
        entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.game.cmp(&a.0.game)));
        let (waiting, playing): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|(e, _, _)| e.status == crate::rules::Status::Waiting);
        let live = playing.into_iter().take(max).map(|(e, _, _)| e).collect();
        // As the Redis script does: newest first, a few per owner and per address, scanning a
        // bounded prefix.
        let limited = per_owner > 0 || per_address > 0;
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut by_address: HashMap<String, usize> = HashMap::new();
        let mut open = Vec::new();
        for (e, _, owner) in waiting
            .into_iter()
            .take(if limited { max * 8 } else { max })
        {
            if open.len() >= max {
                break;
            }
            let mut fits = true;
            if per_owner > 0 {
                let who = owner
                    .as_ref()
                    .map_or(e.game.as_str(), |(p, _)| p.as_str())
                    .to_string();
                let n = counts.entry(who).or_default();
                *n += 1;
                fits = *n <= per_owner;
            }
            if let Some((_, address)) = &owner
                && per_address > 0
                && fits
            {
                fits = by_address.get(address).copied().unwrap_or(0) < per_address;
            }
            if fits {
                if let Some((_, address)) = &owner {
                    *by_address.entry(address.clone()).or_default() += 1;
                }
                open.push(e);
            }
        }
        Ok((open, live))
    }

    async fn match_enqueue(&self, ticket: &Ticket, fresh: Duration) -> StoreResult<Option<Ticket>> {
        let now = now_ms();
        let cutoff = now.saturating_sub(ms(fresh));
        let mut inner = self.lock();
        inner.queue.retain(|_, (t, _)| *t >= cutoff);
        inner.paired.retain(|_, at| *at >= cutoff);
        if !inner.queue.contains_key(&ticket.player) {
            // The longest-waiting ticket; ties broken by player id so both stores agree.
            let first = inner
                .queue
                .iter()
                .min_by(|a, b| {
                    a.1.0
                        .cmp(&b.1.0)
                        .then_with(|| a.0.as_str().cmp(b.0.as_str()))
                })
                .map(|(p, _)| p.clone());
            if let Some(p) = first {
                inner.paired.insert(p.clone(), now);
                return Ok(inner.queue.remove(&p).map(|(_, t)| t));
            }
        }
        inner
            .queue
            .insert(ticket.player.clone(), (now, ticket.clone()));
        Ok(None)
    }

    async fn match_cancel(&self, player: &PlayerId) -> StoreResult<bool> {
        Ok(self.lock().queue.remove(player).is_some())
    }

    async fn match_refresh(
        &self,
        players: &[PlayerId],
        fresh: Duration,
    ) -> StoreResult<Vec<PlayerId>> {
        let now = now_ms();
        let cutoff = now.saturating_sub(ms(fresh));
        let mut inner = self.lock();
        inner.paired.retain(|_, at| *at >= cutoff);
        let mut missing = Vec::new();
        for p in players {
            if let Some((t, _)) = inner.queue.get_mut(p) {
                *t = now;
            } else if !inner.paired.contains_key(p) {
                missing.push(p.clone());
            }
        }
        Ok(missing)
    }

    async fn set_deadline(&self, game: &GameId, at_ms: u64) -> StoreResult<()> {
        let mut inner = self.lock();
        let at = inner.deadlines.entry(game.clone()).or_insert(at_ms);
        *at = (*at).min(at_ms);
        Ok(())
    }

    async fn due_deadlines(&self, max: usize) -> StoreResult<(u64, Vec<(GameId, u64)>)> {
        let now = now_ms();
        let inner = self.lock();
        let mut due: Vec<_> = inner
            .deadlines
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(g, at)| (g.clone(), *at))
            .collect();
        due.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        due.truncate(max.max(1));
        Ok((now, due))
    }

    async fn settle_deadline(
        &self,
        game: &GameId,
        due: u64,
        next: Option<u64>,
    ) -> StoreResult<bool> {
        let mut inner = self.lock();
        if inner.deadlines.get(game) != Some(&due) {
            return Ok(false);
        }
        match next {
            Some(n) => inner.deadlines.insert(game.clone(), n),
            None => inner.deadlines.remove(game),
        };
        Ok(true)
    }
}

/// The in-process pub/sub. A hub that falls [`BUS_CAPACITY`] messages behind sees its stream
/// end, exactly like a dropped Redis connection, and resynchronises.
pub struct MemoryBus {
    tx: broadcast::Sender<BusMessage>,
}

struct MemorySink {
    channels: Arc<Mutex<HashSet<String>>>,
}

#[async_trait]
impl Bus for MemoryBus {
    async fn connect(&self) -> StoreResult<BusConnection> {
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
        Ok(BusConnection {
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
