//! The lobby on the hub: who watches it here, its chat lines passed on as they come, and its
//! list sent again at most once per tick when it changed.

use super::{Client, ConnId, Hub, Outbound};
use crate::store::{LobbyShare, Store};
use axum::extract::ws::Utf8Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tictactoe_protocol::ServerMsg;

impl Hub {
    pub fn watch_lobby(&self, conn: ConnId, client: Client) {
        self.lobby_watchers.insert(conn, client);
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

    /// Sends the lobby list to every watcher if it changed since the last call.
    pub async fn flush_lobby(
        &self,
        store: &dyn Store,
        max: usize,
        share: LobbyShare,
        ttl: Duration,
    ) {
        if self.lobby_watchers.is_empty() || !self.lobby_dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        match store.lobby_list(max, share, ttl).await {
            Ok((open, live)) => {
                let frame = Arc::new(Utf8Bytes::from(ServerMsg::Lobby { open, live }.to_json()));
                self.lobby_watchers
                    .retain(|_, c| c.offer(Outbound::Lobby(frame.clone())));
            }
            Err(e) => {
                // Try again on the next tick.
                self.lobby_dirty.store(true, Ordering::Relaxed);
                tracing::warn!(error = %e, "could not refresh the lobby");
            }
        }
    }
}
