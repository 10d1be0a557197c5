//! The lobby on the hub: who watches it here, its chat lines passed on as they come, and its
//! list sent again at most once per tick when it changed.

use super::{ConnId, Hub, HubError, Mailbox, Outbound};
use axum::extract::ws::Utf8Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tictactoe_protocol::ServerMsg;

impl Hub {
    /// Adds a lobby watcher and returns once the lobby's channel is subscribed, so that a
    /// listing read afterwards misses no change and no chat line. The channel is subscribed
    /// only while someone here watches the lobby: every game's start and end is published on
    /// it, and an instance whose clients are all in games would read each one for nothing.
    pub async fn watch_lobby(
        &self,
        conn: ConnId,
        mailbox: Mailbox,
        timeout: Duration,
    ) -> Result<(), HubError> {
        let mut ready = self.lobby_ready.subscribe();
        self.lobby_watchers.insert(conn, mailbox);
        // Only a check the bus task makes from now on counts: one under way may have found
        // nobody watching and be about to unsubscribe.
        let (_, seen) = *ready.borrow_and_update();
        self.lobby_sync.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        let subscribed = ready.wait_for(|&(subscribed, check)| subscribed && check > seen);
        match tokio::time::timeout(timeout, subscribed).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(HubError::Unavailable),
        }
    }

    pub fn unwatch_lobby(&self, conn: ConnId) {
        if self.lobby_watchers.remove(&conn).is_some() {
            self.lobby_watchers_left();
        }
    }

    /// A watcher left: the last one out has the bus task unsubscribe the lobby's channel.
    pub(super) fn lobby_watchers_left(&self) {
        if self.lobby_watchers.is_empty() {
            self.lobby_sync.store(true, Ordering::Relaxed);
            self.wake.notify_one();
        }
    }

    /// Whether the lobby's channel should be subscribed now, if that may have changed since
    /// the last call.
    pub(super) fn lobby_wanted_change(&self) -> Option<bool> {
        self.lobby_sync
            .swap(false, Ordering::Relaxed)
            .then(|| !self.lobby_watchers.is_empty())
    }

    pub(super) fn lobby_wanted(&self) -> bool {
        self.lobby_sync.store(false, Ordering::Relaxed);
        !self.lobby_watchers.is_empty()
    }

    /// Says whether the lobby's channel is subscribed, as of a new check.
    pub(super) fn set_lobby_ready(&self, subscribed: bool) {
        self.lobby_ready
            .send_modify(|(s, check)| (*s, *check) = (subscribed, *check + 1));
    }

    pub(super) fn on_lobby_msg(&self, payload: Utf8Bytes) {
        match serde_json::from_str::<ServerMsg>(&payload) {
            Ok(ServerMsg::LobbyChanged { .. }) => self.lobby_dirty.store(true, Ordering::Relaxed),
            Ok(ServerMsg::Chat { .. }) => {
                let frame = Arc::new(payload);
                self.lobby_watchers
                    .retain(|_, c| c.offer(Outbound::Lobby(frame.clone())));
                self.lobby_watchers_left();
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
        self.lobby_watchers_left();
    }
}
