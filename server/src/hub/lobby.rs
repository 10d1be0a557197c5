//! The lobby on the hub: who watches it here, its chat lines passed on as they come, and its
//! list sent again at most once per tick when it changed.

use super::{ConnId, Hub, Mailbox, Outbound};
use axum::extract::ws::Utf8Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tictactoe_protocol::ServerMsg;

impl Hub {
    pub fn watch_lobby(&self, conn: ConnId, mailbox: Mailbox) {
        self.lobby_watchers.insert(conn, mailbox);
    }

    pub fn unwatch_lobby(&self, conn: ConnId) {
        self.lobby_watchers.remove(&conn);
    }

    pub(super) fn on_lobby_msg(&self, payload: Utf8Bytes) {
        match serde_json::from_str::<ServerMsg>(&payload) {
            Ok(ServerMsg::LobbyChanged { .. }) => self.lobby_dirty.store(true, Ordering::Relaxed),
            Ok(ServerMsg::Chat { .. }) => {
                let frame = Arc::new(payload);
                self.lobby_watchers
                    .retain(|_, c| c.offer(Outbound::Lobby(frame.clone())));
            }
            _ => {}
        }
    }

    /// Whether the lobby changed since the last call and someone here watches it; the change
    /// is then taken (put it back with [`Hub::lobby_changed`] if it could not be sent).
    pub fn take_lobby_change(&self) -> bool {
        !self.lobby_watchers.is_empty() && self.lobby_dirty.swap(false, Ordering::Relaxed)
    }

    /// Marks the lobby as changed, to be sent again.
    pub fn lobby_changed(&self) {
        self.lobby_dirty.store(true, Ordering::Relaxed);
    }

    /// Sends a lobby list to every watcher here.
    pub fn send_lobby(&self, list: ServerMsg) {
        let frame = Arc::new(Utf8Bytes::from(list.to_json()));
        self.lobby_watchers
            .retain(|_, c| c.offer(Outbound::Lobby(frame.clone())));
    }
}
