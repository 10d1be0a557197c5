//! Deadlines: the forfeit clock of an emptied seat and the match-confirmation clock of a new
//! game, and what a due one calls for (forfeit, abort, or look again later).

use super::computer;
use super::games::{Actor, SYSTEM, apply, conceding};
use super::{Done, OpError};
use crate::app::{App, DueDate, UNWRITTEN_DATES_MAX, wall_ms};
use crate::store::{PresenceChange, SeatCheck, SeatsView, StoreResult};
use std::collections::HashMap;
use tictactoe_protocol::ServerMsg;
use tictactoe_protocol::ids::GameId;
use tictactoe_rules::{EndReason, Mark, RuleError, Status};

/// What a due deadline calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is pending: both players are here, or the round is not being played.
    Clear,
    /// Someone is away but not for long enough yet: look again at this time (ms).
    Rearm(u64),
    /// This seat's player has been away longer than the grace period.
    Forfeit(Mark),
    /// A seat's player never arrived: the game never really started.
    Abort,
}

/// Decides what a due deadline means for a game. Pure, so every case is unit tested.
pub fn decide(view: &SeatsView, grace_ms: u64, confirm_ms: u64) -> Verdict {
    if view.state.status != Status::Playing {
        return Verdict::Clear;
    }
    let now = view.now_ms;
    let mut rearm = None::<u64>;
    // Seats whose time is up: (never arrived, away since, verdict).
    let mut expired = Vec::new();
    for m in [Mark::X, Mark::O] {
        // The computer is never away: its seat has no connection to count.
        if *view.present.get(m) || view.state.is_computer(m) {
            continue;
        }
        let since = view.away_since.get(m).unwrap_or(now);
        let seen = *view.seen.get(m);
        let at = since.saturating_add(if seen { grace_ms } else { confirm_ms });
        if at <= now {
            let verdict = if seen {
                Verdict::Forfeit(m)
            } else {
                Verdict::Abort
            };
            expired.push((seen, since, verdict));
        } else {
            rearm = Some(rearm.map_or(at, |r| r.min(at)));
        }
    }
    // A player who never arrived means the game never really started: abort outranks
    // forfeit. Otherwise the seat away the longest loses.
    expired.sort_by_key(|(seen, since, _)| (*seen, *since));
    match (expired.first(), rearm) {
        (Some((_, _, v)), _) => *v,
        (None, Some(at)) => Verdict::Rearm(at),
        (None, None) => Verdict::Clear,
    }
}

/// Handles one due deadline. Any instance may run this for any game; the compare-and-set
/// makes the forfeit (or abort) happen exactly once, and `settle_deadline` never drops a date
/// another instance set meanwhile.
pub async fn resolve_deadline(app: &App, game: &GameId, due: u64) -> Result<(), OpError> {
    let Some(mut view) = app.store.inspect_seats(game).await? else {
        app.store.settle_deadline(game, due, None).await?;
        return Ok(());
    };
    // The computer's step (its move, or its agreement to a rematch), which the instance that
    // scheduled it may have died before taking. Then the clocks as the step left them.
    if view.state.computer_turn().is_some() && computer::act(app, game).await?.is_some() {
        let Some(after) = app.store.inspect_seats(game).await? else {
            app.store.settle_deadline(game, due, None).await?;
            return Ok(());
        };
        view = after;
    }
    let verdict = decide(
        &view,
        app.config.forfeit_grace.as_millis() as u64,
        app.config.match_confirm.as_millis() as u64,
    );
    let actor = || Actor {
        player: &SYSTEM,
        seat: SeatCheck::None,
        limit: None,
        mid: None,
    };
    let start = Some((view.version, view.state.clone()));
    let next = match verdict {
        Verdict::Clear => None,
        Verdict::Rearm(at) => Some(at),
        Verdict::Forfeit(mark) => {
            let step = conceding(game, mark, EndReason::Forfeit);
            let r = apply(app, game, actor(), start, None, step).await;
            tolerate_race(r)?;
            tracing::info!(%game, %mark, "forfeit: player away past the grace period");
            metrics::counter!("forfeits_total").increment(1);
            None
        }
        Verdict::Abort => {
            let r = apply(app, game, actor(), start, None, |version, s| {
                if s.status != Status::Playing {
                    return Err(RuleError::GameOver);
                }
                let state = s.abort();
                let event = ServerMsg::Aborted {
                    game: game.clone(),
                    version,
                    state: state.clone(),
                };
                Ok((state, event))
            })
            .await;
            tolerate_race(r)?;
            tracing::info!(%game, "aborted: a player never arrived");
            None
        }
    };
    // A finished round not recorded yet (its instance died right after the end, or recording
    // this very forfeit failed): recorded here, by any instance, before the deadline is
    // settled, so that a failure leaves the deadline to try again.
    let ended = view.state.status == Status::Finished || matches!(verdict, Verdict::Forfeit(_));
    if ended && !view.state.ratings.is_empty() {
        super::profiles::record_round(app, game).await?;
    }
    // A step the computer still has to take (its rematch answer started a round it opens) is
    // due too: its own scheduling could not move this earlier date, which is settled here.
    let computer_next = view
        .state
        .computer_turn()
        .map(|_| view.now_ms + app.config.computer_delay.as_millis() as u64);
    let next = match (next, computer_next) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    app.store.settle_deadline(game, due, next).await?;
    Ok(())
}

/// Another instance (or a returning player) got there first: the rules now refuse the step,
/// and that is the right outcome.
fn tolerate_race(r: Result<Done, OpError>) -> Result<(), OpError> {
    match r {
        Ok(_) | Err(OpError::Rule(_)) | Err(OpError::UnknownGame) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A seat emptied: the player forfeits if not back within the grace period.
pub async fn start_forfeit_clock(app: &App, game: &GameId, change: &PresenceChange) {
    if change.left.x || change.left.o {
        forfeit_clock(app, game).await;
    }
}

/// Starts `game`'s forfeit clock: a player of it went and must be back within the grace.
pub(super) async fn forfeit_clock(app: &App, game: &GameId) {
    let at = wall_ms() + app.config.forfeit_grace.as_millis() as u64;
    if let Err(e) = write_date(app, game, DueDate::Own, at).await {
        tracing::warn!(%game, error = %e, "forfeit clock not started yet; will retry");
    }
}

/// Writes one of `game`'s due dates; one the store does not take is kept and written again by
/// [`retry_unwritten_dates`] (the earlier date wins, as in the store).
pub(super) async fn write_date(
    app: &App,
    game: &GameId,
    kind: DueDate,
    at: u64,
) -> StoreResult<()> {
    let written = set_date(app, game, kind, at).await;
    if written.is_err() {
        keep_unwritten(app, game.clone(), kind, at);
    }
    written
}

async fn set_date(app: &App, game: &GameId, kind: DueDate, at: u64) -> StoreResult<()> {
    match kind {
        DueDate::Own => app.store.set_deadline(game, at).await,
        DueDate::Match => app.store.set_match_clock(game, at).await,
    }
}

fn unwritten(app: &App) -> std::sync::MutexGuard<'_, HashMap<(GameId, DueDate), u64>> {
    app.unwritten_dates
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn keep_unwritten(app: &App, game: GameId, kind: DueDate, at: u64) {
    let mut unwritten = unwritten(app);
    if let Some(kept) = unwritten.get_mut(&(game.clone(), kind)) {
        *kept = (*kept).min(at);
    } else if unwritten.len() < UNWRITTEN_DATES_MAX {
        unwritten.insert((game, kind), at);
    } else {
        metrics::counter!("deadlines_dropped_total").increment(1);
    }
    metrics::gauge!("deadlines_unwritten").set(unwritten.len() as f64);
}

/// Writes again the due dates the store did not take. Stops at the first failure: Redis is
/// not answering, and the rest waits for the next tick rather than each for its own timeout.
pub async fn retry_unwritten_dates(app: &App) {
    let mut pending = std::mem::take(&mut *unwritten(app)).into_iter();
    for ((game, kind), at) in pending.by_ref() {
        if set_date(app, &game, kind, at).await.is_err() {
            keep_unwritten(app, game, kind, at);
            break;
        }
    }
    for ((game, kind), at) in pending {
        keep_unwritten(app, game, kind, at);
    }
    metrics::gauge!("deadlines_unwritten").set(unwritten(app).len() as f64);
}

/// Resolves up to `max` deadlines that are due, whichever instance set them.
pub async fn fire_due(app: &App, max: usize) {
    let due = match app.store.due_deadlines(max).await {
        Ok((_, due)) => due,
        Err(e) => {
            tracing::debug!(error = %e, "could not read deadlines");
            return;
        }
    };
    for (game, at) in due {
        if let Err(e) = resolve_deadline(app, &game, at).await {
            tracing::warn!(%game, error = %e, "deadline not resolved; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::Store;
    use crate::store::memory::MemoryStore;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use tictactoe_rules::{GameState, Seats};

    fn view(
        present: (bool, bool),
        seen: (bool, bool),
        away: (Option<u64>, Option<u64>),
    ) -> SeatsView {
        SeatsView {
            now_ms: 100_000,
            version: 3,
            state: GameState::matched("a", "b"),
            present: Seats {
                x: present.0,
                o: present.1,
            },
            seen: Seats {
                x: seen.0,
                o: seen.1,
            },
            away_since: Seats {
                x: away.0,
                o: away.1,
            },
        }
    }

    const GRACE: u64 = 30_000;
    const CONFIRM: u64 = 10_000;

    /// An instance on a memory store whose due-date writes can be made to fail.
    fn on_memory(forfeit_grace: std::time::Duration) -> (Arc<MemoryStore>, App, GameId) {
        let (store, app) = crate::app::on_memory_store(Config {
            forfeit_grace,
            ..Config::default()
        });
        (store, app, GameId::try_from("g1".to_string()).unwrap())
    }

    async fn due(store: &MemoryStore) -> Vec<(GameId, u64)> {
        store.due_deadlines(10).await.unwrap().1
    }

    #[tokio::test]
    async fn a_forfeit_clock_redis_did_not_take_is_started_by_a_later_tick() {
        let (store, app, game) = on_memory(std::time::Duration::ZERO);
        let before = wall_ms();
        store.failing_dates.store(1, Ordering::SeqCst);
        forfeit_clock(&app, &game).await;
        assert!(due(&store).await.is_empty());
        // Redis still away at the next tick: the date stays pending.
        store.failing_dates.store(1, Ordering::SeqCst);
        retry_unwritten_dates(&app).await;
        assert!(due(&store).await.is_empty());
        retry_unwritten_dates(&app).await;
        let due = due(&store).await;
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].0, game);
        // The clock runs from when the player left, not from when it was written.
        assert!(due[0].1 >= before && due[0].1 <= wall_ms(), "{due:?}");
        assert!(app.unwritten_dates.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unwritten_date_keeps_the_earliest_of_its_kind() {
        let (store, app, game) = on_memory(std::time::Duration::ZERO);
        store.failing_dates.store(3, Ordering::SeqCst);
        for (kind, at) in [
            (DueDate::Match, 500),
            (DueDate::Match, 300),
            (DueDate::Own, 700),
        ] {
            assert!(write_date(&app, &game, kind, at).await.is_err());
        }
        retry_unwritten_dates(&app).await;
        let mut dates: Vec<u64> = due(&store).await.into_iter().map(|(_, at)| at).collect();
        dates.sort_unstable();
        assert_eq!(dates, [300, 700]);
    }

    #[test]
    fn both_present_clears() {
        let v = view((true, true), (true, true), (None, None));
        assert_eq!(decide(&v, GRACE, CONFIRM), Verdict::Clear);
    }

    #[test]
    fn a_finished_game_clears_even_with_players_away() {
        let mut v = view((false, false), (true, true), (Some(0), Some(0)));
        v.state = v.state.concede(Mark::X, EndReason::Resign).unwrap();
        assert_eq!(decide(&v, GRACE, CONFIRM), Verdict::Clear);
    }

    #[test]
    fn away_within_grace_rearms_at_the_end_of_grace() {
        let v = view((true, false), (true, true), (None, Some(90_000)));
        assert_eq!(decide(&v, GRACE, CONFIRM), Verdict::Rearm(120_000));
    }

    #[test]
    fn away_past_grace_forfeits() {
        let v = view((true, false), (true, true), (None, Some(70_000)));
        assert_eq!(decide(&v, GRACE, CONFIRM), Verdict::Forfeit(Mark::O));
    }

    #[test]
    fn when_both_are_gone_the_one_away_longest_forfeits() {
        let v = view((false, false), (true, true), (Some(60_000), Some(50_000)));
        assert_eq!(decide(&v, GRACE, CONFIRM), Verdict::Forfeit(Mark::O));
        let v = view((false, false), (true, true), (Some(50_000), Some(60_000)));
        assert_eq!(decide(&v, GRACE, CONFIRM), Verdict::Forfeit(Mark::X));
    }

    #[test]
    fn a_player_who_never_arrived_aborts_after_the_confirmation_time() {
        let v = view((true, false), (true, false), (None, Some(95_000)));
        assert_eq!(decide(&v, GRACE, CONFIRM), Verdict::Rearm(105_000));
        let v = view((true, false), (true, false), (None, Some(90_000)));
        assert_eq!(decide(&v, GRACE, CONFIRM), Verdict::Abort);
        // Even if the other player has also been away past grace.
        let v = view((false, false), (true, false), (Some(0), Some(90_000)));
        assert_eq!(decide(&v, GRACE, CONFIRM), Verdict::Abort);
    }

    #[test]
    fn the_computers_seat_never_forfeits_nor_aborts() {
        use tictactoe_rules::computer::Level;
        let mut v = view((true, false), (true, false), (None, Some(0)));
        v.state = GameState::against_computer("a", Level::Easy, "c");
        assert_eq!(decide(&v, GRACE, CONFIRM), Verdict::Clear);
        // The player, though, forfeits to it like to anyone.
        v.present.x = false;
        v.away_since.x = Some(0);
        assert_eq!(decide(&v, GRACE, CONFIRM), Verdict::Forfeit(Mark::X));
    }

    #[test]
    fn an_absent_seat_without_a_clock_counts_from_now() {
        let v = view((true, false), (true, true), (None, None));
        assert_eq!(decide(&v, GRACE, CONFIRM), Verdict::Rearm(130_000));
    }
}
