//! Chat: one bounded stream per game and one for the lobby. A line's id and time come from
//! Redis (XADD), so the script completes the instance's chat template and publishes it in the
//! same call.

use super::decode::{chat_line, chat_ts, corrupt, items, mid_hex, role_name, ttl_ms};
use super::{RedisStore, SCRIPTS};
use crate::store::{Appended, Author, ChatRecord, StoreResult};
use ::redis::Value;
use std::time::Duration;
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::templates::ChatTemplate;

pub(super) async fn append(
    s: &RedisStore,
    game: Option<&GameId>,
    author: &Author<'_>,
    line: &str,
    lid: Option<&str>,
    event: &ChatTemplate,
    ttl: Duration,
) -> StoreResult<Appended> {
    let k = &s.keys;
    let (stream, exists_key, channel) = match game {
        Some(g) => (k.game_chat(g), k.game(g), k.game_channel(g)),
        None => (k.lobby_chat(), k.lobby_chat(), k.lobby_channel()),
    };
    let [head, middle, tail] = event.pieces();
    let mut inv = SCRIPTS.chat.prepare_invoke();
    inv.key(stream).key(exists_key);
    if let Some(lid) = lid {
        inv.key(k.chat_line_id(game, author.player, &mid_hex(lid)));
    }
    inv.arg(if game.is_some() { "1" } else { "0" })
        .arg(author.name)
        .arg(author.role.map(role_name).unwrap_or(""))
        .arg(line)
        .arg(ttl_ms(ttl))
        .arg(s.limits.chat_len)
        .arg(channel)
        .arg(head)
        .arg(middle)
        .arg(tail)
        .arg(s.publish_cmd())
        .arg(ttl_ms(s.limits.line_ids_ttl));
    let reply: Vec<String> = s.invoke("chat", &inv).await?;
    match reply.as_slice() {
        [tag, id] if tag == "ok" => Ok(Appended::Line(ChatRecord {
            ts: chat_ts(id)?,
            id: id.clone(),
            from: author.name.to_string(),
            role: author.role,
            text: line.to_string(),
        })),
        [tag, id] if tag == "duplicate" => Ok(Appended::Duplicate { id: id.clone() }),
        [tag] if tag == "unknown" => Ok(Appended::UnknownGame),
        other => Err(corrupt("chat", other)),
    }
}

pub(super) async fn line_of(
    s: &RedisStore,
    game: Option<&GameId>,
    player: &PlayerId,
    lid: &str,
) -> StoreResult<Option<String>> {
    let key = s.keys.chat_line_id(game, player, &mid_hex(lid));
    s.query("chat_line_of", ::redis::cmd("GET").arg(key)).await
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
    let reply: Value = s
        .query(
            "recent_chat",
            ::redis::cmd("XREVRANGE")
                .arg(key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(n),
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
