//! Game deadlines in memory (forfeit and match-confirmation clocks), as `deadline.lua` keeps
//! them.

use super::MemoryStore;
use super::now_ms;
use crate::store::StoreResult;
use tictactoe_protocol::ids::GameId;

pub(super) fn set_deadline(store: &MemoryStore, game: &GameId, at_ms: u64) -> StoreResult<()> {
    let mut inner = store.lock();
    let at = inner.deadlines.entry(game.clone()).or_insert(at_ms);
    *at = (*at).min(at_ms);
    Ok(())
}

pub(super) fn due_deadlines(
    store: &MemoryStore,
    max: usize,
) -> StoreResult<(u64, Vec<(GameId, u64)>)> {
    let now = now_ms();
    let inner = store.lock();
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

pub(super) fn settle_deadline(
    store: &MemoryStore,
    game: &GameId,
    due: u64,
    next: Option<u64>,
) -> StoreResult<bool> {
    let mut inner = store.lock();
    if inner.deadlines.get(game) != Some(&due) {
        return Ok(false);
    }
    match next {
        Some(n) => inner.deadlines.insert(game.clone(), n),
        None => inner.deadlines.remove(game),
    };
    Ok(true)
}
