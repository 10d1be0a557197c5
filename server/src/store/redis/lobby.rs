//! The lobby (open and live games, scored by last update, a few open ones per player), the
//! players' waiting games, and the quick-match queue.

use super::decode::{corrupt, items, text, texts, ttl_ms};
use super::{RedisStore, SCRIPTS};
use crate::store::{Hold, Keys, LobbyOwner, LobbyShare, StoreError, StoreResult, Ticket};
use ::redis::Value;
use bytes::Bytes;
use std::time::Duration;
use tictactoe_protocol::LobbyGame;
use tictactoe_protocol::ids::{GameId, PlayerId};

/// `lobby.lua` with its keys; the caller adds the action and its arguments.
fn lobby_script(k: &Keys) -> ::redis::ScriptInvocation<'static> {
    let mut inv = SCRIPTS.lobby.prepare_invoke();
    inv.key(k.lobby_open())
        .key(k.lobby_live())
        .key(k.lobby_info())
        .key(k.lobby_owners());
    inv
}

pub(super) async fn update(
    s: &RedisStore,
    entry: &LobbyGame,
    owner: Option<LobbyOwner<'_>>,
    event: Bytes,
) -> StoreResult<()> {
    let k = &s.keys;
    let status = serde_json::to_value(entry.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let json = serde_json::to_string(entry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut conn = s.conn().await?;
    let mut inv = lobby_script(k);
    inv.arg("update")
        .arg(entry.game.as_str())
        .arg(status)
        .arg(json)
        .arg(k.lobby_channel())
        .arg(event.as_ref())
        .arg(s.publish_cmd())
        .arg(
            owner
                .map(|o| format!("{}|{}", o.player.as_str(), o.address))
                .unwrap_or_default(),
        );
    let _: i64 = s
        .call("lobby", conn.generation, inv.invoke_async(&mut conn))
        .await?;
    Ok(())
}

pub(super) async fn list(
    s: &RedisStore,
    max: usize,
    share: LobbyShare,
    ttl: Duration,
) -> StoreResult<(Vec<LobbyGame>, Vec<LobbyGame>)> {
    let k = &s.keys;
    let mut conn = s.conn().await?;
    let mut inv = lobby_script(k);
    inv.arg("list")
        .arg(max.max(1))
        .arg(ttl_ms(ttl))
        .arg(share.per_owner)
        .arg(share.per_address);
    let reply: Value = s
        .call("lobby", conn.generation, inv.invoke_async(&mut conn))
        .await?;
    let mut lists = items(reply).ok_or_else(|| corrupt("lobby", "not an array"))?;
    let parse = |v: Option<Value>| -> Vec<LobbyGame> {
        v.and_then(texts)
            .unwrap_or_default()
            .iter()
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect()
    };
    let live = parse(lists.pop());
    let open = parse(lists.pop());
    Ok((open, live))
}

pub(super) async fn match_enqueue(
    s: &RedisStore,
    ticket: &Ticket,
    fresh: Duration,
) -> StoreResult<Option<Ticket>> {
    let json = serde_json::to_string(ticket).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut conn = s.conn().await?;
    let mut inv = SCRIPTS.matching.prepare_invoke();
    inv.key(s.keys.match_queue())
        .key(s.keys.match_tickets())
        .key(s.keys.match_paired())
        .arg("enqueue")
        .arg(ticket.player.as_str())
        .arg(json)
        .arg(ttl_ms(fresh));
    let reply: Vec<String> = s
        .call("match", conn.generation, inv.invoke_async(&mut conn))
        .await?;
    match reply.as_slice() {
        [tag] if tag == "queued" => Ok(None),
        [tag, other] if tag == "paired" => serde_json::from_str(other)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("ticket: {e}"))),
        other => Err(corrupt("match", other)),
    }
}

pub(super) async fn match_cancel(s: &RedisStore, player: &PlayerId) -> StoreResult<bool> {
    let mut conn = s.conn().await?;
    let mut inv = SCRIPTS.matching.prepare_invoke();
    inv.key(s.keys.match_queue())
        .key(s.keys.match_tickets())
        .key(s.keys.match_paired())
        .arg("cancel")
        .arg(player.as_str());
    let removed: i64 = s
        .call("match", conn.generation, inv.invoke_async(&mut conn))
        .await?;
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
    let mut conn = s.conn().await?;
    let mut inv = SCRIPTS.matching.prepare_invoke();
    inv.key(s.keys.match_queue())
        .key(s.keys.match_tickets())
        .key(s.keys.match_paired())
        .arg("refresh")
        .arg(ttl_ms(fresh));
    for p in players {
        inv.arg(p.as_str());
    }
    let missing: Vec<String> = s
        .call("match", conn.generation, inv.invoke_async(&mut conn))
        .await?;
    Ok(missing
        .into_iter()
        .filter_map(|p| PlayerId::try_from(p).ok())
        .collect())
}

pub(super) async fn hold_waiting(
    s: &RedisStore,
    player: &PlayerId,
    game: &GameId,
    cap: usize,
    ttl: Duration,
) -> StoreResult<Hold> {
    let mut conn = s.conn().await?;
    let mut inv = SCRIPTS.waiting.prepare_invoke();
    inv.key(s.keys.player_waiting(player))
        .arg("hold")
        .arg(game.as_str())
        .arg(cap)
        .arg(ttl_ms(ttl));
    let reply: Vec<Value> = s
        .call("waiting", conn.generation, inv.invoke_async(&mut conn))
        .await?;
    match reply.split_first() {
        Some((Value::Int(1), _)) => Ok(Hold::Held),
        Some((Value::Int(0), held)) => Ok(Hold::Full(
            held.iter()
                .filter_map(text)
                .filter_map(|g| GameId::try_from(g).ok())
                .collect(),
        )),
        _ => Err(corrupt("waiting", reply)),
    }
}

pub(super) async fn release_waiting(
    s: &RedisStore,
    player: &PlayerId,
    game: &GameId,
) -> StoreResult<()> {
    let mut conn = s.conn().await?;
    let mut inv = SCRIPTS.waiting.prepare_invoke();
    inv.key(s.keys.player_waiting(player))
        .arg("release")
        .arg(game.as_str());
    let _: i64 = s
        .call("waiting", conn.generation, inv.invoke_async(&mut conn))
        .await?;
    Ok(())
}
