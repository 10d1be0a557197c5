//! One WebSocket connection, in two phases: the [`handshake`] until `hello` names the session
//! the connection speaks for, then a single `select!` loop over the socket, the connection's
//! bounded queue (fed by the hub), and shutdown. Requests are answered in order; expected
//! failures become typed protocol errors and the connection stays open; only a dead peer,
//! abuse, an oversize frame, a slow reader or shutdown end it.
//!
//! The connection is generic over the socket ([`Transport`]) so that it does not depend on
//! axum's upgrade machinery, and its tests drive it through channels.

mod catch_up;
mod handshake;
mod keepalive;
mod matching;
mod play;
mod profiles;
mod requests;
mod socket;
#[cfg(test)]
mod tests;

use crate::app::App;
use crate::hub::{ConnId, Mailbox, Outbound, Sent};
use crate::operations::{self, sessions::Identity};
use crate::ratelimit::LocalLimiter;
use axum::extract::ws::Message;
use futures_util::{Sink, Stream};
use keepalive::{Due, Keepalive};
use socket::Socket;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use tictactoe_protocol::ids::GameId;
use tictactoe_protocol::{AwayReason, Role, close};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// What a connection runs over: axum's `WebSocket` in production, channels in tests.
pub trait Transport:
    Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin
{
}

impl<S> Transport for S where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin
{
}

/// Why the connection ends.
#[derive(Debug, PartialEq, Eq)]
enum Closing {
    /// The peer went away; nothing to send.
    Gone,
    /// Close with this code and reason.
    Close(u16, &'static str),
}

type Step = Result<(), Closing>;

struct Joined {
    role: Role,
    /// The last version this client has been sent (shared with the hub).
    last: Sent,
}

/// A connection after `hello`: it always speaks for a session.
struct Connection<S> {
    app: Arc<App>,
    socket: Socket<S>,
    conn: ConnId,
    /// The client's address, for the per-address budgets.
    ip: IpAddr,
    mailbox: Mailbox,
    identity: Identity,
    games: HashMap<GameId, Joined>,
    /// First tier of the move and chat budgets: floods stop here, before Redis.
    move_limit: LocalLimiter,
    chat_limit: LocalLimiter,
    rename_limit: LocalLimiter,
    in_match_queue: bool,
    watching_lobby: bool,
}

/// Runs a connection to its end, then leaves every game it was in.
pub async fn serve<S: Transport>(app: Arc<App>, socket: S, ip: IpAddr) {
    let conn = app.next_conn_id();
    let (tx, rx) = mpsc::channel(app.config.outbound_queue);
    let kill = CancellationToken::new();
    let mailbox = Mailbox::new(tx, kill.clone());
    app.hub.register(conn, mailbox.clone());
    metrics::counter!("connections_total").increment(1);
    let mut socket = Socket::new(socket, &app.config);
    let span = tracing::info_span!(
        "conn",
        conn,
        instance = %app.instance,
        player = tracing::field::Empty
    );
    async {
        let mut keepalive = Keepalive::start(app.config.idle_timeout, app.config.session_ttl / 4);
        // Each phase is boxed, sized for itself: an idle connection's memory is then the
        // state of its loop, not room for every phase it was or will be in.
        let greeted = Box::pin(handshake::greet(
            &app,
            &mut socket,
            ip,
            &kill,
            &mut keepalive,
        ))
        .await;
        let (closing, mut socket) = match greeted {
            Ok(greeted) => {
                let connection = Connection {
                    move_limit: LocalLimiter::new(app.config.move_rule()),
                    chat_limit: LocalLimiter::new(app.config.chat_rule()),
                    rename_limit: LocalLimiter::new(operations::sessions::RENAME_RULE),
                    app: app.clone(),
                    socket,
                    conn,
                    ip,
                    mailbox,
                    identity: greeted.identity,
                    games: HashMap::new(),
                    in_match_queue: false,
                    watching_lobby: false,
                };
                let after_hello = (greeted.resume, greeted.left_out);
                Box::pin(connection.live(after_hello, rx, kill, keepalive)).await
            }
            Err(closing) => {
                tracing::debug!(?closing, "connection ending");
                (closing, socket)
            }
        };
        app.hub.unregister(conn);
        if let Closing::Close(code, reason) = closing {
            if code == close::SLOW_CONSUMER {
                tracing::info!("closing a client that does not keep up");
            }
            // By reason: a policy close (1008) is either no `hello` in time or rate limits
            // refused over and over, which only the reason tells apart.
            metrics::counter!("connections_closed_total", "code" => code.to_string(), "reason" => reason)
                .increment(1);
            Box::pin(socket.close(code, reason)).await;
        }
    }
    .instrument(span)
    .await;
}

impl<S: Transport> Connection<S> {
    /// The connection after `hello`: back into the games it resumes, then the loop until the
    /// end, then out of every game. Gives back why it ended and the socket to close.
    async fn live(
        mut self,
        (resume, left_out): (Vec<(GameId, Option<u64>)>, usize),
        mut rx: mpsc::Receiver<Outbound>,
        kill: CancellationToken,
        mut keepalive: Keepalive,
    ) -> (Closing, Socket<S>) {
        // The restored games leave at once, not with whatever the loop sends next.
        let restored = match Box::pin(self.catch_up_resumed(resume, left_out)).await {
            Ok(()) => self.socket.flush().await,
            Err(closing) => Err(closing),
        };
        let closing = match restored {
            Ok(()) => self.run(&mut rx, &kill, &mut keepalive).await,
            Err(closing) => closing,
        };
        tracing::debug!(?closing, "connection ending");
        Box::pin(self.cleanup()).await;
        (closing, self.socket)
    }

    async fn run(
        &mut self,
        rx: &mut mpsc::Receiver<Outbound>,
        kill: &CancellationToken,
        keepalive: &mut Keepalive,
    ) -> Closing {
        // Made once, not on every turn: each of these registers with its notifier when first
        // polled and leaves it when dropped, a lock each way, and a turn that made them anew
        // (a `select!` arm's future lives for one turn) paid that for every frame and event.
        let shutdown = self.app.shutdown.clone().cancelled_owned();
        let killed = kill.cancelled();
        let mut redis_lost = self.app.redis_lost.subscribe();
        let lost = async move { drop(redis_lost.wait_for(|lost| *lost).await) };
        tokio::pin!(shutdown, killed, lost);
        loop {
            // Biased, and the queue before the socket: `select!` otherwise starts at a random
            // branch but then polls in order, so a client with requests always waiting would
            // see its own queue served a fraction of the time, fill up, and be closed as slow.
            // Requests wait instead; they are rate-limited anyway.
            let step = tokio::select! {
                biased;
                _ = &mut shutdown => {
                    Err(Closing::Close(close::SERVICE_RESTART, "server restarting: reconnect"))
                }
                _ = &mut killed => {
                    Err(Closing::Close(close::SLOW_CONSUMER, "too slow: outbound queue full"))
                }
                // Another instance can serve this client; this one cannot until Redis is back.
                _ = &mut lost => {
                    Err(Closing::Close(close::SERVICE_RESTART, "instance lost Redis: reconnect"))
                }
                // The handlers are boxed: their state then exists only while a message is
                // handled, instead of inflating every idle connection's future.
                Some(out) = rx.recv() => {
                    if self.already_has(&out) {
                        Ok(())
                    } else {
                        Box::pin(self.on_outbound(out)).await
                    }
                }
                frame = self.socket.next() => {
                    keepalive.heard();
                    Box::pin(self.on_frame(frame)).await
                }
                _ = keepalive.tick() => {
                    let due = keepalive.due();
                    if due == Due::Idle {
                        Err(Closing::Close(close::IDLE, "idle"))
                    } else {
                        if keepalive.renewal_due() {
                            Box::pin(self.renew_session(keepalive)).await;
                        }
                        if due == Due::Ping {
                            self.socket.write(Message::Ping(Default::default())).await
                        } else {
                            Ok(())
                        }
                    }
                }
            };
            // Frames ready together leave together: flush once the queue is drained.
            let step = match step {
                Ok(()) if rx.is_empty() => self.socket.flush().await,
                other => other,
            };
            if let Err(closing) = step {
                return closing;
            }
        }
    }

    /// A connection open for longer than the session's lifetime must keep the session alive,
    /// or its seats would be lost on the next reconnect.
    async fn renew_session(&mut self, keepalive: &mut Keepalive) {
        let renewed = operations::sessions::renew(&self.app, &self.identity.token).await;
        if let Err(e) = &renewed {
            tracing::debug!(error = %e, "session renewal failed; will retry");
        }
        keepalive.renewed(renewed.is_ok());
    }

    async fn on_frame(&mut self, frame: Option<Result<Message, axum::Error>>) -> Step {
        match self.socket.request(frame).await? {
            Some(msg) => self.on_request(msg).await,
            None => Ok(()),
        }
    }

    /// A game event this client already has, or of a game it left. Most often the mover's
    /// own copy from pub/sub of the event its ack carried: the copy is dispatched as soon as
    /// the Redis client reads it, before the reply that came in the same read, so it reaches
    /// the mailbox. Dropped here without the boxed handler and its allocation (one per move:
    /// `scripts/bench.sh allocs`).
    fn already_has(&self, out: &Outbound) -> bool {
        let Outbound::Game(event) = out else {
            return false;
        };
        match (event.version, self.games.get(&event.game)) {
            (_, None) => true,
            (Some(v), Some(j)) => v <= j.last.get(),
            (None, Some(_)) => false,
        }
    }

    async fn on_outbound(&mut self, out: Outbound) -> Step {
        match out {
            Outbound::Game(event) => {
                let Some(j) = self.games.get_mut(&event.game) else {
                    return Ok(());
                };
                match event.version {
                    None => {
                        self.socket
                            .write(Message::Text(event.payload.clone()))
                            .await
                    }
                    Some(v) if v <= j.last.get() => Ok(()),
                    Some(v) if v == j.last.get() + 1 => {
                        j.last.set(v);
                        self.socket
                            .write(Message::Text(event.payload.clone()))
                            .await
                    }
                    // A hole: events were lost on the way (the bus reconnected).
                    Some(_) => self.catch_up(&event.game).await,
                }
            }
            Outbound::CatchUp(game) => self.catch_up(&game).await,
            Outbound::Lobby(frame) if self.watching_lobby => {
                self.socket.write(Message::Text((*frame).clone())).await
            }
            Outbound::Lobby(_) => Ok(()),
            Outbound::Matched { game, you } => self.matched(*game, you).await,
            Outbound::Requeue if self.in_match_queue => {
                self.in_match_queue = false;
                self.quick_match(None).await
            }
            Outbound::Requeue => Ok(()),
        }
    }

    /// Leaves every game and the match queue; runs whatever way the connection ended.
    async fn cleanup(&mut self) {
        let app = self.app.clone();
        if self.in_match_queue {
            app.match_queue.remove(&self.conn);
            // Without Redis the ticket is left to go stale: no longer refreshed, it leaves the
            // queue by itself.
            if !app.is_redis_lost()
                && let Err(e) = operations::matching::cancel(&app, &self.identity.player).await
            {
                tracing::warn!(error = %e, "could not withdraw the match ticket");
            }
        }
        app.hub.unwatch_lobby(self.conn);
        let games: Vec<(GameId, Role)> = self.games.drain().map(|(g, j)| (g, j.role)).collect();
        for (game, role) in games {
            app.hub.leave(&game, self.conn);
            let why = AwayReason::Disconnected;
            operations::presence::leave(&app, &self.identity.player, &game, role, why).await;
        }
    }
}
