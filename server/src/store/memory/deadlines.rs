//! Game deadlines in memory (a game's own date, and apart from it its match-confirmation
//! date), as `deadline.lua` keeps them.

use super::MemoryStore;
use super::now_ms;
use crate::store::StoreResult;
use std::collections::HashMap;
use tictactoe_protocol::ids::GameId;

pub(super) fn set_deadline(store: &MemoryStore, game: &GameId, at_ms: u64) -> StoreResult<()> {
    keep_earlier(&mut store.lock().deadlines, game, at_ms);
    Ok(())
}

pub(super) fn set_match_clock(store: &MemoryStore, game: &GameId, at_ms: u64) -> StoreResult<()> {
    keep_earlier(&mut store.lock().match_clocks, game, at_ms);
    Ok(())
}

pub(super) fn clear_match_clock(store: &MemoryStore, game: &GameId) -> StoreResult<()> {
    store.lock().match_clocks.remove(game);
    Ok(())
}

fn keep_earlier(dates: &mut HashMap<GameId, u64>, game: &GameId, at_ms: u64) {
    let at = dates.entry(game.clone()).or_insert(at_ms);
    *at = (*at).min(at_ms);
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
        .chain(inner.match_clocks.iter())
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
    let inner = &mut *inner;
    for dates in [&mut inner.deadlines, &mut inner.match_clocks] {
        if dates.get(game) == Some(&due) {
            match next {
                Some(n) => dates.insert(game.clone(), n),
                None => dates.remove(game),
            };
            return Ok(true);
        }
    }
    Ok(false)
}
