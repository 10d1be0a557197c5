//! Sessions in memory: a session's record and the games it was in, as `open_session.lua` and
//! `remember_game.lua` keep them.

use super::MemoryStore;
use super::{ms, now_ms};
use crate::session::TokenHash;
use crate::store::{OpenSession, SessionRecord, StoreResult};
use std::collections::HashMap;
use std::time::Duration;
use tictactoe_protocol::ids::GameId;

pub(super) struct MemSession {
    pub(super) record: SessionRecord,
    /// Game -> when last joined (ms).
    pub(super) games: HashMap<GameId, u64>,
    pub(super) expires: u64,
}

pub(super) fn create_session(
    store: &MemoryStore,
    token: &TokenHash,
    record: &SessionRecord,
    ttl: Duration,
) -> StoreResult<()> {
    let now = now_ms();
    let mut inner = store.lock();
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

pub(super) fn open_session(
    store: &MemoryStore,
    token: &TokenHash,
    rename: Option<&str>,
    ttl: Duration,
) -> StoreResult<Option<OpenSession>> {
    let now = now_ms();
    let mut inner = store.lock();
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
            .take(store.limits.session_games)
            .map(|(_, g)| g)
            .collect(),
    }))
}

pub(super) fn remember_game(
    store: &MemoryStore,
    token: &TokenHash,
    game: &GameId,
    _ttl: Duration,
) -> StoreResult<()> {
    let now = now_ms();
    let mut inner = store.lock();
    if let Some(s) = inner.sessions.get_mut(token) {
        s.games.insert(game.clone(), now);
        while s.games.len() > store.limits.session_games {
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

pub(super) fn forget_game(
    store: &MemoryStore,
    token: &TokenHash,
    game: &GameId,
) -> StoreResult<()> {
    if let Some(s) = store.lock().sessions.get_mut(token) {
        s.games.remove(game);
    }
    Ok(())
}
