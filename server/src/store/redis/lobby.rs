//! The lobby: open and live games, scored by last update, a few open ones per player and per
//! address.

use super::decode::{corrupt, items, texts, ttl_ms};
use super::{RedisStore, SCRIPTS};
use crate::store::{Keys, LobbyOwner, LobbyShare, StoreError, StoreResult};
use crate::store::{LobbyChange, LobbyRecord};
use ::redis::Value;
use bytes::Bytes;
use std::time::Duration;

/// The lobby's keys, in the order `lobby_record.lua` takes them: open, live, info, owners.
fn lobby_keys(k: &Keys) -> [String; 4] {
    [
        k.lobby_open(),
        k.lobby_live(),
        k.lobby_info(),
        k.lobby_owners(),
    ]
}

/// `lobby.lua` with its keys; the caller adds the action and its arguments.
fn lobby_script(k: &Keys) -> ::redis::ScriptInvocation<'static> {
    let mut inv = SCRIPTS.lobby.prepare_invoke();
    for key in lobby_keys(k) {
        inv.key(key);
    }
    inv
}

/// A lobby entry's status as the script takes it, and its JSON.
fn status_and_json(entry: &LobbyRecord) -> StoreResult<(String, String)> {
    let status = serde_json::to_value(entry.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let json = serde_json::to_string(entry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((status, json))
}

/// The keys and arguments `transition.lua` takes to record a lobby entry in the same step.
pub(super) fn record_args(
    k: &Keys,
    change: &LobbyChange,
) -> StoreResult<([String; 4], Vec<Vec<u8>>)> {
    let (status, json) = status_and_json(&change.entry)?;
    let keys = lobby_keys(k);
    let args = vec![
        status.into_bytes(),
        change.entry.game.as_str().as_bytes().to_vec(),
        json.into_bytes(),
        k.lobby_channel().into_bytes(),
        change.event.to_vec(),
    ];
    Ok((keys, args))
}

pub(super) async fn update(
    s: &RedisStore,
    entry: &LobbyRecord,
    owner: Option<LobbyOwner<'_>>,
    event: Bytes,
) -> StoreResult<()> {
    let k = &s.keys;
    let (status, json) = status_and_json(entry)?;
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
    let _: i64 = s.invoke("lobby", &inv).await?;
    Ok(())
}

pub(super) async fn list(
    s: &RedisStore,
    max: usize,
    share: LobbyShare,
    ttl: Duration,
) -> StoreResult<(Vec<LobbyRecord>, Vec<LobbyRecord>)> {
    let k = &s.keys;
    let mut inv = lobby_script(k);
    inv.arg("list")
        .arg(max.max(1))
        .arg(ttl_ms(ttl))
        .arg(share.per_owner)
        .arg(share.per_address);
    let reply: Value = s.invoke("lobby", &inv).await?;
    let mut lists = items(reply).ok_or_else(|| corrupt("lobby", "not an array"))?;
    let parse = |v: Option<Value>| -> Vec<LobbyRecord> {
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
