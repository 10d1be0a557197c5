//! Before `hello`: the only phase without a session. It answers pings, refuses every other
//! request, and ends with the session `hello` opened (or mints) and the games to restore, or
//! with a close when no hello comes in time.

use super::socket::Socket;
use super::{Closing, Due, Keepalive, Transport};
use crate::app::App;
use crate::operations::OpError;
use crate::operations::sessions::{self, Identity};
use crate::text::clean_name;
use axum::extract::ws::Message;
use std::collections::HashMap;
use std::net::IpAddr;
use tictactoe_protocol::ids::GameId;
use tictactoe_protocol::{
    ClientMsg, ErrorCode, PROTOCOL_VERSION, Req, ResumeGame, ServerMsg, close,
};
use tokio_util::sync::CancellationToken;

/// What `hello` leaves the connection with.
pub(super) struct Greeted {
    pub(super) identity: Identity,
    /// Games to go back into, each with the version the client last saw, if it said.
    pub(super) resume: Vec<(GameId, Option<u64>)>,
    /// Games the client asked to resume beyond the caps, which are not restored.
    pub(super) left_out: usize,
}

/// What one frame before the session came to.
enum Heard {
    Greeted(Greeted),
    /// A `hello` the store could not answer (`unavailable`): the client is told to retry it,
    /// so the wait for a hello starts again.
    Unanswered,
    Other,
}

/// Waits for `hello` and opens its session. The connection's queue is not read here: nothing
/// can reach it before the connection has joined a game, the lobby or the match queue.
pub(super) async fn greet<S: Transport>(
    app: &App,
    socket: &mut Socket<S>,
    ip: IpAddr,
    kill: &CancellationToken,
    keepalive: &mut Keepalive,
) -> Result<Greeted, Closing> {
    let mut hello_deadline = tokio::time::Instant::now() + app.config.hello_timeout;
    let shutdown = app.shutdown.clone();
    let mut redis_lost = app.redis_lost.subscribe();
    loop {
        // Biased like the connection's loop: shutdown and the deadline win over a chatty peer.
        let step = tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                Err(Closing::Close(close::SERVICE_RESTART, "server restarting: reconnect"))
            }
            _ = kill.cancelled() => {
                Err(Closing::Close(close::SLOW_CONSUMER, "too slow: outbound queue full"))
            }
            _ = async { drop(redis_lost.wait_for(|lost| *lost).await) } => {
                Err(Closing::Close(close::SERVICE_RESTART, "instance lost Redis: reconnect"))
            }
            _ = tokio::time::sleep_until(hello_deadline) => {
                Err(Closing::Close(close::POLICY, "no hello"))
            }
            frame = socket.next() => {
                keepalive.heard();
                Box::pin(on_frame(app, socket, ip, frame)).await
            }
            _ = keepalive.tick() => match keepalive.due() {
                Due::Idle => Err(Closing::Close(close::IDLE, "idle")),
                Due::Ping => socket.write(Message::Ping(Default::default())).await.map(|()| Heard::Other),
                // No session to renew before hello.
                Due::Renew => {
                    keepalive.defer_renewal();
                    Ok(Heard::Other)
                }
            },
        };
        match step? {
            Heard::Greeted(greeted) => {
                socket.flush().await?;
                return Ok(greeted);
            }
            // Closing it for "no hello" while it retries as told would blame the client for
            // a Redis outage (a Cluster failover lasts longer than the hello timeout).
            Heard::Unanswered => {
                hello_deadline = tokio::time::Instant::now() + app.config.hello_timeout;
            }
            Heard::Other => {}
        }
        socket.flush().await?;
    }
}

async fn on_frame<S: Transport>(
    app: &App,
    socket: &mut Socket<S>,
    ip: IpAddr,
    frame: Option<Result<Message, axum::Error>>,
) -> Result<Heard, Closing> {
    let Some(msg) = socket.request(frame).await? else {
        return Ok(Heard::Other);
    };
    match msg {
        ClientMsg::Hello {
            req,
            token,
            name,
            resume,
        } => hello(app, socket, ip, req, token, name, resume).await,
        ClientMsg::Ping { req } => {
            socket.send(ServerMsg::Pong { req }).await?;
            Ok(Heard::Other)
        }
        other => {
            socket
                .send(ServerMsg::error(
                    other.req(),
                    ErrorCode::HelloRequired,
                    "say hello first",
                ))
                .await?;
            Ok(Heard::Other)
        }
    }
}

async fn hello<S: Transport>(
    app: &App,
    socket: &mut Socket<S>,
    ip: IpAddr,
    req: Option<Req>,
    token: Option<String>,
    name: Option<String>,
    resume: Vec<ResumeGame>,
) -> Result<Heard, Closing> {
    let name = name.as_deref().and_then(clean_name);
    let opened = match sessions::open(app, token.as_deref(), name, ip).await {
        Ok(opened) => opened,
        Err(OpError::RateLimited { retry_after_ms }) => {
            socket.limited(req, retry_after_ms, "sessions").await?;
            return Ok(Heard::Other);
        }
        Err(e) => {
            let unanswered = matches!(e, OpError::Unavailable);
            socket.op_error(req, e).await?;
            return Ok(if unanswered {
                Heard::Unanswered
            } else {
                Heard::Other
            });
        }
    };
    let mut identity = opened.identity;
    tracing::Span::current().record("player", identity.player.as_str());
    let resumed = opened.new_token.is_none();
    tracing::debug!(resumed, games = opened.games.len(), "hello");
    // A new session has no profile yet; a resumed one may (also one a recovery code made).
    let profile = match resumed {
        true => crate::operations::profiles::on_hello(app, &identity.player, ip).await,
        false => None,
    };
    identity.has_profile = profile.is_some();
    socket
        .send(ServerMsg::Welcome {
            req,
            token: opened.new_token.map(|t| t.expose().to_string()),
            player: identity.player.clone(),
            name: identity.name.clone(),
            resumed,
            instance: app.instance.clone(),
            protocol: PROTOCOL_VERSION,
            chat_max_chars: app.config.chat_max_chars,
            forfeit_grace_ms: app.config.forfeit_grace.as_millis() as u64,
            profile,
        })
        .await?;

    // Back into every game of the session (most recent first), then those the client says
    // it was watching. Bounded: one `hello` must not turn into hundreds of joins and frames.
    let listed = resume.len();
    let resume: Vec<ResumeGame> = resume.into_iter().take(app.config.max_resume).collect();
    let mut all = opened.games;
    for r in &resume {
        if !all.contains(&r.game) {
            all.push(r.game.clone());
        }
    }
    let cap = app.config.max_games_per_conn;
    let left_out = (listed - resume.len()) + all.len().saturating_sub(cap);
    all.truncate(cap);
    let since: HashMap<GameId, u64> = resume.into_iter().map(|r| (r.game, r.version)).collect();
    let resume = all
        .into_iter()
        .map(|game| {
            let from = since.get(&game).copied();
            (game, from)
        })
        .collect();
    Ok(Heard::Greeted(Greeted {
        identity,
        resume,
        left_out,
    }))
}
