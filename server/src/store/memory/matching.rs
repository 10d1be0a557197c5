//! The quick-match queue in memory: tickets, pairing and refreshes, as `match.lua` does them.

use super::MemoryStore;
use super::{ms, now_ms};
use crate::store::{StoreResult, Ticket};
use std::time::Duration;
use tictactoe_protocol::ids::PlayerId;

pub(super) fn match_enqueue(
    store: &MemoryStore,
    ticket: &Ticket,
    fresh: Duration,
) -> StoreResult<Option<Ticket>> {
    let now = now_ms();
    let cutoff = now.saturating_sub(ms(fresh));
    let mut inner = store.lock();
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

pub(super) fn match_cancel(store: &MemoryStore, player: &PlayerId) -> StoreResult<bool> {
    Ok(store.lock().queue.remove(player).is_some())
}

pub(super) fn match_queued(
    store: &MemoryStore,
    player: &PlayerId,
    fresh: Duration,
) -> StoreResult<bool> {
    let cutoff = now_ms().saturating_sub(ms(fresh));
    Ok(store
        .lock()
        .queue
        .get(player)
        .is_some_and(|(at, _)| *at >= cutoff))
}

pub(super) fn match_rename(
    store: &MemoryStore,
    player: &PlayerId,
    name: &str,
) -> StoreResult<bool> {
    let mut inner = store.lock();
    let Some((_, ticket)) = inner.queue.get_mut(player) else {
        return Ok(false);
    };
    ticket.name = name.to_string();
    Ok(true)
}

pub(super) fn match_refresh(
    store: &MemoryStore,
    players: &[PlayerId],
    fresh: Duration,
) -> StoreResult<Vec<PlayerId>> {
    let now = now_ms();
    let cutoff = now.saturating_sub(ms(fresh));
    let mut inner = store.lock();
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
