//! Requests on a seat: moves, resigning, asking for a rematch, cancelling a game nobody has
//! joined. Each becomes one transition in the operations layer, answered with an ack carrying
//! the version it committed and, in the same write, the event it published.

use super::{Connection, Step, Transport};
use crate::operations::{self, Done, OpError};
use axum::extract::ws::{Message, Utf8Bytes};
use tictactoe_protocol::ids::GameId;
use tictactoe_protocol::{AckInfo, ErrorCode, Req, ServerMsg};
use tictactoe_rules::{Cell, Mark};

pub(super) enum SeatAction {
    Resign,
    Rematch,
    Cancel,
}

impl<S: Transport> Connection<S> {
    pub(super) async fn play(
        &mut self,
        req: Option<Req>,
        game: GameId,
        cell: i64,
        mid: Option<String>,
        hint: Option<u64>,
    ) -> Step {
        let Some(mark) = self.seat(&game) else {
            return self.seatless(req, &game).await;
        };
        if let Err(wait) = self.move_limit.check() {
            return self
                .socket
                .limited(req, wait.as_millis() as u64 + 1, "moves")
                .await;
        }
        let cell = match Cell::new(cell) {
            Ok(c) => c,
            Err(e) => return self.socket.op_error(req, e.into()).await,
        };
        if let Some(refusal) = super::requests::bad_client_id(req, "mid", mid.as_deref()) {
            return self.socket.send(refusal).await;
        }
        let player = &self.identity.player;
        let r = operations::games::play(&self.app, &game, player, mark, cell, mid.as_deref(), hint)
            .await;
        self.done(req, &game, r).await
    }

    pub(super) async fn seat_action(
        &mut self,
        req: Option<Req>,
        game: GameId,
        action: SeatAction,
    ) -> Step {
        let Some(mark) = self.seat(&game) else {
            return self.seatless(req, &game).await;
        };
        let player = &self.identity.player;
        let r = match action {
            SeatAction::Resign => operations::games::resign(&self.app, &game, player, mark).await,
            SeatAction::Rematch => {
                let has_profile = self.identity.has_profile;
                operations::games::rematch(&self.app, &game, player, mark, has_profile).await
            }
            SeatAction::Cancel => operations::games::cancel(&self.app, &game, player, mark).await,
        };
        self.done(req, &game, r).await
    }

    fn seat(&self, game: &GameId) -> Option<Mark> {
        self.games.get(game).and_then(|j| j.role.mark())
    }

    async fn seatless(&mut self, req: Option<Req>, game: &GameId) -> Step {
        if self.games.contains_key(game) {
            self.socket
                .send(ServerMsg::error(
                    req,
                    ErrorCode::NotYourSeat,
                    "spectators cannot play",
                ))
                .await
        } else {
            self.not_in_game(req, game).await
        }
    }

    /// Answers a committed (or refused) transition. The event it published follows the ack
    /// at once, in the same write, when it is the next one this client should see: its copy
    /// from pub/sub then arrives as already seen and is skipped. Otherwise (an earlier event
    /// is still on its way through pub/sub) the copy from pub/sub delivers it in order.
    async fn done(&mut self, req: Option<Req>, game: &GameId, r: Result<Done, OpError>) -> Step {
        match r {
            Ok(d) => {
                let info = AckInfo {
                    version: Some(d.version),
                    duplicate: d.duplicate,
                    ..AckInfo::default()
                };
                self.socket.send(ServerMsg::ack(req, info)).await?;
                if let Some(event) = d.event
                    && let Some(j) = self.games.get_mut(game)
                    && j.last.get() + 1 == d.version
                    && let Ok(text) = Utf8Bytes::try_from(event)
                {
                    j.last.set(d.version);
                    self.socket.write(Message::Text(text)).await?;
                }
                Ok(())
            }
            Err(OpError::RateLimited { retry_after_ms }) => {
                self.socket.limited(req, retry_after_ms, "moves").await
            }
            Err(e) => self.socket.op_error(req, e).await,
        }
    }
}
