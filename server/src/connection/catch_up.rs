//! Bringing a client up to date with a game: joining it (a snapshot, or the missed events when
//! the log still has them), restoring a session's games after `hello`, and resyncing after a
//! hole in the events or on request.

use super::socket::Frame;
use super::{Connection, Joined, Step, Transport};
use crate::hub::{Outbound, Sent, Subscriber};
use crate::operations::{self, OpError, games::Snapshot, presence::Entered};
use crate::store::Missed;
use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use tictactoe_protocol::ids::GameId;
use tictactoe_protocol::{AckInfo, ErrorCode, Req, Role, ServerMsg};

impl<S: Transport> Connection<S> {
    /// Goes back into the games `hello` named, catching up from the version the client last
    /// saw; then says, once, how many it asked for beyond the caps.
    pub(super) async fn catch_up_resumed(
        &mut self,
        games: Vec<(GameId, Option<u64>)>,
        left_out: usize,
    ) -> Step {
        for (game, from) in games {
            match self.join(None, game.clone(), true, from).await {
                Ok(frames) => self.socket.send_all(frames).await?,
                Err(OpError::UnknownGame) => {
                    let _ =
                        operations::sessions::forget_game(&self.app, &self.identity.token, &game)
                            .await;
                    // Say so: the client may still be showing it.
                    self.socket.send(expired(&game)).await?;
                }
                Err(e) => {
                    tracing::warn!(%game, error = %e, "could not restore a game");
                    let mut msg = e.to_msg(None);
                    if let ServerMsg::Error {
                        message, game: g, ..
                    } = &mut msg
                    {
                        *message = format!("could not restore game {game}: {message}");
                        *g = Some(game.clone());
                    }
                    self.socket.send(msg).await?;
                }
            }
        }
        if left_out > 0 {
            metrics::counter!("resume_refused_total").increment(left_out as u64);
            let message = format!(
                "{left_out} of the games to resume were not restored: a hello resumes at most {} \
                 and a connection is in at most {}",
                self.app.config.max_resume, self.app.config.max_games_per_conn
            );
            self.socket
                .send(ServerMsg::error(None, ErrorCode::TooManyGames, message))
                .await?;
        }
        Ok(())
    }

    /// Refuses one more game when the connection is in as many as it may be.
    pub(super) fn room_for_a_game(&self) -> Result<(), OpError> {
        let max = self.app.config.max_games_per_conn;
        if self.games.len() >= max {
            metrics::counter!("joins_refused_total", "reason" => "too_many_games").increment(1);
            return Err(OpError::TooManyGames { max });
        }
        Ok(())
    }

    /// Joins a game: subscribes, takes the free O seat unless `spectate` (or when resuming),
    /// announces presence, and returns the frames that bring the client up to date: a
    /// snapshot, or with `since` the missed events when the log still has them.
    pub(super) async fn join(
        &mut self,
        req: Option<Req>,
        game: GameId,
        spectate: bool,
        since: Option<u64>,
    ) -> Result<Vec<Frame>, OpError> {
        let app = self.app.clone();
        if let Some(j) = self.games.get(&game) {
            let role = j.role;
            return Ok(vec![self.snapshot(req, &game, role).await?]);
        }
        self.room_for_a_game()?;
        let sent = Sent::default();
        let sub = Subscriber {
            conn: self.conn,
            mailbox: self.mailbox.clone(),
            player: self.identity.player.clone(),
            role: Role::Spectator,
            sent: sent.clone(),
        };
        app.hub
            .join(&game, sub.clone(), app.config.redis_timeout)
            .await
            .map_err(|_| OpError::Unavailable)?;
        let Entered {
            role,
            chat,
            presence,
        } = match operations::presence::enter(&app, &game, &self.identity, spectate, self.ip).await
        {
            Ok(entered) => entered,
            Err(e) => {
                app.hub.leave(&game, self.conn);
                return Err(e);
            }
        };
        app.hub
            .join(&game, Subscriber { role, ..sub }, app.config.redis_timeout)
            .await
            .map_err(|_| OpError::Unavailable)?;
        let (version, state) = app
            .hub
            .cached(&game)
            .ok_or_else(|| OpError::Internal("joined game has no state".into()))?;
        metrics::counter!("joins_total", "role" => role_label(role)).increment(1);
        tracing::debug!(%game, ?role, version, "joined");

        if let Some(since) = since
            && since <= version
            && let Missed::Events(events) =
                operations::games::missed_events(&app, &game, since).await?
        {
            sent.set(since + events.len() as u64);
            let last = sent;
            self.games.insert(game.clone(), Joined { role, last });
            let mut frames: Vec<Frame> = events
                .into_iter()
                .map(|e| Frame::Raw(event_text(e)))
                .collect();
            frames.push(Frame::Msg(Box::new(ServerMsg::Presence {
                game: game.clone(),
                presence,
            })));
            frames.push(Frame::Msg(Box::new(ServerMsg::ChatHistory {
                game: Some(game),
                lines: chat,
            })));
            return Ok(frames);
        }
        sent.set(version);
        let last = sent;
        self.games.insert(game.clone(), Joined { role, last });
        Ok(vec![Frame::Msg(Box::new(ServerMsg::Snapshot {
            req,
            game,
            version,
            you: role,
            state,
            presence,
            chat,
            duplicate: false,
        }))])
    }

    /// A fresh snapshot of a joined game.
    async fn snapshot(
        &mut self,
        req: Option<Req>,
        game: &GameId,
        role: Role,
    ) -> Result<Frame, OpError> {
        let Snapshot {
            version,
            state,
            presence,
            chat,
        } = operations::games::snapshot(&self.app, game).await?;
        // The snapshot is the store's word: the client is at `version` now, even below what it
        // was sent before (a failover took versions back), and the next version is new to it.
        if let Some(j) = self.games.get_mut(game) {
            j.last.set(version);
        }
        Ok(Frame::Msg(Box::new(ServerMsg::Snapshot {
            req,
            game: game.clone(),
            version,
            you: role,
            state,
            presence,
            chat,
            duplicate: false,
        })))
    }

    /// Sends what this client missed of a game: the logged events after its last version,
    /// or a snapshot when the log no longer reaches back that far.
    pub(super) async fn catch_up(&mut self, game: &GameId) -> Step {
        let Some(j) = self.games.get(game) else {
            return Ok(());
        };
        let (last, role) = (j.last.get(), j.role);
        let app = self.app.clone();
        match operations::games::missed_events(&app, game, last).await {
            Ok(Missed::UpToDate) => Ok(()),
            Ok(Missed::Events(events)) => {
                if let Some(j) = self.games.get_mut(game) {
                    j.last.set(last + events.len() as u64);
                }
                for e in events {
                    self.socket.write(Message::Text(event_text(e))).await?;
                }
                Ok(())
            }
            Ok(Missed::TooOld) => match self.snapshot(None, game, role).await {
                Ok(frame) => self.socket.send_all(vec![frame]).await,
                Err(e) => {
                    tracing::warn!(%game, error = %e, "resync snapshot failed");
                    self.catch_up_later(game);
                    Ok(())
                }
            },
            Ok(Missed::UnknownGame) => {
                self.games.remove(game);
                app.hub.leave(game, self.conn);
                self.socket.send(expired(game)).await
            }
            Err(e) => {
                tracing::warn!(%game, error = %e, "resync failed");
                self.catch_up_later(game);
                Ok(())
            }
        }
    }

    /// Tries a failed catch-up again shortly: after a lost bus message nothing else may come
    /// that would show the client the hole (a finished game, a quiet opponent).
    fn catch_up_later(&self, game: &GameId) {
        let (mailbox, game) = (self.mailbox.clone(), game.clone());
        let delay = self.app.config.redis_probe_every();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            mailbox.offer(Outbound::CatchUp(Box::new(game)));
        });
    }

    /// The client asks to be caught up from `since` (it saw a hole, or came back to a tab).
    pub(super) async fn sync(&mut self, req: Option<Req>, game: GameId, since: u64) -> Step {
        let Some(j) = self.games.get_mut(&game) else {
            return self.not_in_game(req, &game).await;
        };
        j.last.set(since.min(j.last.get()));
        self.catch_up(&game).await?;
        self.socket
            .send(ServerMsg::ack(req, AckInfo::default()))
            .await
    }
}

fn expired(game: &GameId) -> ServerMsg {
    ServerMsg::Error {
        req: None,
        game: Some(game.clone()),
        code: ErrorCode::UnknownGame,
        message: format!("game {game} has expired"),
        retry_after_ms: None,
    }
}

fn role_label(role: Role) -> &'static str {
    match role {
        Role::X => "x",
        Role::O => "o",
        Role::Spectator => "spectator",
    }
}

/// A logged event as a text frame. Instances log only the JSON they render, so this never
/// copies; were an entry damaged, the client still gets that version (its text mangled)
/// rather than a gap it would never notice.
fn event_text(event: Bytes) -> Utf8Bytes {
    Utf8Bytes::try_from(event.clone())
        .unwrap_or_else(|_| String::from_utf8_lossy(&event).into_owned().into())
}
