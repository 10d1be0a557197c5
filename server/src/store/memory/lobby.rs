//! The lobby in memory: open and live games, and who opened each open game from where, as
//! `lobby.lua` lists them.

use super::MemoryStore;
use super::{ms, now_ms};
use crate::store::LobbyRecord;
use crate::store::{LobbyOwner, LobbyShare, StoreResult};
use bytes::Bytes;
use std::collections::HashMap;
use std::time::Duration;

use tictactoe_protocol::ids::PlayerId;

/// Who opened a waiting game, and the address it is counted under.
pub(super) type Opener = (PlayerId, String);

pub(super) fn lobby_update(
    store: &MemoryStore,
    entry: &LobbyRecord,
    owner: Option<LobbyOwner<'_>>,
    event: Bytes,
) -> StoreResult<()> {
    let now = now_ms();
    let mut inner = store.lock();
    match entry.status {
        tictactoe_rules::Status::Waiting => {
            let owner = owner
                .map(|o| (o.player.clone(), o.address.to_string()))
                .or_else(|| inner.lobby.get(&entry.game).and_then(|e| e.2.clone()));
            inner
                .lobby
                .insert(entry.game.clone(), (entry.clone(), now, owner));
        }
        tictactoe_rules::Status::Playing => {
            inner
                .lobby
                .insert(entry.game.clone(), (entry.clone(), now, None));
        }
        _ => {
            inner.lobby.remove(&entry.game);
        }
    }
    store.send(store.keys.lobby_channel(), event);
    Ok(())
}

pub(super) fn lobby_list(
    store: &MemoryStore,
    max: usize,
    share: LobbyShare,
    ttl: Duration,
) -> StoreResult<(Vec<LobbyRecord>, Vec<LobbyRecord>)> {
    let LobbyShare {
        per_owner,
        per_address,
    } = share;
    let now = now_ms();
    let cutoff = now.saturating_sub(ms(ttl));
    let max = max.max(1);
    let mut inner = store.lock();
    inner.lobby.retain(|_, (_, t, _)| *t >= cutoff);
    let mut entries: Vec<_> = inner.lobby.values().cloned().collect();
    entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.game.cmp(&a.0.game)));
    let (waiting, playing): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .partition(|(e, _, _)| e.status == tictactoe_rules::Status::Waiting);
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
