//! Chat in memory: the last lines of each game and of the lobby, as `chat.lua` keeps them.

use super::MemoryStore;
use super::{ms, now_ms};
use crate::store::ChatRecord;
use crate::store::StoreResult;
use std::collections::VecDeque;
use std::time::Duration;
use tictactoe_protocol::Role;
use tictactoe_protocol::ids::GameId;
use tictactoe_protocol::templates::ChatTemplate;

pub(super) struct MemChat {
    pub(super) lines: VecDeque<ChatRecord>,
    pub(super) expires: u64,
}

pub(super) fn append_chat(
    store: &MemoryStore,
    game: Option<&GameId>,
    from: &str,
    role: Option<Role>,
    text: &str,
    event: &ChatTemplate,
    ttl: Duration,
) -> StoreResult<Option<ChatRecord>> {
    let now = now_ms();
    let mut inner = store.lock();
    if let Some(g) = game
        && inner.live_game(g, now).is_none()
    {
        return Ok(None);
    }
    let seq = if inner.chat_seq.0 == now {
        inner.chat_seq.1 + 1
    } else {
        0
    };
    inner.chat_seq = (now, seq);
    let line = ChatRecord {
        id: format!("{now}-{seq}"),
        from: from.to_string(),
        role,
        text: text.to_string(),
        ts: now,
    };
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
    Ok(Some(line))
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
