//! Sessions (the login a token proves, with its display name) and the games each remembers.

use super::decode::{corrupt, items, player, text, texts, ttl_ms};
use super::durable::wait_cmd;
use super::scripts::reply;
use super::{RedisStore, SCRIPTS};
use crate::session::TokenHash;
use crate::store::{OpenSession, SessionRecord, StoreResult};
use ::redis::Value;
use std::time::Duration;
use tictactoe_protocol::ids::GameId;

pub(super) async fn create(
    s: &RedisStore,
    token: &TokenHash,
    record: &SessionRecord,
    ttl: Duration,
) -> StoreResult<()> {
    let key = s.keys.session(token);
    if let Some(durable) = &s.durable {
        // A session lost in a failover would cost its player their seats.
        let mut pipe = ::redis::pipe();
        pipe.cmd("MULTI")
            .cmd("HSET")
            .arg(&key)
            .arg("player")
            .arg(record.player.as_str())
            .arg("name")
            .arg(&record.name)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms(ttl))
            .cmd("EXEC")
            .add_command(wait_cmd(durable));
        let replies = s.durably("create_session", durable, pipe, &[]).await?;
        reply(replies.get(3).cloned())?;
        return s.confirmed("create_session", durable, &replies, 4);
    }
    let mut pipe = ::redis::pipe();
    pipe.atomic()
        .cmd("HSET")
        .arg(&key)
        .arg("player")
        .arg(record.player.as_str())
        .arg("name")
        .arg(&record.name)
        .ignore()
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(ttl_ms(ttl))
        .ignore();
    let _: () = s.query_pipeline("create_session", &pipe).await?;
    Ok(())
}

pub(super) async fn open(
    s: &RedisStore,
    token: &TokenHash,
    rename: Option<&str>,
    ttl: Duration,
) -> StoreResult<Option<OpenSession>> {
    let mut inv = SCRIPTS.open_session.prepare_invoke();
    inv.key(s.keys.session(token))
        .key(s.keys.session_games(token))
        .arg(ttl_ms(ttl))
        .arg(rename.unwrap_or(""))
        .arg(s.limits.session_games);
    let v: Value = s.invoke("open_session", &inv).await?;
    if v == Value::Nil {
        return Ok(None);
    }
    let mut parts = items(v).ok_or_else(|| corrupt("session", "not an array"))?;
    if parts.len() != 3 {
        return Err(corrupt("session", parts));
    }
    let games = texts(parts.pop().unwrap_or_default())
        .ok_or_else(|| corrupt("session games", "not strings"))?
        .into_iter()
        .filter_map(|g| GameId::try_from(g).ok())
        .collect();
    let name = parts.pop().as_ref().and_then(text).unwrap_or_default();
    let player = player(parts.pop().as_ref().and_then(text))?
        .ok_or_else(|| corrupt("session", "no player"))?;
    Ok(Some(OpenSession {
        record: SessionRecord { player, name },
        games,
    }))
}

pub(super) async fn remember_game(
    s: &RedisStore,
    token: &TokenHash,
    game: &GameId,
    ttl: Duration,
) -> StoreResult<()> {
    let mut inv = SCRIPTS.remember_game.prepare_invoke();
    inv.key(s.keys.session_games(token))
        .arg(game.as_str())
        .arg(ttl_ms(ttl))
        .arg(s.limits.session_games);
    let _: i64 = s.invoke("remember_game", &inv).await?;
    Ok(())
}

pub(super) async fn forget_game(
    s: &RedisStore,
    token: &TokenHash,
    game: &GameId,
) -> StoreResult<()> {
    let _: i64 = s
        .query(
            "forget_game",
            ::redis::cmd("ZREM")
                .arg(s.keys.session_games(token))
                .arg(game.as_str()),
        )
        .await?;
    Ok(())
}
