//! The games each player has waiting for an opponent, capped per player.

use super::decode::{corrupt, text, ttl_ms};
use super::{RedisStore, SCRIPTS};
use crate::store::{Hold, StoreResult};
use ::redis::Value;
use std::time::Duration;
use tictactoe_protocol::ids::{GameId, PlayerId};

pub(super) async fn hold_waiting(
    s: &RedisStore,
    player: &PlayerId,
    game: &GameId,
    cap: usize,
    ttl: Duration,
) -> StoreResult<Hold> {
    let mut inv = SCRIPTS.waiting.prepare_invoke();
    inv.key(s.keys.player_waiting(player))
        .arg("hold")
        .arg(game.as_str())
        .arg(cap)
        .arg(ttl_ms(ttl));
    let reply: Vec<Value> = s.invoke("waiting", &inv).await?;
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
    let mut inv = SCRIPTS.waiting.prepare_invoke();
    inv.key(s.keys.player_waiting(player))
        .arg("release")
        .arg(game.as_str());
    let _: i64 = s.invoke("waiting", &inv).await?;
    Ok(())
}
