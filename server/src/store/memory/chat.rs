//! Chat in memory: the last lines of each game and of the lobby, as `chat.lua` keeps them.

use super::MemoryStore;
use super::{ms, now_ms};
use crate::store::{Appended, Author, ChatRecord, StoreResult};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::templates::ChatTemplate;

/// A client line id: where the line was said (a game, or the lobby), by whom, and the id.
pub(super) type LineKey = (Option<GameId>, PlayerId, String);

pub(super) struct MemChat {
    pub(super) lines: VecDeque<ChatRecord>,
    pub(super) expires: u64,
}

/// The id of the line remembered under `key`, unless it has lapsed by `now`.
fn remembered(
    line_ids: &HashMap<LineKey, (String, u64)>,
    key: &LineKey,
    now: u64,
) -> Option<String> {
    line_ids
        .get(key)
        .filter(|(_, expires)| *expires > now)
        .map(|(id, _)| id.clone())
}

pub(super) fn line_of(
    store: &MemoryStore,
    game: Option<&GameId>,
    player: &PlayerId,
    lid: &str,
) -> Option<String> {
    let key = (game.cloned(), player.clone(), lid.to_string());
    remembered(&store.lock().line_ids, &key, now_ms())
}

pub(super) fn append_chat(
    store: &MemoryStore,
    game: Option<&GameId>,
    author: &Author<'_>,
    text: &str,
    lid: Option<&str>,
    event: &ChatTemplate,
    ttl: Duration,
) -> StoreResult<Appended> {
    let now = now_ms();
    let mut inner = store.lock();
    let lid = lid.map(|l| (game.cloned(), author.player.clone(), l.to_string()));
    if let Some(id) = lid
        .as_ref()
        .and_then(|key| remembered(&inner.line_ids, key, now))
    {
        return Ok(Appended::Duplicate { id });
    }
    if let Some(g) = game
        && inner.live_game(g, now).is_none()
    {
        return Ok(Appended::UnknownGame);
    }
    let seq = if inner.chat_seq.0 == now {
        inner.chat_seq.1 + 1
    } else {
        0
    };
    inner.chat_seq = (now, seq);
    let line = ChatRecord {
        id: format!("{now}-{seq}"),
        from: author.name.to_string(),
        role: author.role,
        text: text.to_string(),
        ts: now,
    };
    if let Some(key) = lid {
        let expires = now + ms(store.limits.line_ids_ttl);
        inner.line_ids.insert(key, (line.id.clone(), expires));
    }
    let chat = inner.chats.entry(game.cloned()).or_insert_with(|| MemChat {
        lines: VecDeque::new(),
        expires: 0,
    });
    chat.lines.push_back(line.clone());
    while chat.lines.len() > store.limits.chat_len {
        chat.lines.pop_front();
    }
    chat.expires = now + ms(ttl);
    let channel = match game {
        Some(g) => store.keys.game_channel(g),
        None => store.keys.lobby_channel(),
    };
    store.send(channel, event.fill(&line.id, line.ts).into());
    Ok(Appended::Line(line))
}

pub(super) fn recent_chat(
    store: &MemoryStore,
    game: Option<&GameId>,
    n: usize,
) -> StoreResult<Vec<ChatRecord>> {
    let now = now_ms();
    let inner = store.lock();
    Ok(inner
        .chats
        .get(&game.cloned())
        .filter(|c| c.expires > now)
        .map(|c| {
            let skip = c.lines.len().saturating_sub(n);
            c.lines.iter().skip(skip).cloned().collect()
        })
        .unwrap_or_default())
}
