//! Game operations: the rules applied to stored games. Each operation computes the next state
//! with [`crate::rules`] from the newest state this instance knows, and commits it with one
//! compare-and-set ([`Store::transition`]); on a stale version it recomputes from the state
//! the store returned. Sessions and the background tasks both go through here.

use crate::app::App;
use crate::hub::InstanceMsg;
use crate::ids::{GameId, PlayerId};
use crate::protocol::{ErrorCode, LobbyGame, ServerMsg};
use crate::ratelimit::Rule;
use crate::rules::{EndReason, GameState, Mark, RuleError, Seats, Status};
use crate::store::{Applied, SeatCheck, SeatsView, StoreError, Ticket, Transition};

/// Compare-and-set attempts before giving up on a game that keeps changing underneath.
const ATTEMPTS: usize = 5;
/// Fresh ids tried before giving up on creating a game.
const CREATE_ATTEMPTS: usize = 5;

/// Why an operation did not happen. Everything except `Internal` is an expected answer.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    Rule(#[from] RuleError),
    #[error("no such game")]
    UnknownGame,
    #[error("that is not your seat")]
    NotSeated,
    #[error("too many requests")]
    RateLimited { retry_after_ms: u64 },
    #[error("the game service is unavailable, try again")]
    Unavailable,
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => OpError::Unavailable,
            other => OpError::Internal(other.to_string()),
        }
    }
}

impl OpError {
    pub fn code(&self) -> ErrorCode {
        match self {
            OpError::Rule(r) => match r {
                RuleError::CellOutOfRange => ErrorCode::CellOutOfRange,
                RuleError::CellOccupied => ErrorCode::CellOccupied,
                RuleError::NotYourTurn => ErrorCode::NotYourTurn,
                RuleError::NotStarted => ErrorCode::NotStarted,
                RuleError::GameOver => ErrorCode::GameOver,
                RuleError::RoundInProgress => ErrorCode::RoundInProgress,
                RuleError::SeatTaken => ErrorCode::NotYourSeat,
                RuleError::Aborted => ErrorCode::Aborted,
            },
            OpError::UnknownGame => ErrorCode::UnknownGame,
            OpError::NotSeated => ErrorCode::NotYourSeat,
            OpError::RateLimited { .. } => ErrorCode::RateLimited,
            OpError::Unavailable => ErrorCode::Unavailable,
            OpError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The error as the client sees it: internals stay in the log.
    pub fn to_msg(&self, req: Option<u64>) -> ServerMsg {
        let message = match self {
            OpError::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        };
        ServerMsg::Error {
            req,
            game: None,
            code: self.code(),
            message,
            retry_after_ms: match self {
                OpError::RateLimited { retry_after_ms } => Some(*retry_after_ms),
                _ => None,
            },
        }
    }
}

/// A committed transition.
#[derive(Debug)]
pub struct Done {
    pub version: u64,
    /// True when the move id had already been applied: nothing new happened.
    pub duplicate: bool,
}

/// Who acts, and what the store must check about them.
pub struct Actor<'a> {
    pub player: &'a PlayerId,
    pub seat: SeatCheck,
    pub limit: Option<Rule>,
    pub mid: Option<&'a str>,
}

impl<'a> Actor<'a> {
    /// The player holding `mark`, with no budget or move id to check.
    fn seated(player: &'a PlayerId, mark: Mark) -> Actor<'a> {
        Actor {
            player,
            seat: SeatCheck::Holds(mark),
            limit: None,
            mid: None,
        }
    }
}

/// The system acts for nobody (forfeits, aborts).
static SYSTEM: std::sync::LazyLock<PlayerId> =
    std::sync::LazyLock::new(|| PlayerId::try_from("system".to_string()).expect("valid id"));

pub fn lobby_entry(game: &GameId, state: &GameState) -> LobbyGame {
    LobbyGame {
        game: game.clone(),
        status: state.status,
        players: state.players.clone(),
        round: state.round,
    }
}

/// Records where a game stands in the lobby and announces the change to every instance.
async fn update_lobby(app: &App, game: &GameId, state: &GameState) -> Result<(), StoreError> {
    let entry = lobby_entry(game, state);
    let event = ServerMsg::LobbyChanged {
        entry: entry.clone(),
    };
    app.store.lobby_update(&entry, event.to_json().into()).await
}

/// Loads a game into the hub's cache and returns it.
pub async fn load(app: &App, game: &GameId) -> Result<(u64, GameState), OpError> {
    let sg = app
        .store
        .load_game(game)
        .await?
        .ok_or(OpError::UnknownGame)?;
    app.hub.observe(game, sg.version, &sg.state);
    Ok((sg.version, sg.state))
}

/// Applies `step` to the game with compare-and-set, retrying on a stale version. `start` is
/// the state to begin from; without it the hub's cache is used, or the store when the cache
/// is missing or older than the client's `hint`.
pub async fn apply<F>(
    app: &App,
    game: &GameId,
    actor: Actor<'_>,
    start: Option<(u64, GameState)>,
    hint: Option<u64>,
    step: F,
) -> Result<Done, OpError>
where
    F: Fn(u64, &GameState) -> Result<(GameState, ServerMsg), RuleError>,
{
    // `fresh`: the state was just read from the store, not taken from a cache that may lag
    // behind what the client has already seen through another instance.
    let (mut current, mut fresh) = match start.or_else(|| app.hub.cached(game)) {
        Some(c) if hint.is_none_or(|h| h <= c.0) => (c, false),
        _ => (load(app, game).await?, true),
    };
    for _ in 0..ATTEMPTS {
        let (state, event) = match step(current.0 + 1, &current.1) {
            Ok(next) => next,
            Err(_) if !fresh => {
                // Refused on cached state: confirm against the store before answering.
                current = load(app, game).await?;
                fresh = true;
                continue;
            }
            Err(rule) => {
                // A retried move whose first attempt went through now breaks the rules (its
                // cell is taken): recognise it by its id and acknowledge it instead.
                if let Some(mid) = actor.mid
                    && let Some(version) = app.store.applied_move(game, actor.player, mid).await?
                {
                    return Ok(Done {
                        version,
                        duplicate: true,
                    });
                }
                return Err(rule.into());
            }
        };
        let ttl = if state.is_over() {
            app.config.finished_game_ttl
        } else {
            app.config.game_ttl
        };
        let t = Transition {
            game,
            expected: current.0,
            actor: actor.player,
            seat: actor.seat,
            state: &state,
            event: event.to_json().into(),
            ttl,
            limit: actor.limit,
            mid: actor.mid,
        };
        match app.store.transition(&t).await? {
            Applied::Ok { version } => {
                app.hub.observe(game, version, &state);
                metrics::counter!("transitions_total", "result" => "ok").increment(1);
                after_commit(app, game, &current.1, &state).await;
                return Ok(Done {
                    version,
                    duplicate: false,
                });
            }
            Applied::Stale(sg) => {
                metrics::counter!("transitions_total", "result" => "stale").increment(1);
                app.hub.observe(game, sg.version, &sg.state);
                current = (sg.version, sg.state);
                fresh = true;
            }
            Applied::Duplicate { version } => {
                return Ok(Done {
                    version,
                    duplicate: true,
                });
            }
            Applied::NotSeated => return Err(OpError::NotSeated),
            Applied::SeatTaken => return Err(RuleError::SeatTaken.into()),
            Applied::UnknownGame => return Err(OpError::UnknownGame),
            Applied::RateLimited { retry_after_ms } => {
                return Err(OpError::RateLimited { retry_after_ms });
            }
        }
    }
    Err(OpError::Unavailable)
}

/// Keeps the lobby and the clocks in step with a change of status. Best effort: the game
/// itself is already committed, and a lobby entry also expires on its own.
async fn after_commit(app: &App, game: &GameId, before: &GameState, after: &GameState) {
    if before.status == after.status {
        return;
    }
    if let Err(e) = update_lobby(app, game, after).await {
        tracing::warn!(%game, error = %e, "lobby update failed");
    }
    // Only when O first sits down: a rematch starts because both players just asked for it,
    // so both are there and the clocks have nothing to watch.
    if before.status == Status::Waiting && after.status == Status::Playing {
        start_clocks(app, game).await;
    }
}

/// The game began: start the away clocks of seats whose player is not here yet, and look at
/// the game again after the match-confirmation time.
async fn start_clocks(app: &App, game: &GameId) {
    let result = async {
        match app.store.inspect_seats(game).await? {
            Some(view) => {
                let at = view.now_ms + app.config.match_confirm.as_millis() as u64;
                app.store.set_deadline(game, at).await
            }
            None => Ok(()),
        }
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(%game, error = %e, "could not start the game's clocks");
    }
}

/// Creates a game with `x` seated (and `o` too, for quick match). Returns its id.
pub async fn create(
    app: &App,
    x: (&PlayerId, &str),
    o: Option<(&PlayerId, &str)>,
) -> Result<(GameId, u64, GameState), OpError> {
    let state = match o {
        None => GameState::new(x.1),
        Some((_, o_name)) => GameState::matched(x.1, o_name),
    };
    let seats = Seats {
        x: Some(x.0.clone()),
        o: o.map(|(p, _)| p.clone()),
    };
    for _ in 0..CREATE_ATTEMPTS {
        let game = GameId::generate();
        let event = ServerMsg::Created {
            game: game.clone(),
            version: 1,
            state: state.clone(),
        }
        .to_json();
        if app
            .store
            .create_game(&game, &seats, &state, event.into(), app.config.game_ttl)
            .await?
        {
            metrics::counter!("games_created_total").increment(1);
            if let Err(e) = update_lobby(app, &game, &state).await {
                tracing::warn!(%game, error = %e, "lobby update failed");
            }
            if state.status == Status::Playing {
                start_clocks(app, &game).await;
            }
            return Ok((game, 1, state));
        }
    }
    Err(OpError::Internal("could not find a free game id".into()))
}

/// Takes the free O seat for `player`. `None` if someone else took it first.
pub async fn claim_o(
    app: &App,
    game: &GameId,
    player: &PlayerId,
    name: &str,
    start: (u64, GameState),
) -> Result<Option<u64>, OpError> {
    let actor = Actor {
        player,
        seat: SeatCheck::Claims(Mark::O),
        limit: None,
        mid: None,
    };
    let result = apply(app, game, actor, Some(start), None, |version, s| {
        let state = s.seat_o(name)?;
        let event = ServerMsg::Seated {
            game: game.clone(),
            version,
            mark: Mark::O,
            state: state.clone(),
        };
        Ok((state, event))
    })
    .await;
    match result {
        Ok(done) => Ok(Some(done.version)),
        Err(OpError::Rule(RuleError::SeatTaken)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Plays a move for the player holding `mark`, within its move budget.
pub async fn play(
    app: &App,
    game: &GameId,
    player: &PlayerId,
    mark: Mark,
    cell: crate::rules::Cell,
    mid: Option<&str>,
    hint: Option<u64>,
) -> Result<Done, OpError> {
    let actor = Actor {
        player,
        seat: SeatCheck::Holds(mark),
        limit: Some(app.config.move_rule()),
        mid,
    };
    let done = apply(app, game, actor, None, hint, |version, s| {
        let state = s.play(mark, cell)?;
        let event = ServerMsg::Moved {
            game: game.clone(),
            version,
            mark,
            cell,
            state: state.clone(),
        };
        Ok((state, event))
    })
    .await;
    let result = match &done {
        Ok(d) if d.duplicate => "duplicate".to_string(),
        Ok(_) => "accepted".to_string(),
        Err(e) => format!("{:?}", e.code()).to_lowercase(),
    };
    metrics::counter!("moves_total", "result" => result).increment(1);
    done
}

pub async fn resign(
    app: &App,
    game: &GameId,
    player: &PlayerId,
    mark: Mark,
) -> Result<Done, OpError> {
    let step = conceding(game, mark, EndReason::Resign);
    apply(app, game, Actor::seated(player, mark), None, None, step).await
}

/// The step by which `mark` loses the round without a line (resigned, or away too long).
fn conceding(
    game: &GameId,
    mark: Mark,
    reason: EndReason,
) -> impl Fn(u64, &GameState) -> Result<(GameState, ServerMsg), RuleError> + '_ {
    move |version, s| {
        let state = s.concede(mark, reason)?;
        let event = ServerMsg::Conceded {
            game: game.clone(),
            version,
            mark,
            reason,
            state: state.clone(),
        };
        Ok((state, event))
    }
}

pub async fn rematch(
    app: &App,
    game: &GameId,
    player: &PlayerId,
    mark: Mark,
) -> Result<Done, OpError> {
    apply(
        app,
        game,
        Actor::seated(player, mark),
        None,
        None,
        |version, s| {
            let (state, began) = s.request_rematch(mark)?;
            let event = if began {
                ServerMsg::RoundStarted {
                    game: game.clone(),
                    version,
                    round: state.round,
                    state: state.clone(),
                }
            } else {
                ServerMsg::RematchRequested {
                    game: game.clone(),
                    version,
                    mark,
                    state: state.clone(),
                }
            };
            Ok((state, event))
        },
    )
    .await
}

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
        if *view.present.get(m) {
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
    let Some(view) = app.store.inspect_seats(game).await? else {
        app.store.settle_deadline(game, due, None).await?;
        return Ok(());
    };
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

/// Queues `me` for quick match, or pairs it with the longest-waiting ticket: the game is
/// created with that player as X, who hears of it through its instance's channel.
pub async fn quick_match(app: &App, me: &Ticket) -> Result<Option<GameId>, OpError> {
    let fresh = app.config.lease_ttl;
    let Some(other) = app.store.match_enqueue(me, fresh).await? else {
        return Ok(None);
    };
    let created = create(
        app,
        (&other.player, &other.name),
        Some((&me.player, &me.name)),
    )
    .await;
    let game = match created {
        Ok((game, _, _)) => game,
        Err(e) => {
            // Put the other player back: it must not be lost because this instance failed.
            let _ = app.store.match_enqueue(&other, fresh).await;
            return Err(e);
        }
    };
    let msg = InstanceMsg::MatchFound {
        conn: other.conn,
        game: game.clone(),
        you: Mark::X,
    };
    let channel = app.store.keys().instance_channel(&other.lease);
    let json = serde_json::to_string(&msg).map_err(|e| OpError::Internal(e.to_string()))?;
    // If this publish is lost, the other player's ticket refresh notices it is no longer
    // queued and the match-confirmation clock aborts the game: nobody stays paired with a
    // player who never heard of it.
    if let Err(e) = app.store.publish(&channel, json.into()).await {
        tracing::warn!(%game, error = %e, "could not tell the matched player");
    }
    metrics::counter!("matches_total").increment(1);
    Ok(Some(game))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn an_absent_seat_without_a_clock_counts_from_now() {
        let v = view((true, false), (true, true), (None, None));
        assert_eq!(decide(&v, GRACE, CONFIRM), Verdict::Rearm(130_000));
    }

    #[test]
    fn errors_map_to_their_codes_without_leaking_internals() {
        let e = OpError::Internal("redis said: secret detail".into());
        let msg = e.to_msg(Some(3)).to_json();
        assert!(msg.contains("\"code\":\"internal\""));
        assert!(!msg.contains("secret"));
        let e = OpError::RateLimited {
            retry_after_ms: 250,
        };
        assert!(e.to_msg(None).to_json().contains("\"retry_after_ms\":250"));
        assert_eq!(
            OpError::from(RuleError::CellOccupied).code(),
            ErrorCode::CellOccupied
        );
    }
}
