//! Games waiting for an opponent, per player, as `waiting.lua` holds them.

use super::MemoryStore;
use super::{ms, now_ms};
use crate::store::{Hold, StoreResult};
use std::time::Duration;
use tictactoe_protocol::ids::{GameId, PlayerId};

pub(super) fn hold_waiting(
    store: &MemoryStore,
    player: &PlayerId,
    game: &GameId,
    cap: usize,
    ttl: Duration,
) -> StoreResult<Hold> {
    let now = now_ms();
    let cutoff = now.saturating_sub(ms(ttl));
    let mut inner = store.lock();
    let held = inner.waiting.entry(player.clone()).or_default();
    held.retain(|_, at| *at >= cutoff);
    if held.contains_key(game) || held.len() < cap {
        held.insert(game.clone(), now);
        return Ok(Hold::Held);
    }
    Ok(Hold::Full(held.keys().cloned().collect()))
}

pub(super) fn release_waiting(
    store: &MemoryStore,
    player: &PlayerId,
    game: &GameId,
) -> StoreResult<()> {
    if let Some(held) = store.lock().waiting.get_mut(player) {
        held.remove(game);
    }
    Ok(())
}
