//! Quick match from the connection's side: queueing, withdrawing, and being paired (by this
//! request, or later through the hub).

use super::{Connection, Step, Transport};
use crate::operations;
use crate::store::Ticket;
use tictactoe_protocol::ids::GameId;
use tictactoe_protocol::{AckInfo, ErrorCode, Req, ServerMsg};
use tictactoe_rules::Mark;

impl<S: Transport> Connection<S> {
    pub(super) async fn quick_match(&mut self, req: Option<Req>) -> Step {
        if self.in_match_queue {
            return self
                .socket
                .send(ServerMsg::error(
                    req,
                    ErrorCode::AlreadyQueued,
                    "already waiting for a match",
                ))
                .await;
        }
        if let Err(e) = self.room_for_a_game() {
            return self.socket.op_error(req, e).await;
        }
        let ticket = Ticket {
            player: self.identity.player.clone(),
            name: self.identity.name.clone(),
            lease: self.app.lease.clone(),
            conn: self.conn,
        };
        match operations::matching::quick_match(&self.app, &ticket).await {
            Ok(None) => {
                self.in_match_queue = true;
                self.app.match_queue.insert(self.conn, ticket.player);
                let info = AckInfo {
                    offer_computer_ms: Some(self.app.config.quick_match_computer.as_millis() as u64),
                    ..AckInfo::default()
                };
                self.socket.send(ServerMsg::ack(req, info)).await
            }
            Ok(Some(game)) => {
                self.socket
                    .send(ServerMsg::ack(req, AckInfo::default()))
                    .await?;
                self.matched(game, Mark::O).await
            }
            Err(e) => self.socket.op_error(req, e).await,
        }
    }

    pub(super) async fn cancel_match(&mut self, req: Option<Req>) -> Step {
        if self.in_match_queue {
            self.in_match_queue = false;
            self.app.match_queue.remove(&self.conn);
            if let Err(e) = operations::matching::cancel(&self.app, &self.identity.player).await {
                return self.socket.op_error(req, e).await;
            }
        }
        self.socket
            .send(ServerMsg::ack(req, AckInfo::default()))
            .await
    }

    /// Paired: say so, then join the game (seated by the pairing).
    pub(super) async fn matched(&mut self, game: GameId, you: Mark) -> Step {
        self.in_match_queue = false;
        self.app.match_queue.remove(&self.conn);
        self.socket
            .send(ServerMsg::MatchFound {
                game: game.clone(),
                you,
            })
            .await?;
        let r = self.join(None, game, true, None).await;
        self.finish(None, r).await
    }
}
