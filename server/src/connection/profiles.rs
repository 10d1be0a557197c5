//! The profile requests: make one, read it, a new recovery code, recover one on this device,
//! delete it, and the leaderboard. Each is one operation and one reply.

use super::{Connection, Step, Transport};
use crate::operations::{self, OpError};
use tictactoe_protocol::{AckInfo, ClientMsg, Req, ServerMsg};

impl<S: Transport> Connection<S> {
    /// Answers a profile request; other requests are not for this file and are ignored.
    pub(super) async fn on_profile_request(&mut self, msg: ClientMsg) -> Step {
        let app = self.app.clone();
        let me = &self.identity.player;
        let (req, answer) = match msg {
            ClientMsg::ProfileCreate { req } => {
                let made = operations::profiles::create(&app, me, &self.identity.name, self.ip);
                (req, with_code(req, made.await))
            }
            ClientMsg::Profile { req } => {
                let read = operations::profiles::view(&app, me).await;
                (
                    req,
                    read.map(|profile| ServerMsg::Profile {
                        req,
                        profile,
                        code: None,
                    }),
                )
            }
            ClientMsg::ProfileCode { req } => (
                req,
                with_code(req, operations::profiles::new_code(&app, me).await),
            ),
            ClientMsg::Recover { req, code } => {
                let found = operations::profiles::recover(&app, &code, self.ip).await;
                (
                    req,
                    found.map(|r| ServerMsg::Recovered {
                        req,
                        token: r.token.expose().to_string(),
                        player: r.player,
                        name: r.name,
                    }),
                )
            }
            ClientMsg::ProfileDelete { req } => (
                req,
                operations::profiles::delete(&app, me)
                    .await
                    .map(|()| ServerMsg::ack(req, AckInfo::default())),
            ),
            ClientMsg::Leaderboard { req } => (
                req,
                operations::profiles::leaderboard(&app, Some(me))
                    .await
                    .map(|b| ServerMsg::Leaderboard {
                        req,
                        top: b.top,
                        me: b.me,
                        around: b.around,
                    }),
            ),
            _ => return Ok(()),
        };
        // What this connection now knows of its player's profile (see Identity).
        match &answer {
            Ok(ServerMsg::Profile { .. }) => self.identity.has_profile = true,
            Ok(ServerMsg::Ack { .. }) => self.identity.has_profile = false,
            Err(e) if e.code() == tictactoe_protocol::ErrorCode::NoProfile => {
                self.identity.has_profile = false
            }
            _ => {}
        }
        match answer {
            Ok(msg) => self.socket.send(msg).await,
            Err(OpError::RateLimited { retry_after_ms }) => {
                self.socket
                    .limited(req, retry_after_ms, "profile requests")
                    .await
            }
            Err(e) => self.socket.op_error(req, e).await,
        }
    }
}

fn with_code(
    req: Option<Req>,
    made: Result<(tictactoe_protocol::profiles::ProfileView, String), OpError>,
) -> Result<ServerMsg, OpError> {
    made.map(|(profile, code)| ServerMsg::Profile {
        req,
        profile,
        code: Some(code),
    })
}
