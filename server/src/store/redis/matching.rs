//! The quick-match queue: tickets, pairing two waiting players, and keeping tickets fresh.

use super::decode::{corrupt, ttl_ms};
use super::{RedisStore, SCRIPTS};
use crate::store::{StoreError, StoreResult, Ticket};
use ::redis::ScriptInvocation;
use std::time::Duration;
use tictactoe_protocol::ids::PlayerId;

/// The matching script with its four keys (one slot, `{match}`) and `mode`, arguments to come.
fn invocation(s: &RedisStore, mode: &str) -> ScriptInvocation<'static> {
    let mut inv = SCRIPTS.matching.prepare_invoke();
    inv.key(s.keys.match_queue())
        .key(s.keys.match_tickets())
        .key(s.keys.match_paired())
        .key(s.keys.match_names())
        .arg(mode);
    inv
}

pub(super) async fn match_enqueue(
    s: &RedisStore,
    ticket: &Ticket,
    fresh: Duration,
) -> StoreResult<Option<Ticket>> {
    let json = serde_json::to_string(ticket).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut inv = invocation(s, "enqueue");
    inv.arg(ticket.player.as_str()).arg(json).arg(ttl_ms(fresh));
    let reply: Vec<String> = s.invoke("match", &inv).await?;
    match reply.as_slice() {
        [tag] if tag == "queued" => Ok(None),
        [tag, other, name] if tag == "paired" => {
            let mut other: Ticket = serde_json::from_str(other)
                .map_err(|e| StoreError::Corrupt(format!("ticket: {e}")))?;
            if !name.is_empty() {
                other.name = name.clone();
            }
            Ok(Some(other))
        }
        other => Err(corrupt("match", other)),
    }
}

pub(super) async fn match_queued(
    s: &RedisStore,
    player: &PlayerId,
    fresh: Duration,
) -> StoreResult<bool> {
    let mut inv = invocation(s, "queued");
    inv.arg(player.as_str()).arg(ttl_ms(fresh));
    let queued: i64 = s.invoke("match", &inv).await?;
    Ok(queued == 1)
}

pub(super) async fn match_rename(
    s: &RedisStore,
    player: &PlayerId,
    name: &str,
) -> StoreResult<bool> {
    let mut inv = invocation(s, "rename");
    inv.arg(player.as_str()).arg(name);
    let queued: i64 = s.invoke("match", &inv).await?;
    Ok(queued == 1)
}

pub(super) async fn match_cancel(s: &RedisStore, player: &PlayerId) -> StoreResult<bool> {
    let mut inv = invocation(s, "cancel");
    inv.arg(player.as_str());
    let removed: i64 = s.invoke("match", &inv).await?;
    Ok(removed == 1)
}

pub(super) async fn match_refresh(
    s: &RedisStore,
    players: &[PlayerId],
    fresh: Duration,
) -> StoreResult<Vec<PlayerId>> {
    if players.is_empty() {
        return Ok(Vec::new());
    }
    let mut inv = invocation(s, "refresh");
    inv.arg(ttl_ms(fresh));
    for p in players {
        inv.arg(p.as_str());
    }
    let missing: Vec<String> = s.invoke("match", &inv).await?;
    Ok(missing
        .into_iter()
        .filter_map(|p| PlayerId::try_from(p).ok())
        .collect())
}
