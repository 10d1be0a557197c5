//! Chat: one bounded stream per game and one for the lobby. A line's id and time come from
//! Redis (XADD), so the script completes the instance's chat template and publishes it in the
//! same call.

use super::decode::{chat_line, chat_ts, corrupt, items, role_name, text, ttl_ms};
use super::{RedisStore, SCRIPTS};
use crate::store::ChatRecord;
use crate::store::StoreResult;
use ::redis::Value;
use std::time::Duration;
use tictactoe_protocol::Role;
use tictactoe_protocol::ids::GameId;
use tictactoe_protocol::templates::ChatTemplate;

pub(super) async fn append(
    s: &RedisStore,
    game: Option<&GameId>,
    from: &str,
    role: Option<Role>,
    line: &str,
    event: &ChatTemplate,
    ttl: Duration,
) -> StoreResult<Option<ChatRecord>> {
    let k = &s.keys;
    let (stream, exists_key, channel) = match game {
        Some(g) => (k.game_chat(g), k.game(g), k.game_channel(g)),
        None => (k.lobby_chat(), k.lobby_chat(), k.lobby_channel()),
    };
    let [head, middle, tail] = event.pieces();
    let mut handle = s.handle().await?;
    let mut inv = SCRIPTS.chat.prepare_invoke();
    inv.key(stream)
        .key(exists_key)
        .arg(if game.is_some() { "1" } else { "0" })
        .arg(from)
        .arg(role.map(role_name).unwrap_or(""))
        .arg(line)
        .arg(ttl_ms(ttl))
        .arg(s.limits.chat_len)
        .arg(channel)
        .arg(head)
        .arg(middle)
        .arg(tail)
        .arg(s.publish_cmd());
    let reply: Value = s
        .call("chat", handle.generation, inv.invoke_async(&mut handle))
        .await?;
    if reply == Value::Nil {
        return Ok(None);
    }
    let id = text(&reply).ok_or_else(|| corrupt("chat", &reply))?;
    Ok(Some(ChatRecord {
        ts: chat_ts(&id)?,
        id,
        from: from.to_string(),
        role,
        text: line.to_string(),
    }))
}

pub(super) async fn recent(
    s: &RedisStore,
    game: Option<&GameId>,
    n: usize,
) -> StoreResult<Vec<ChatRecord>> {
    let key = match game {
        Some(g) => s.keys.game_chat(g),
        None => s.keys.lobby_chat(),
    };
    let mut handle = s.handle().await?;
    let reply: Value = s
        .call(
            "recent_chat",
            handle.generation,
            ::redis::cmd("XREVRANGE")
                .arg(key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(n)
                .query_async(&mut handle),
        )
        .await?;
    let mut lines = items(reply)
        .ok_or_else(|| corrupt("recent_chat", "not an array"))?
        .into_iter()
        .map(chat_line)
        .collect::<StoreResult<Vec<_>>>()?;
    lines.reverse();
    Ok(lines)
}
