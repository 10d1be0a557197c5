//! Requests after `hello`: the dispatch, the small handlers (create, join, leave, chat, the
//! lobby), and the answers they share. Moves and quick match have their own files.

use super::socket::Frame;
use super::{Connection, Step, Transport};
use crate::operations::{self, OpError};
use crate::text::{NAME_MAX_CHARS, clean_chat};
use tictactoe_protocol::ids::GameId;
use tictactoe_protocol::{AckInfo, AwayReason, ClientMsg, ErrorCode, Req, ServerMsg};
use tictactoe_rules::computer::Level;

impl<S: Transport> Connection<S> {
    pub(super) async fn on_request(&mut self, msg: ClientMsg) -> Step {
        match msg {
            ClientMsg::Hello { req, .. } => {
                self.socket
                    .send(ServerMsg::error(
                        req,
                        ErrorCode::BadRequest,
                        "hello was already said",
                    ))
                    .await
            }
            ClientMsg::Ping { req } => self.socket.send(ServerMsg::Pong { req }).await,
            ClientMsg::Create {
                req,
                cid,
                computer,
                rated,
            } => self.create(req, cid, computer, rated).await,
            ClientMsg::Join {
                req,
                game,
                spectate,
            } => {
                let r = self.join(req, game, spectate, None).await;
                self.finish(req, r).await
            }
            ClientMsg::Leave { req, game } => self.leave(req, game).await,
            ClientMsg::Rename { req, name } => self.rename(req, name).await,
            ClientMsg::Move {
                req,
                game,
                cell,
                mid,
                version,
            } => self.play(req, game, cell, mid, version).await,
            ClientMsg::Resign { req, game } => {
                self.seat_action(req, game, super::play::SeatAction::Resign)
                    .await
            }
            ClientMsg::Rematch { req, game } => {
                self.seat_action(req, game, super::play::SeatAction::Rematch)
                    .await
            }
            ClientMsg::Cancel { req, game } => {
                self.seat_action(req, game, super::play::SeatAction::Cancel)
                    .await
            }
            ClientMsg::Chat {
                req,
                game,
                text,
                lid,
            } => self.chat(req, game, text, lid).await,
            ClientMsg::Sync { req, game, since } => self.sync(req, game, since).await,
            ClientMsg::Lobby { req, watch } => self.lobby(req, watch).await,
            ClientMsg::QuickMatch { req } => self.quick_match(req).await,
            ClientMsg::Peek { req, game } => {
                let app = self.app.clone();
                match operations::lobby::peek(&app, &game).await {
                    Ok(entry) => self.socket.send(ServerMsg::GameInfo { req, entry }).await,
                    Err(e) => self.socket.op_error(req, e).await,
                }
            }
            ClientMsg::CancelMatch { req } => self.cancel_match(req).await,
            msg @ (ClientMsg::ProfileCreate { .. }
            | ClientMsg::Profile { .. }
            | ClientMsg::ProfileCode { .. }
            | ClientMsg::Recover { .. }
            | ClientMsg::ProfileDelete { .. }
            | ClientMsg::Leaderboard { .. }) => self.on_profile_request(msg).await,
        }
    }

    async fn create(
        &mut self,
        req: Option<Req>,
        cid: Option<String>,
        computer: Option<Level>,
        rated: bool,
    ) -> Step {
        if let Some(refusal) = bad_client_id(req, "cid", cid.as_deref()) {
            return self.socket.send(refusal).await;
        }
        let r = async {
            // Before the game exists: a game its creator cannot join would only wait in the
            // lobby.
            self.room_for_a_game()?;
            let me = &self.identity;
            let opening = operations::games::Opening { computer, rated };
            let opened = operations::games::open(
                &self.app,
                (&me.player, &me.name),
                self.ip,
                cid.as_deref(),
                opening,
            )
            .await?;
            let mut frames = self.join(req, opened.game, false, None).await?;
            if opened.duplicate {
                for frame in &mut frames {
                    if let Frame::Msg(msg) = frame
                        && let ServerMsg::Snapshot { duplicate, .. } = msg.as_mut()
                    {
                        *duplicate = true;
                    }
                }
            }
            Ok(frames)
        }
        .await;
        match r {
            Err(OpError::RateLimited { retry_after_ms }) => {
                self.socket.limited(req, retry_after_ms, "games").await
            }
            r => self.finish(req, r).await,
        }
    }

    /// Renames the session and its player in every game where it holds a seat.
    async fn rename(&mut self, req: Option<Req>, name: String) -> Step {
        // Unlike a hello's, a rename's name is refused rather than cut when too long: the
        // player is there to be told.
        let Some(name) = clean_chat(&name, NAME_MAX_CHARS) else {
            let msg = format!("a name has 1 to {NAME_MAX_CHARS} characters after cleaning");
            return self
                .socket
                .send(ServerMsg::error(req, ErrorCode::InvalidName, msg))
                .await;
        };
        if let Err(wait) = self.rename_limit.check() {
            return self
                .socket
                .limited(req, wait.as_millis() as u64 + 1, "renames")
                .await;
        }
        let app = self.app.clone();
        let joined: Vec<GameId> = self.games.keys().cloned().collect();
        match operations::sessions::rename(&app, &self.identity, &name, joined, self.ip).await {
            Ok(()) => {}
            Err(OpError::RateLimited { retry_after_ms }) => {
                return self.socket.limited(req, retry_after_ms, "renames").await;
            }
            Err(e) => {
                // The session may carry the new name already: later chat lines and seats use
                // it even if a game could not be told.
                self.identity.name = name;
                return self.socket.op_error(req, e).await;
            }
        }
        self.identity.name = name.clone();
        let info = AckInfo {
            name: Some(name),
            ..AckInfo::default()
        };
        self.socket.send(ServerMsg::ack(req, info)).await
    }

    async fn leave(&mut self, req: Option<Req>, game: GameId) -> Step {
        let Some(j) = self.games.remove(&game) else {
            return self.not_in_game(req, &game).await;
        };
        let app = self.app.clone();
        app.hub.leave(&game, self.conn);
        let why = AwayReason::Left;
        operations::presence::leave(&app, &self.identity.player, &game, j.role, why).await;
        if let Err(e) = operations::sessions::forget_game(&app, &self.identity.token, &game).await {
            tracing::warn!(%game, error = %e, "could not forget a left game");
        }
        self.socket
            .send(ServerMsg::ack(req, AckInfo::default()))
            .await
    }

    async fn chat(
        &mut self,
        req: Option<Req>,
        game: Option<GameId>,
        text: String,
        lid: Option<String>,
    ) -> Step {
        if let Some(refusal) = bad_client_id(req, "lid", lid.as_deref()) {
            return self.socket.send(refusal).await;
        }
        let app = self.app.clone();
        let Some(text) = clean_chat(&text, app.config.chat_max_chars) else {
            let msg = format!(
                "chat text must have 1 to {} characters after cleaning",
                app.config.chat_max_chars
            );
            return self
                .socket
                .send(ServerMsg::error(req, ErrorCode::InvalidText, msg))
                .await;
        };
        let role = match &game {
            Some(g) => match self.games.get(g) {
                Some(j) => Some(j.role),
                None => return self.not_in_game(req, g).await,
            },
            None => None,
        };
        if let Err(wait) = self.chat_limit.check() {
            return self
                .socket
                .limited(req, wait.as_millis() as u64 + 1, "chat")
                .await;
        }
        let lid = lid.as_deref();
        match operations::chat::post(&app, game.as_ref(), &self.identity, role, &text, lid).await {
            Ok(posted) => {
                let info = AckInfo {
                    id: Some(posted.id),
                    duplicate: posted.duplicate,
                    ..AckInfo::default()
                };
                self.socket.send(ServerMsg::ack(req, info)).await
            }
            Err(OpError::RateLimited { retry_after_ms }) => {
                self.socket.limited(req, retry_after_ms, "chat").await
            }
            Err(e) => self.socket.op_error(req, e).await,
        }
    }

    async fn lobby(&mut self, req: Option<Req>, watch: bool) -> Step {
        let app = self.app.clone();
        if !watch {
            self.watching_lobby = false;
            app.hub.unwatch_lobby(self.conn);
            return self
                .socket
                .send(ServerMsg::ack(req, AckInfo::default()))
                .await;
        }
        self.watching_lobby = true;
        if let Err(e) = app
            .hub
            .watch_lobby(self.conn, self.mailbox.clone(), app.config.redis_timeout)
            .await
        {
            tracing::debug!(error = %e, "lobby channel not subscribed in time");
            self.watching_lobby = false;
            app.hub.unwatch_lobby(self.conn);
            return self.socket.op_error(req, OpError::Unavailable).await;
        }
        match operations::lobby::list(&app).await {
            Ok(listing) => {
                self.socket
                    .send(ServerMsg::ack(req, AckInfo::default()))
                    .await?;
                self.socket
                    .send(ServerMsg::Lobby {
                        open: listing.open,
                        live: listing.live,
                    })
                    .await?;
                self.socket
                    .send(ServerMsg::ChatHistory {
                        game: None,
                        lines: listing.chat,
                    })
                    .await
            }
            Err(e) => self.socket.op_error(req, e).await,
        }
    }

    pub(super) async fn not_in_game(&mut self, req: Option<Req>, game: &GameId) -> Step {
        self.socket
            .send(ServerMsg::error(
                req,
                ErrorCode::NotInGame,
                format!("join game {game} first"),
            ))
            .await
    }

    /// Answers a request that produced frames (or failed).
    pub(super) async fn finish(
        &mut self,
        req: Option<Req>,
        r: Result<Vec<Frame>, OpError>,
    ) -> Step {
        match r {
            Ok(frames) => self.socket.send_all(frames).await,
            Err(e) => self.socket.op_error(req, e).await,
        }
    }
}

/// Longest a client request id (a move's `mid`, a create's `cid`, a chat line's `lid`) may be:
/// the store keeps it (in hex) in keys and hash fields.
const MAX_CLIENT_ID: usize = 64;

/// The refusal of a malformed client request id named `field`, if `id` is one.
pub(super) fn bad_client_id(req: Option<Req>, field: &str, id: Option<&str>) -> Option<ServerMsg> {
    id.is_some_and(|id| id.is_empty() || id.len() > MAX_CLIENT_ID)
        .then(|| {
            ServerMsg::error(
                req,
                ErrorCode::BadRequest,
                format!("{field} must be 1 to {MAX_CLIENT_ID} characters"),
            )
        })
}
