//! Play mode: one task per game drives both of its players, so the latency from one
//! player's move to the other player's `moved` event is measured on one clock.
//!
//! Each player reacts to what its own connection shows, as a page would: it moves when its
//! board says it is its turn (after the think time, or in open mode when the game's schedule
//! says the next move is due), and asks for a rematch when it sees the round over. The task
//! only adds the stopwatch between the two.

use super::conn::{self, Failure, Incoming, Ws};
use super::plan::{GamePlan, Rng, random_free_cell};
use super::schedule::Schedule;
use super::{Ctx, STALL_TIMEOUT, Settle};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tictactoe_protocol::ids::GameId;
use tictactoe_protocol::{ClientMsg, Role, ServerMsg};
use tictactoe_rules::{GameState, Mark, Status};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// After an error reply to a move, wait at least this long before trying again, so a
/// confused client cannot spin.
const RETRY_AFTER_ERROR: Duration = Duration::from_millis(100);

struct Player {
    ws: Ws,
    mark: Mark,
    /// The latest game version this connection has seen, and the state it produced.
    version: u64,
    state: GameState,
    next_req: u64,
    /// The request id of our move awaiting its ack.
    move_req: Option<u64>,
    /// The version our last move produced (predicted until its ack says). Until our board
    /// shows it, the board is older than our move and would still say it is our turn.
    moved_to: u64,
    /// When to send our next move (or, once the round is over, our rematch request).
    move_at: Option<Instant>,
    /// The round we last asked a rematch for.
    rematch_round: u32,
}

/// What the game task knows beyond its two players.
struct Table {
    game: GameId,
    think: Duration,
    rng: Rng,
    /// The move on its way: the version it will produce, who sent it, and when (open mode:
    /// when it was due), the start of its latency.
    in_flight: Option<(u64, Mark, Instant)>,
    /// The last time the game changed, to give up on a stalled one.
    last_progress: Instant,
    /// Open mode: when the game's moves are due, whoever's turn it is.
    schedule: Option<Schedule>,
    /// Open mode: the due time of a move the server refused; it is sent again before the
    /// schedule's next one and keeps its original due time.
    owed: Option<Instant>,
}

impl Table {
    /// Open mode: when the next move is due.
    fn due(&self) -> Option<Instant> {
        self.owed
            .or_else(|| self.schedule.as_ref().map(Schedule::next_due))
    }

    /// Open mode: the due time of the move being sent, moving the schedule on.
    fn take_due(&mut self) -> Option<Instant> {
        let rng = &mut self.rng;
        self.owed
            .take()
            .or_else(|| self.schedule.as_mut().map(|s| s.take(rng)))
    }
}

impl Player {
    fn new(ws: Ws, mark: Mark, version: u64, state: GameState) -> Player {
        Player {
            ws,
            mark,
            version,
            state,
            // 1 and 2 went to hello and create/join.
            next_req: 3,
            move_req: None,
            moved_to: 0,
            move_at: None,
            rematch_round: 0,
        }
    }

    fn req(&mut self) -> u64 {
        let r = self.next_req;
        self.next_req += 1;
        r
    }

    fn my_turn(&self) -> bool {
        self.state.status == Status::Playing
            && self.state.turn == self.mark
            && self.move_req.is_none()
            && self.version >= self.moved_to
    }

    /// Does what the board asks for: schedule (or send) our move, or ask for a rematch.
    async fn react(&mut self, table: &mut Table) -> Result<(), Failure> {
        match self.state.status {
            Status::Playing if self.my_turn() && self.move_at.is_none() => {
                if let Some(due) = table.due() {
                    // Already due (the turn came late): send now; its wait counts.
                    if due <= Instant::now() {
                        return self.send_move(table).await;
                    }
                    self.move_at = Some(due);
                } else if table.think.is_zero() {
                    return self.send_move(table).await;
                } else {
                    let think = jittered(table.think, &mut table.rng);
                    self.move_at = Some(Instant::now() + think);
                }
            }
            Status::Finished
                if !*self.state.rematch.get(self.mark)
                    && self.rematch_round != self.state.round =>
            {
                self.rematch_round = self.state.round;
                // A person takes a moment to ask for the next round too. Asking at once made
                // both players' requests cross within a round trip in most rounds, each such
                // pair costing the server a compare-and-set retry no person would cause.
                // Open mode's schedule paces moves only.
                if table.think.is_zero() || table.schedule.is_some() {
                    return self.send_rematch(table).await;
                }
                self.move_at = Some(Instant::now() + jittered(table.think, &mut table.rng));
            }
            Status::Aborted => return Err(Failure::transport("game_aborted")),
            _ => {}
        }
        Ok(())
    }

    /// Its time came: the move, or the rematch request it was thinking about.
    async fn act(&mut self, table: &mut Table) -> Result<(), Failure> {
        if self.state.status == Status::Finished {
            self.move_at = None;
            return self.send_rematch(table).await;
        }
        self.send_move(table).await
    }

    async fn send_rematch(&mut self, table: &mut Table) -> Result<(), Failure> {
        if *self.state.rematch.get(self.mark) {
            return Ok(());
        }
        let req = self.req();
        let msg = ClientMsg::Rematch {
            req: Some(req),
            game: table.game.clone(),
        };
        conn::send(&mut self.ws, &msg).await
    }

    async fn send_move(&mut self, table: &mut Table) -> Result<(), Failure> {
        self.move_at = None;
        if !self.my_turn() {
            return Ok(());
        }
        let Some(cell) = random_free_cell(&self.state.board, &mut table.rng) else {
            return Ok(());
        };
        let req = self.req();
        self.move_req = Some(req);
        self.moved_to = self.version + 1;
        let msg = ClientMsg::Move {
            req: Some(req),
            game: table.game.clone(),
            cell: cell as i64,
            mid: Some(format!("m{req}")),
            version: Some(self.version),
        };
        // Nobody else can change the game while it is our turn: our move makes the next
        // version.
        let now = Instant::now();
        let since = table.take_due().unwrap_or(now);
        table.in_flight = Some((self.version + 1, self.mark, since));
        table.last_progress = now;
        conn::send(&mut self.ws, &msg).await
    }

    async fn on_frame(
        &mut self,
        ctx: &Ctx,
        table: &mut Table,
        item: Option<Result<Message, WsError>>,
    ) -> Result<(), Failure> {
        // Before parsing: the frame has arrived, what follows is our own overhead.
        let received = Instant::now();
        let Incoming::Msg(msg) = conn::incoming(item)? else {
            return Ok(());
        };
        match *msg {
            ServerMsg::Ack { req, info } if req.is_some() && req == self.move_req => {
                self.move_req = None;
                if let Some(v) = info.version {
                    self.moved_to = v;
                }
                ctx.stats.ack();
                if info.duplicate {
                    // We never retry a move, so the server saw one twice.
                    ctx.fail(&Failure::transport("duplicate_ack"));
                }
            }
            ServerMsg::Error {
                req,
                code,
                retry_after_ms,
                ..
            } => {
                ctx.fail(&Failure::Server(code));
                if req.is_some() && req == self.move_req {
                    self.move_req = None;
                    self.moved_to = 0;
                    if let Some((_, mark, since)) = table.in_flight
                        && mark == self.mark
                    {
                        table.in_flight = None;
                        if table.schedule.is_some() {
                            table.owed = Some(since);
                        }
                    }
                    let wait = Duration::from_millis(retry_after_ms.unwrap_or(0))
                        .max(RETRY_AFTER_ERROR)
                        .max(table.think);
                    self.move_at = Some(received + wait);
                }
            }
            event => {
                let Some((_, version)) = event.game_version() else {
                    return Ok(());
                };
                if version <= self.version {
                    return Ok(());
                }
                if let ServerMsg::Moved { mark, .. } = &event
                    && *mark != self.mark
                    && let Some((v, mover, sent)) = table.in_flight
                    && v == version
                    && mover == *mark
                {
                    ctx.stats.latency(received - sent);
                    table.in_flight = None;
                }
                let was_over = self.state.status == Status::Finished;
                if let Some(state) = event.state().cloned() {
                    self.state = state;
                }
                self.version = version;
                table.last_progress = received;
                // Counted once per game: by X.
                if self.mark == Mark::X && !was_over && self.state.status == Status::Finished {
                    ctx.stats.round_finished();
                }
            }
        }
        self.react(table).await
    }
}

fn hello(index: usize, mark: Mark) -> ClientMsg {
    ClientMsg::Hello {
        req: Some(1),
        token: None,
        name: Some(format!("lg{index}{mark}")),
        resume: Vec::new(),
    }
}

fn welcomed_by(reply: ServerMsg) -> Result<String, Failure> {
    match reply {
        ServerMsg::Welcome { instance, .. } => Ok(instance),
        _ => Err(Failure::transport("unexpected_reply")),
    }
}

/// Both results, or a failure; when both sides failed, the first is recorded here and the
/// second returned for the caller to record.
fn both<A, B>(ctx: &Ctx, a: Result<A, Failure>, b: Result<B, Failure>) -> Result<(A, B), Failure> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(f), Ok(_)) | (Ok(_), Err(f)) => Err(f),
        (Err(first), Err(second)) => {
            ctx.fail(&first);
            Err(second)
        }
    }
}

/// Connects both players, says hello, creates the game and seats O.
async fn set_up(
    ctx: &Ctx,
    index: usize,
    plan: GamePlan,
) -> Result<(GameId, Player, Player), Failure> {
    let (x, o) = tokio::join!(ctx.open(plan.x), ctx.open(plan.o));
    let (mut xw, mut ow) = both(ctx, x, o)?;
    let (hello_x, hello_o) = (hello(index, Mark::X), hello(index, Mark::O));
    let (hx, ho) = tokio::join!(
        ctx.stoppable(conn::request(&mut xw, &hello_x, 1)),
        ctx.stoppable(conn::request(&mut ow, &hello_o, 1)),
    );
    let (hx, ho) = both(ctx, hx, ho)?;
    let (ix, io) = (welcomed_by(hx)?, welcomed_by(ho)?);
    ctx.instance_seen(plan.x.url, &ix);
    ctx.instance_seen(plan.o.url, &io);

    let created = ctx
        .stoppable(conn::request(
            &mut xw,
            &ClientMsg::Create {
                req: Some(2),
                cid: None,
                computer: None,
                rated: false,
            },
            2,
        ))
        .await?;
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
    let x = Player::new(xw, Mark::X, version, state);
    let join = ClientMsg::Join {
        req: Some(2),
        game: game.clone(),
        spectate: false,
    };
    let ServerMsg::Snapshot {
        version,
        you: Role::O,
        state,
        ..
    } = ctx.stoppable(conn::request(&mut ow, &join, 2)).await?
    else {
        return Err(Failure::transport("not_seated"));
    };
    let o = Player::new(ow, Mark::O, version, state);
    ctx.stats.games_started.fetch_add(1, Relaxed);
    if ix != io {
        ctx.stats.games_cross.fetch_add(1, Relaxed);
    }
    Ok((game, x, o))
}

pub(super) async fn game(ctx: Arc<Ctx>, index: usize, plan: GamePlan) {
    let ctx = &*ctx;
    let mut settle = Settle::new(&ctx.stats);
    let (game, mut x, mut o) = match set_up(ctx, index, plan).await {
        Ok(set) => set,
        Err(f) => {
            ctx.fail(&f);
            return;
        }
    };
    settle.done();
    let mut rng = Rng::new(ctx.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let now = Instant::now();
    let schedule = ctx
        .open
        .map(|o| Schedule::new(o.rate, o.games, o.arrivals, now, &mut rng));
    let mut table = Table {
        game,
        think: ctx.think,
        rng,
        in_flight: None,
        last_progress: now,
        schedule,
        owed: None,
    };
    let outcome = play(ctx, &mut table, &mut x, &mut o).await;
    if let Err(f) = outcome {
        ctx.fail(&f);
    }
    tokio::join!(conn::close(x.ws), conn::close(o.ws));
}

/// Plays round after round until the run stops or a connection fails.
async fn play(ctx: &Ctx, table: &mut Table, x: &mut Player, o: &mut Player) -> Result<(), Failure> {
    // X learns that O sat down from the `seated` event; O may already know it is X's turn.
    x.react(table).await?;
    o.react(table).await?;
    let stall = STALL_TIMEOUT + table.think;
    loop {
        let x_due = x.move_at;
        let o_due = o.move_at;
        // A player waiting for its move's time is not stalled, however long the wait (open
        // mode at a low rate).
        let waiting = x_due.max(o_due).unwrap_or(table.last_progress);
        let stalled_at = table.last_progress.max(waiting) + stall;
        tokio::select! {
            biased;
            _ = ctx.stop.cancelled() => return Ok(()),
            item = x.ws.next() => x.on_frame(ctx, table, item).await?,
            item = o.ws.next() => o.on_frame(ctx, table, item).await?,
            _ = tokio::time::sleep_until(x_due.unwrap_or(stalled_at)), if x_due.is_some() => {
                x.act(table).await?;
            }
            _ = tokio::time::sleep_until(o_due.unwrap_or(stalled_at)), if o_due.is_some() => {
                o.act(table).await?;
            }
            _ = tokio::time::sleep_until(stalled_at) => {
                return Err(Failure::transport("stalled"));
            }
        }
    }
}

/// The think time, drawn uniformly from [think/2, 3·think/2]: the same mean, but games do not
/// all move in lockstep (an identical fixed delay turns thousands of games into bursts of
/// moves arriving together).
fn jittered(think: Duration, rng: &mut Rng) -> Duration {
    let half = think.as_micros() as u64 / 2;
    Duration::from_micros(half + rng.below(2 * half + 1))
}

#[cfg(test)]
mod jitter_tests {
    use super::*;

    #[test]
    fn think_times_spread_around_the_mean() {
        let mut rng = Rng::new(7);
        let think = Duration::from_millis(100);
        let draws: Vec<Duration> = (0..10_000).map(|_| jittered(think, &mut rng)).collect();
        assert!(draws.iter().all(|d| *d >= think / 2 && *d <= think * 3 / 2));
        let mean = draws.iter().sum::<Duration>() / draws.len() as u32;
        assert!(
            mean > Duration::from_millis(98) && mean < Duration::from_millis(102),
            "{mean:?}"
        );
        assert_eq!(jittered(Duration::ZERO, &mut rng), Duration::ZERO);
    }
}
