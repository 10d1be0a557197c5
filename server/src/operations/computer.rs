//! The computer as a player. It holds an ordinary seat under its own player id, and its moves
//! and rematch answers go through [`apply`] like anyone's: the same script, log and channel.
//!
//! No instance owns it. A step that hands the turn to the computer first puts the game's due
//! date in the store's deadlines ([`schedule`]), so whichever instance finds it due plays
//! (`deadlines::resolve_deadline`), and a `kill -9` of the instance that served the player
//! only costs a sweep interval. The instance that committed the step also keeps a timer of
//! its own ([`run`]) so that the move comes after the configured delay, not at the next sweep;
//! the compare-and-set lets exactly one of them act.

use super::games::{Actor, apply};
use super::{Done, OpError};
use crate::app::{App, wall_ms};
use crate::store::SeatCheck;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, LazyLock};
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_rules::computer::{Level, choose};
use tictactoe_rules::{ComputerTurn, RuleError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The computer's player id: no session can have it (theirs start with `p-`).
pub static COMPUTER: LazyLock<PlayerId> =
    LazyLock::new(|| PlayerId::try_from("computer".to_string()).expect("valid id"));

/// Timers this instance keeps for computer steps it scheduled. Past this many (a burst of
/// computer games), a step waits for the deadline sweep instead: later, never lost.
pub const MAX_TIMERS: usize = 4096;

/// The computer's display name at `level`.
pub fn name(level: Level) -> String {
    format!("Computer ({level})")
}

/// Makes the computer's next step due after its thinking time; returns when (ms).
pub(super) async fn schedule(app: &App, game: &GameId) -> Result<u64, OpError> {
    let at = wall_ms() + app.config.computer_delay.as_millis() as u64;
    app.store.set_deadline(game, at).await?;
    Ok(at)
}

/// Asks this instance's timer task to act for the computer at `due`.
pub(super) fn act_when_due(app: &App, game: &GameId, due: u64) {
    if app.computer_timers.try_send((game.clone(), due)).is_err() {
        metrics::counter!("computer_timers_full_total").increment(1);
    }
}

/// Plays the computer's step in `game` if it has one to take: a move (chosen on the board the
/// compare-and-set is attempted on) or its agreement to a rematch. A game where the computer
/// has nothing to do, or where another instance got there first, is left alone.
pub async fn act(app: &App, game: &GameId) -> Result<Option<Done>, OpError> {
    let sg = super::games::load_stored(app, game).await?;
    let Some(turn) = sg.state.computer_turn() else {
        return Ok(None);
    };
    let mark = match turn {
        ComputerTurn::Play(m) | ComputerTurn::Rematch(m) => m,
    };
    let actor = Actor {
        player: &COMPUTER,
        seat: SeatCheck::Holds(mark),
        limit: None,
        mid: None,
    };
    let start = Some((sg.version, sg.state));
    let r = apply(app, game, actor, start, None, |version, s| {
        let level = s.computer.ok_or(RuleError::GameOver)?.level;
        match s.computer_turn() {
            Some(ComputerTurn::Play(mark)) => {
                let mut rng = |n: usize| (uuid::Uuid::new_v4().as_u128() % n as u128) as usize;
                let cell = choose(&s.board, mark, level, &mut rng).ok_or(RuleError::GameOver)?;
                super::games::moving(game, s, mark, cell, None, version)
            }
            Some(ComputerTurn::Rematch(mark)) => {
                let (state, began) = s.request_rematch(mark, version)?;
                let event = super::games::rematch_event(game, version, mark, &state, began);
                Ok((state, event))
            }
            // Someone else acted meanwhile: nothing is the computer's to do.
            None => Err(RuleError::GameOver),
        }
    })
    .await;
    match r {
        Ok(done) => {
            metrics::counter!("computer_steps_total").increment(1);
            Ok(Some(done))
        }
        Err(OpError::Rule(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The timer task: acts for the computer when each step this instance scheduled falls due.
/// One task and one heap, rather than a task per move; steps are taken one after the other
/// (each is a couple of round trips), and anything this task misses the deadline sweep does.
pub async fn run(app: Arc<App>, mut due: mpsc::Receiver<(GameId, u64)>, stop: CancellationToken) {
    let mut timers: BinaryHeap<Reverse<(u64, GameId)>> = BinaryHeap::new();
    loop {
        let next = timers.peek().map(|Reverse((at, _))| *at);
        let wait = next.map(|at| at.saturating_sub(wall_ms()));
        tokio::select! {
            _ = stop.cancelled() => return,
            got = due.recv() => match got {
                Some((game, at)) => timers.push(Reverse((at, game))),
                None => return,
            },
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait.unwrap_or(0))),
                if wait.is_some() => {
                if let Some(Reverse((_, game))) = timers.pop()
                    && let Err(e) = act(&app, &game).await
                {
                    // The deadline is still in the store: the sweep tries again.
                    tracing::warn!(%game, error = %e, "computer step failed; the sweep retries");
                }
            }
        }
    }
}
