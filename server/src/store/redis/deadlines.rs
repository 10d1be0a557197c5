//! Due dates of games (forfeit clocks, the computer's steps, round recordings, and apart from
//! them the match-confirmation clock), in one sorted set, on Redis's clock.

use super::decode::{corrupt, num};
use super::{RedisStore, SCRIPTS};
use crate::store::StoreResult;
use tictactoe_protocol::ids::GameId;

pub(super) async fn set(s: &RedisStore, game: &GameId, at_ms: u64) -> StoreResult<()> {
    date(s, "set", game, Some(at_ms)).await
}

pub(super) async fn set_match(s: &RedisStore, game: &GameId, at_ms: u64) -> StoreResult<()> {
    date(s, "match", game, Some(at_ms)).await
}

pub(super) async fn clear_match(s: &RedisStore, game: &GameId) -> StoreResult<()> {
    date(s, "matched", game, None).await
}

/// Sets (`set`, `match`) or removes (`matched`) one of a game's dates.
async fn date(s: &RedisStore, mode: &str, game: &GameId, at_ms: Option<u64>) -> StoreResult<()> {
    let mut inv = SCRIPTS.deadline.prepare_invoke();
    inv.key(s.keys.deadlines()).arg(mode).arg(game.as_str());
    if let Some(at) = at_ms {
        inv.arg(at);
    }
    let _: i64 = s.invoke("deadline", &inv).await?;
    Ok(())
}

pub(super) async fn due(s: &RedisStore, max: usize) -> StoreResult<(u64, Vec<(GameId, u64)>)> {
    let mut inv = SCRIPTS.deadline.prepare_invoke();
    inv.key(s.keys.deadlines()).arg("due").arg(max.max(1));
    let reply: Vec<String> = s.invoke("deadline", &inv).await?;
    let Some((now, rest)) = reply.split_first() else {
        return Err(corrupt("deadline", "empty"));
    };
    let mut due = Vec::new();
    for pair in rest.chunks(2) {
        if let [g, at] = pair
            && let Ok(g) = GameId::try_from(g.clone())
        {
            // Scores come back as floats ("1.7e12" never, but "1700000000000" or
            // "1700000000000.5" could): read them as such.
            let at: f64 = num(at, "deadline")?;
            due.push((g, at as u64));
        }
    }
    Ok((num(now, "now")?, due))
}

pub(super) async fn settle(
    s: &RedisStore,
    game: &GameId,
    due: u64,
    next: Option<u64>,
) -> StoreResult<bool> {
    let mut inv = SCRIPTS.deadline.prepare_invoke();
    inv.key(s.keys.deadlines())
        .arg("settle")
        .arg(game.as_str())
        .arg(due)
        .arg(next.map(|n| n.to_string()).unwrap_or_default());
    let changed: i64 = s.invoke("deadline", &inv).await?;
    Ok(changed == 1)
}
