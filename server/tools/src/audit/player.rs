//! One audited player: plays its seat as the page does (a think time, then a move with a
//! fresh `mid`; a rematch when the round is over; now and then a chat line), survives every
//! fault as the page does (reconnects with backoff, resumes with its token and last version,
//! sends a move that got no answer or `unavailable` again with the same `mid`), and records
//! everything the checker needs: connections, every game event and snapshot in the order
//! received, every move with its ack, every acknowledged chat line.

use super::Shared;
use crate::checker::history::{
    AckedChat, Connection, MoveAck, MoveAttempt, PlayerHistory, Received, ReceivedKind,
};
use crate::loadgen::conn::{self, Failure, Incoming, Ws};
use crate::loadgen::plan::{Rng, random_free_cell};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tictactoe_protocol::ids::GameId;
use tictactoe_protocol::{ClientMsg, ErrorCode, ResumeGame, Role, ServerMsg};
use tictactoe_rules::{GameState, Mark, Status};
use tokio::time::Instant;

/// A connection that has said nothing for this long (the server pings far more often) is
/// taken for dead.
const SILENCE: Duration = Duration::from_secs(30);
/// A `welcome` must come this soon after the `hello`.
const WELCOME_WITHIN: Duration = Duration::from_secs(15);
/// Reconnect backoff: from this, doubling...
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// ...to this.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A move answered `unavailable` without `retry_after_ms` is sent again after this.
const RETRY_UNAVAILABLE: Duration = Duration::from_secs(1);
/// A rematch request that changed nothing is asked again after this.
const REMATCH_AGAIN: Duration = Duration::from_secs(2);

/// The failure kind of a seat the server no longer knows (session or game gone).
const SESSION_LOST: &str = "session_lost";

/// How a connection ended.
enum End {
    /// The run is over.
    Stop,
    /// Lost (closed, reset, silent) or dropped by a storm: reconnect.
    Lost { at_once: bool },
    /// The server no longer knows the session: the seat is out of reach.
    SessionLost,
}

/// The move on its way: its entry in the history and the request that carries it.
struct Pending {
    index: usize,
    req: u64,
    /// When to send it again (after `unavailable` or `rate_limited`).
    again_at: Option<Instant>,
    /// The round it was chosen in: once another round shows, it is dropped, as the page
    /// drops its outbox entry at `round_started`.
    round: u32,
}

/// A seat as set-up left it: the game, the mark, the session's token, and the game as the
/// seat's snapshot showed it.
pub struct Seat {
    pub game: GameId,
    pub mark: Mark,
    pub token: String,
    pub version: u64,
    pub state: GameState,
}

pub struct Player {
    /// Across all players of the run: picks who a storm drops.
    pub index: usize,
    game: GameId,
    mark: Mark,
    token: String,
    version: u64,
    state: GameState,
    next_req: u64,
    pending: Option<Pending>,
    /// The version our last move produced: until the board shows it, it is not our turn.
    moved_to: u64,
    /// When the player wants to move next (kept across reconnects: the wait goes on).
    move_at: Option<Instant>,
    /// The round and time of our last rematch request.
    rematch_asked: Option<(u32, Instant)>,
    /// The connection is not in the game (its restore failed, or a request met
    /// `not_in_game`): when to join it again, as the page does.
    rejoin_at: Option<Instant>,
    /// The `join` on its way.
    rejoin_req: Option<u64>,
    /// The connection's `hello` met `unavailable` or `rate_limited`: when to send it again.
    hello_at: Option<Instant>,
    /// The chat line waiting for its ack: request and text.
    chat_req: Option<(u64, String)>,
    chats_sent: u64,
    moves_made: u64,
    /// The mean think time before a move.
    think: Duration,
    rng: Rng,
    pub history: PlayerHistory,
}

impl Player {
    pub fn new(index: usize, seat: Seat, think: Duration, seed: u64) -> Player {
        let Seat {
            game,
            mark,
            token,
            version,
            state,
        } = seat;
        let history = PlayerHistory {
            game: game.as_str().to_string(),
            mark,
            connections: Vec::new(),
            received: Vec::new(),
            moves: Vec::new(),
            chats: Vec::new(),
        };
        Player {
            index,
            game,
            mark,
            token,
            version,
            state,
            next_req: 10,
            pending: None,
            moved_to: 0,
            move_at: None,
            rematch_asked: None,
            rejoin_at: None,
            rejoin_req: None,
            hello_at: None,
            chat_req: None,
            chats_sent: 0,
            moves_made: 0,
            think,
            rng: Rng::new(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            history,
        }
    }

    /// The set-up connection: already welcomed, and its snapshot already read.
    pub fn set_up(&mut self, sh: &Shared, instance: String, welcomed: Instant, snapshot: Instant) {
        self.history.connections.push(Connection {
            instance,
            welcomed_ms: sh.ms(welcomed),
            closed_ms: None,
        });
        self.history.received.push(Received {
            conn: 0,
            at_ms: sh.ms(snapshot),
            version: self.version,
            kind: ReceivedKind::Snapshot,
        });
    }

    fn req(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req
    }

    fn my_turn(&self) -> bool {
        self.state.status == Status::Playing
            && self.state.turn == self.mark
            && self.pending.is_none()
            && self.version >= self.moved_to
            && self.rejoin_at.is_none()
            && self.rejoin_req.is_none()
    }

    /// Plays until the run stops, reconnecting whenever the connection goes.
    pub async fn play(mut self, sh: Arc<Shared>, first: Ws) -> PlayerHistory {
        let mut ws = Some(first);
        let mut welcomed = true;
        let mut backoff = BACKOFF_MIN;
        loop {
            let end = match ws.take() {
                Some(w) => {
                    // The records before this connection's own (pushed at its welcome).
                    let before = self.history.connections.len() - usize::from(welcomed);
                    let end = self.connection(&sh, w, welcomed).await;
                    // A connection that was welcomed is closed now, unless the run ended
                    // with it open.
                    if !matches!(end, End::Stop)
                        && self.history.connections.len() > before
                        && let Some(c) = self.history.connections.last_mut()
                    {
                        c.closed_ms.get_or_insert(sh.ms(Instant::now()));
                    }
                    end
                }
                None => End::Lost { at_once: false },
            };
            let wait = match end {
                End::Stop => break,
                End::SessionLost => {
                    sh.counts.sessions_lost.fetch_add(1, Relaxed);
                    break;
                }
                End::Lost { at_once: true } => {
                    backoff = BACKOFF_MIN;
                    Duration::ZERO
                }
                End::Lost { at_once: false } => {
                    let w = backoff.mul_f64(0.5 + self.rng.below(1000) as f64 / 1000.0);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    w
                }
            };
            tokio::select! {
                _ = sh.stop.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
            sh.counts.reconnects.fetch_add(1, Relaxed);
            welcomed = false;
            match tokio::select! {
                _ = sh.stop.cancelled() => break,
                r = conn::connect(&sh.url, sh.addr, None) => r,
            } {
                Ok(w) => ws = Some(w),
                Err(f) => sh.count_failure(&f),
            }
        }
        self.history
    }

    /// One connection, from its `hello` (unless already welcomed) to its end.
    async fn connection(&mut self, sh: &Shared, mut ws: Ws, mut welcomed: bool) -> End {
        // Whatever this connection is in, a new one starts from its hello's restore.
        self.rejoin_at = None;
        self.rejoin_req = None;
        self.hello_at = None;
        let mut storm = sh.storm.subscribe();
        storm.mark_unchanged();
        if !welcomed && let Err(f) = self.say_hello(&mut ws).await {
            sh.count_failure(&f);
            return End::Lost { at_once: false };
        }
        let mut opened = Instant::now();
        let mut last_frame = opened;
        loop {
            let silent_at = if welcomed {
                last_frame + SILENCE
            } else {
                opened + WELCOME_WITHIN
            };
            let hello_at = self.hello_at;
            let again_at = self.pending.as_ref().and_then(|p| p.again_at);
            let rematch_at = self.rematch_due();
            let rejoin_at = self.rejoin_at;
            let outcome = tokio::select! {
                biased;
                _ = sh.stop.cancelled() => {
                    conn::close(ws).await;
                    return End::Stop;
                }
                r = storm.changed() => {
                    if r.is_ok() && (self.index as u64 + *storm.borrow()).is_multiple_of(3) {
                        // Dropped without a close frame, as by a network cut; back at once.
                        sh.counts.storm_drops.fetch_add(1, Relaxed);
                        return End::Lost { at_once: true };
                    }
                    Ok(())
                }
                item = ws.next() => {
                    last_frame = Instant::now();
                    match conn::incoming(item) {
                        Ok(Incoming::Msg(msg)) => self.on_message(sh, &mut ws, *msg, &mut welcomed).await,
                        Ok(Incoming::Nothing) => Ok(()),
                        Err(f) => Err(f),
                    }
                }
                _ = tokio::time::sleep_until(self.move_at.unwrap_or(silent_at)), if welcomed && self.move_at.is_some() => {
                    self.send_new_move(sh, &mut ws).await
                }
                _ = tokio::time::sleep_until(again_at.unwrap_or(silent_at)), if welcomed && again_at.is_some() => {
                    self.send_pending(&mut ws).await
                }
                _ = tokio::time::sleep_until(rematch_at.unwrap_or(silent_at)), if welcomed && rematch_at.is_some() => {
                    self.ask_rematch(&mut ws).await
                }
                _ = tokio::time::sleep_until(rejoin_at.unwrap_or(silent_at)), if welcomed && rejoin_at.is_some() => {
                    self.rejoin(&mut ws).await
                }
                _ = tokio::time::sleep_until(hello_at.unwrap_or(silent_at)), if !welcomed && hello_at.is_some() => {
                    self.hello_at = None;
                    opened = Instant::now();
                    self.say_hello(&mut ws).await
                }
                _ = tokio::time::sleep_until(silent_at) => Err(Failure::transport("silent")),
            };
            match outcome {
                Ok(()) => {}
                Err(Failure::Transport(kind)) if kind == SESSION_LOST => return End::SessionLost,
                Err(f) => {
                    sh.count_failure(&f);
                    // 1012: the instance is going away (drain) or lost Redis: another one
                    // answers at once.
                    let at_once = f == Failure::transport("closed_1012");
                    return End::Lost { at_once };
                }
            }
        }
    }

    /// This player's `hello` (always `req` 1): its session, and its game to go back into.
    async fn say_hello(&mut self, ws: &mut Ws) -> Result<(), Failure> {
        let hello = ClientMsg::Hello {
            req: Some(1),
            token: Some(self.token.clone()),
            name: None,
            resume: vec![ResumeGame {
                game: self.game.clone(),
                version: self.version,
            }],
        };
        conn::send(ws, &hello).await
    }

    async fn on_message(
        &mut self,
        sh: &Shared,
        ws: &mut Ws,
        msg: ServerMsg,
        welcomed: &mut bool,
    ) -> Result<(), Failure> {
        let now = Instant::now();
        let conn = self.history.connections.len().saturating_sub(1);
        match msg {
            ServerMsg::Welcome {
                req: Some(1),
                instance,
                resumed,
                ..
            } if !*welcomed => {
                if !resumed {
                    // A new session: the seat belongs to the one the server forgot.
                    return Err(Failure::transport(SESSION_LOST));
                }
                *welcomed = true;
                self.history.connections.push(Connection {
                    instance,
                    welcomed_ms: sh.ms(now),
                    closed_ms: None,
                });
                // What got no answer is sent again, as the page does.
                if self.pending.is_some() {
                    self.send_pending(ws).await?;
                }
            }
            ServerMsg::Snapshot {
                req,
                game,
                version,
                state,
                ..
            } if game == self.game => {
                let rejoined = req.is_some() && req == self.rejoin_req;
                self.history.received.push(Received {
                    conn,
                    at_ms: sh.ms(now),
                    version,
                    kind: ReceivedKind::Snapshot,
                });
                // The game as the server has it now, even behind what this client saw:
                // without REDIS_WAIT_REPLICAS a failover can take versions back, our own
                // acknowledged move's among them, and waiting for it to show would wait
                // forever.
                self.version = version;
                self.state = state;
                self.moved_to = self.moved_to.min(version);
                self.drop_if_stale(sh, now);
                if rejoined {
                    self.rejoin_req = None;
                    sh.counts.rejoins.fetch_add(1, Relaxed);
                    if self.pending.is_some() {
                        self.send_pending(ws).await?;
                    }
                }
            }
            ServerMsg::Ack { req, info } => {
                if let Some(p) = self.pending.as_ref().filter(|p| req == Some(p.req)) {
                    let m = &mut self.history.moves[p.index];
                    let version = info.version.unwrap_or(0);
                    m.ack = Some(MoveAck {
                        at_ms: sh.ms(now),
                        version,
                        duplicate: info.duplicate,
                    });
                    m.resolved_ms = Some(sh.ms(now));
                    self.moved_to = version;
                    self.pending = None;
                    sh.counts.acks.fetch_add(1, Relaxed);
                } else if let Some((_, text)) = self.chat_req.take_if(|(r, _)| req == Some(*r)) {
                    self.history.chats.push(AckedChat {
                        text,
                        at_ms: sh.ms(now),
                    });
                }
            }
            ServerMsg::Error {
                req,
                code,
                retry_after_ms,
                game,
                ..
            } => {
                sh.count_error(code);
                if req == Some(1) && !*welcomed {
                    // As the page does: a hello the server could not answer goes again.
                    if matches!(code, ErrorCode::Unavailable | ErrorCode::RateLimited) {
                        let wait = retry_after_ms
                            .map(Duration::from_millis)
                            .unwrap_or(RETRY_UNAVAILABLE);
                        self.hello_at = Some(now + wait);
                    }
                    return Ok(());
                }
                if code == ErrorCode::UnknownGame && game.as_ref() == Some(&self.game) {
                    return Err(Failure::transport(SESSION_LOST));
                }
                let wait = retry_after_ms
                    .map(Duration::from_millis)
                    .unwrap_or(RETRY_UNAVAILABLE);
                if req.is_some() && req == self.rejoin_req {
                    self.rejoin_req = None;
                    self.rejoin_at = Some(now + wait);
                } else if req.is_none() && game.as_ref() == Some(&self.game) {
                    // The hello could not bring this connection back into the game.
                    self.rejoin_at.get_or_insert(now + RETRY_UNAVAILABLE / 2);
                } else if code == ErrorCode::NotInGame {
                    self.rejoin_at.get_or_insert(now);
                    // A move keeps waiting: it goes again once the join is answered.
                    if let Some(p) = self.pending.as_mut().filter(|p| req == Some(p.req)) {
                        p.again_at = None;
                    }
                } else if let Some(p) = self.pending.as_mut().filter(|p| req == Some(p.req)) {
                    if matches!(code, ErrorCode::Unavailable | ErrorCode::RateLimited) {
                        p.again_at = Some(now + wait);
                    } else {
                        let m = &mut self.history.moves[p.index];
                        m.refused = Some(format!("{code:?}"));
                        m.resolved_ms = Some(sh.ms(now));
                        self.pending = None;
                        self.moved_to = 0;
                    }
                } else if self.chat_req.as_ref().is_some_and(|(r, _)| req == Some(*r)) {
                    self.chat_req = None;
                }
            }
            event => {
                let Some((game, version)) = event.game_version() else {
                    return Ok(());
                };
                if *game != self.game {
                    return Ok(());
                }
                self.history.received.push(Received {
                    conn,
                    at_ms: sh.ms(now),
                    version,
                    kind: ReceivedKind::Event,
                });
                if version > self.version {
                    let was_over = self.state.status == Status::Finished;
                    if let Some(state) = event.state() {
                        self.state = state.clone();
                    }
                    self.version = version;
                    self.drop_if_stale(sh, now);
                    if !was_over && self.state.status == Status::Finished {
                        self.round_over(sh, ws).await?;
                    }
                }
            }
        }
        self.react();
        Ok(())
    }

    /// A move still waiting from an earlier round is given up: the board it was chosen on
    /// is gone.
    fn drop_if_stale(&mut self, sh: &Shared, now: Instant) {
        if let Some(p) = self.pending.take_if(|p| p.round != self.state.round) {
            let m = &mut self.history.moves[p.index];
            m.refused = Some("round_over".into());
            m.resolved_ms = Some(sh.ms(now));
            self.moved_to = 0;
        }
    }

    /// Schedules our move when it is our turn.
    fn react(&mut self) {
        if self.my_turn() && self.move_at.is_none() {
            let half = self.think_half();
            let think = Duration::from_micros(half + self.rng.below(2 * half + 1));
            self.move_at = Some(Instant::now() + think);
        }
    }

    fn think_half(&self) -> u64 {
        self.think.as_micros() as u64 / 2
    }

    fn rematch_due(&self) -> Option<Instant> {
        if self.state.status != Status::Finished || *self.state.rematch.get(self.mark) {
            return None;
        }
        match self.rematch_asked {
            Some((round, at)) if round == self.state.round => Some(at + REMATCH_AGAIN),
            _ => Some(Instant::now()),
        }
    }

    /// Joins the game again: a seat's holder gets it back, with a snapshot.
    async fn rejoin(&mut self, ws: &mut Ws) -> Result<(), Failure> {
        self.rejoin_at = None;
        let req = self.req();
        self.rejoin_req = Some(req);
        conn::send(
            ws,
            &ClientMsg::Join {
                req: Some(req),
                game: self.game.clone(),
                spectate: false,
            },
        )
        .await
    }

    async fn ask_rematch(&mut self, ws: &mut Ws) -> Result<(), Failure> {
        self.rematch_asked = Some((self.state.round, Instant::now()));
        let req = self.req();
        conn::send(
            ws,
            &ClientMsg::Rematch {
                req: Some(req),
                game: self.game.clone(),
            },
        )
        .await
    }

    /// X says something every few rounds: a line only this player sends, to find later.
    async fn round_over(&mut self, sh: &Shared, ws: &mut Ws) -> Result<(), Failure> {
        if self.mark != Mark::X
            || sh.chat_every == 0
            || !self.state.round.is_multiple_of(sh.chat_every)
            || self.chat_req.is_some()
        {
            return Ok(());
        }
        self.chats_sent += 1;
        let text = format!("p{}-{}", self.index, self.chats_sent);
        let req = self.req();
        self.chat_req = Some((req, text.clone()));
        conn::send(
            ws,
            &ClientMsg::Chat {
                req: Some(req),
                game: Some(self.game.clone()),
                text,
                lid: None,
            },
        )
        .await
    }

    /// The think time is over: choose a cell on the board as it is and send it.
    async fn send_new_move(&mut self, sh: &Shared, ws: &mut Ws) -> Result<(), Failure> {
        let Some(wanted) = self.move_at.take() else {
            return Ok(());
        };
        if !self.my_turn() {
            return Ok(());
        }
        let Some(cell) = random_free_cell(&self.state.board, &mut self.rng) else {
            return Ok(());
        };
        self.moves_made += 1;
        self.history.moves.push(MoveAttempt {
            mid: format!("p{}-{}", self.index, self.moves_made),
            cell: cell as u8,
            based_on: self.version,
            intent_ms: sh.ms(wanted),
            sends: 0,
            ack: None,
            refused: None,
            resolved_ms: None,
        });
        self.pending = Some(Pending {
            index: self.history.moves.len() - 1,
            req: 0,
            again_at: None,
            round: self.state.round,
        });
        self.moved_to = self.version + 1;
        self.send_pending(ws).await
    }

    /// Sends the pending move (again), with its `mid` and the version it was chosen on.
    async fn send_pending(&mut self, ws: &mut Ws) -> Result<(), Failure> {
        let req = self.req();
        let Some(p) = self.pending.as_mut() else {
            return Ok(());
        };
        p.req = req;
        p.again_at = None;
        let m = &mut self.history.moves[p.index];
        m.sends += 1;
        let msg = ClientMsg::Move {
            req: Some(req),
            game: self.game.clone(),
            cell: i64::from(m.cell),
            mid: Some(m.mid.clone()),
            version: Some(m.based_on),
        };
        conn::send(ws, &msg).await
    }
}

/// Connects one game's two players: X creates, O joins. Returns both, already welcomed and
/// seated, with the set-up connections.
pub async fn set_up_game(
    sh: &Shared,
    game_index: usize,
) -> Result<((Player, Ws), (Player, Ws)), Failure> {
    let (mut xw, x_welcome) = open_session(sh).await?;
    let (mut ow, o_welcome) = open_session(sh).await?;
    let created = conn::request(
        &mut xw,
        &ClientMsg::Create {
            req: Some(2),
            cid: None,
            computer: None,
            rated: false,
        },
        2,
    )
    .await?;
    let x_seated = Instant::now();
    let ServerMsg::Snapshot {
        game,
        version,
        you: Role::X,
        state,
        ..
    } = created
    else {
        return Err(Failure::transport("unexpected_reply"));
    };
    let join = ClientMsg::Join {
        req: Some(2),
        game: game.clone(),
        spectate: false,
    };
    let ServerMsg::Snapshot {
        version: o_version,
        you: Role::O,
        state: o_state,
        ..
    } = conn::request(&mut ow, &join, 2).await?
    else {
        return Err(Failure::transport("not_seated"));
    };
    let o_seated = Instant::now();
    let x_seat = Seat {
        game: game.clone(),
        mark: Mark::X,
        token: x_welcome.0,
        version,
        state,
    };
    let mut x = Player::new(2 * game_index, x_seat, sh.think, sh.seed);
    x.set_up(sh, x_welcome.1, x_welcome.2, x_seated);
    let o_seat = Seat {
        game,
        mark: Mark::O,
        token: o_welcome.0,
        version: o_version,
        state: o_state,
    };
    let mut o = Player::new(2 * game_index + 1, o_seat, sh.think, sh.seed);
    o.set_up(sh, o_welcome.1, o_welcome.2, o_seated);
    Ok(((x, xw), (o, ow)))
}

/// A new connection and session: (token, instance, when welcomed).
async fn open_session(sh: &Shared) -> Result<(Ws, (String, String, Instant)), Failure> {
    let mut ws = conn::connect(&sh.url, sh.addr, None).await?;
    let hello = ClientMsg::Hello {
        req: Some(1),
        token: None,
        name: None,
        resume: Vec::new(),
    };
    match conn::request(&mut ws, &hello, 1).await? {
        ServerMsg::Welcome {
            token: Some(token),
            instance,
            forfeit_grace_ms,
            ..
        } => {
            sh.counts.forfeit_grace_ms.store(forfeit_grace_ms, Relaxed);
            Ok((ws, (token, instance, Instant::now())))
        }
        _ => Err(Failure::transport("unexpected_reply")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            url: "ws://127.0.0.1:1/ws".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            clock: Instant::now(),
            stop: tokio_util::sync::CancellationToken::new(),
            storm: tokio::sync::watch::channel(0).0,
            think: Duration::from_millis(500),
            chat_every: 3,
            seed: 1,
            counts: super::super::Counts::default(),
        }
    }

    /// X to move in round 1 of a game at version 2.
    fn x_to_move() -> Player {
        let mut state = GameState::new("a");
        state.players.o = Some("b".into());
        state.status = Status::Playing;
        let seat = Seat {
            game: GameId::generate(),
            mark: Mark::X,
            token: "t".into(),
            version: 2,
            state,
        };
        Player::new(0, seat, Duration::from_millis(500), 1)
    }

    /// A move chosen now, waiting for its ack (as `send_new_move` leaves it, without a socket).
    fn choose(p: &mut Player, sh: &Shared, cell: u8) {
        p.history.moves.push(MoveAttempt {
            mid: "m".into(),
            cell,
            based_on: p.version,
            intent_ms: sh.ms(Instant::now()),
            sends: 1,
            ack: None,
            refused: None,
            resolved_ms: None,
        });
        p.pending = Some(Pending {
            index: 0,
            req: 11,
            again_at: None,
            round: p.state.round,
        });
    }

    #[tokio::test]
    async fn a_move_chosen_in_an_earlier_round_is_given_up_when_another_round_shows() {
        let sh = shared();
        let mut p = x_to_move();
        choose(&mut p, &sh, 4);
        // The same round, later: the move still waits.
        p.version = 3;
        p.drop_if_stale(&sh, Instant::now());
        assert!(p.pending.is_some());
        // Round 2 started while the move waited for an answer: it must not be sent again.
        p.state.round = 2;
        p.version = 6;
        p.drop_if_stale(&sh, Instant::now());
        assert!(p.pending.is_none());
        assert_eq!(p.history.moves[0].refused.as_deref(), Some("round_over"));
        assert!(p.history.moves[0].resolved_ms.is_some());
    }

    #[tokio::test]
    async fn no_move_is_chosen_while_the_connection_is_out_of_its_game() {
        let mut p = x_to_move();
        assert!(p.my_turn());
        p.rejoin_at = Some(Instant::now());
        assert!(!p.my_turn());
        p.rejoin_at = None;
        p.rejoin_req = Some(12);
        assert!(!p.my_turn());
        p.rejoin_req = None;
        assert!(p.my_turn());
    }
}
