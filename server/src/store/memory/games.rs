//! Games in memory: state, seats, the event log, move ids and move budgets, and the
//! compare-and-set transition, as `create_game.lua` and `transition.lua` do them.

use super::MemoryStore;
use super::{ms, now_ms, now_us};
use crate::ratelimit::{Decision, gcra};
use crate::store::missed_since;
use crate::store::{
    Applied, Creation, Missed, SeatCheck, StoreError, StoreResult, StoredGame, Transition,
};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_rules::{GameState, Seats};

/// The version `player`'s move `mid` produced, if it is among the recent ones.
pub(super) fn applied(g: &MemGame, player: &PlayerId, mid: &str) -> Option<u64> {
    g.mids
        .get(player)?
        .iter()
        .find(|(m, _)| m == mid)
        .map(|(_, v)| *v)
}

pub(super) struct MemGame {
    pub(super) version: u64,
    pub(super) state: GameState,
    pub(super) seats: Seats<Option<PlayerId>>,
    pub(super) log: VecDeque<(u64, Bytes)>,
    /// Per player, as transition.lua keeps them in the game hash: the recent move ids with
    /// the version each produced (oldest first), and the move budget (GCRA arrival time, us).
    pub(super) mids: HashMap<PlayerId, VecDeque<(String, u64)>>,
    pub(super) budgets: HashMap<PlayerId, u64>,
    /// The client create id X made the game with, as create_game.lua keeps it.
    pub(super) cid: Option<String>,
    pub(super) expires: u64,
}

pub(super) fn create_game(
    store: &MemoryStore,
    game: &GameId,
    seats: &Seats<Option<PlayerId>>,
    state: &GameState,
    event: Bytes,
    ttl: Duration,
    cid: Option<&str>,
) -> StoreResult<Creation> {
    if seats.x.is_none() {
        return Err(StoreError::Corrupt("a game needs X".into()));
    }
    let now = now_ms();
    let mut inner = store.lock();
    inner.purge(now);
    if let Some(g) = inner.live_game(game, now) {
        let retry = cid.is_some() && g.seats.x == seats.x && g.cid.as_deref() == cid;
        return Ok(if retry {
            Creation::Duplicate
        } else {
            Creation::Taken
        });
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
            cid: cid.map(str::to_string),
            expires: now + ms(ttl),
        },
    );
    store.send(store.keys.game_channel(game), event);
    Ok(Creation::Created)
}

pub(super) fn load_game(store: &MemoryStore, game: &GameId) -> StoreResult<Option<StoredGame>> {
    let mut inner = store.lock();
    Ok(inner.live_game(game, now_ms()).map(|g| StoredGame {
        version: g.version,
        state: g.state.clone(),
        seats: g.seats.clone(),
    }))
}

pub(super) fn transition(store: &MemoryStore, t: &Transition<'_>) -> StoreResult<Applied> {
    let now = now_ms();
    let mut inner = store.lock();
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
    while g.log.len() > store.limits.log_len {
        g.log.pop_front();
    }
    if let Some(mid) = t.mid {
        let mids = g.mids.entry(t.actor.clone()).or_default();
        mids.push_back((mid.to_string(), version));
        while mids.len() > store.limits.mids_kept {
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
    store.send(store.keys.game_channel(t.game), t.event.clone());
    Ok(Applied::Ok { version })
}

pub(super) fn events_since(store: &MemoryStore, game: &GameId, since: u64) -> StoreResult<Missed> {
    let mut inner = store.lock();
    let Some(g) = inner.live_game(game, now_ms()) else {
        return Ok(Missed::UnknownGame);
    };
    let entries = g.log.iter().filter(|(v, _)| *v > since).cloned();
    Ok(missed_since(since, g.version, entries))
}

pub(super) fn applied_move(
    store: &MemoryStore,
    game: &GameId,
    player: &PlayerId,
    mid: &str,
) -> StoreResult<Option<u64>> {
    let mut inner = store.lock();
    Ok(inner
        .live_game(game, now_ms())
        .and_then(|g| applied(g, player, mid)))
}
