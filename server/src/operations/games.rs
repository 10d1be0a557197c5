//! Game transitions: the rules applied to stored games. Each computes the next state with
//! [`tictactoe_rules`] from the newest state this instance knows and commits it with one
//! compare-and-set ([`Store::transition`](crate::store::Store::transition)); on a stale
//! version it recomputes from the state the store returned.

use super::computer;
use super::lobby::{lobby_change, update_lobby};
use super::{Done, OpError};
use crate::app::{App, DueDate};
use crate::ratelimit::{Decision, Rule};
use crate::store::{
    Applied, Creation, Hold, Missed, SeatCheck, Store, StoreError, StoredGame, Transition,
};
use bytes::Bytes;
use std::net::IpAddr;
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::{ChatLine, Presence, ServerMsg};
use tictactoe_rules::computer::Level;
use tictactoe_rules::{EndReason, GameState, Mark, RuleError, Seats, Status};

/// Compare-and-set attempts before giving up on a game that keeps changing underneath.
const ATTEMPTS: usize = 5;
/// Fresh ids tried before giving up on creating a game.
const CREATE_ATTEMPTS: usize = 5;

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
pub(super) static SYSTEM: std::sync::LazyLock<PlayerId> =
    std::sync::LazyLock::new(|| PlayerId::try_from("system".to_string()).expect("valid id"));

/// Loads a game into the hub's cache and returns it.
pub async fn load(app: &App, game: &GameId) -> Result<(u64, GameState), OpError> {
    let sg = load_stored(app, game).await?;
    Ok((sg.version, sg.state))
}

/// [`load`], with who holds the seats.
pub(super) async fn load_stored(app: &App, game: &GameId) -> Result<StoredGame, OpError> {
    let sg = app
        .store
        .load_game(game)
        .await?
        .ok_or(OpError::UnknownGame)?;
    app.hub.observe(game, sg.version, &sg.state);
    app.hub.observe_seats(game, &sg.seats);
    Ok(sg)
}

/// The step by which `mark` plays `cell`, chosen on a board showing version `seen` (if
/// known): the move of a player and of the computer alike.
pub(super) fn moving(
    game: &GameId,
    s: &GameState,
    mark: Mark,
    cell: tictactoe_rules::Cell,
    seen: Option<u64>,
    version: u64,
) -> Result<(GameState, ServerMsg), RuleError> {
    let state = s.play_seen(mark, cell, seen, version)?;
    let event = ServerMsg::Moved {
        game: game.clone(),
        version,
        mark,
        cell,
        state: state.clone(),
    };
    Ok((state, event))
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
                    // Its first attempt may have died with its instance before its event went
                    // out (with REDIS_WAIT_REPLICAS, events go out only once confirmed): publish
                    // what the log holds there, once confirmed. Subscribers drop a version they
                    // already have.
                    publish_logged(app.store.as_ref(), game, version).await;
                    return Ok(Done {
                        version,
                        duplicate: true,
                        event: None,
                    });
                }
                return Err(rule.into());
            }
        };
        // The computer's next step is due in the store before the step that calls for it is
        // committed: whichever instance finds it due plays it, even if this one dies now.
        let computer_due = match state.computer_turn() {
            Some(_) => Some(computer::schedule(app, game).await?),
            None => None,
        };
        let ttl = if state.is_over() {
            app.config.finished_game_ttl
        } else {
            app.config.game_ttl
        };
        super::profiles::guard_round_end(app, game, &current.1, &state).await;
        // A change of status moves the game in the lobby: in the same step where the store
        // can, else right after (`after_commit`).
        let lobby = (current.1.status != state.status && app.store.lobby_with_transitions())
            .then(|| lobby_change(game, &state));
        let event: Bytes = event.to_json().into();
        let t = Transition {
            game,
            expected: current.0,
            actor: actor.player,
            seat: actor.seat,
            state: &state,
            event: event.clone(),
            ttl,
            limit: actor.limit,
            mid: actor.mid,
            lobby: lobby.as_ref(),
        };
        let applied = match app.store.transition(&t).await {
            Ok(applied) => applied,
            Err(StoreError::Unconfirmed { version }) => {
                publish_when_confirmed(app, game, version);
                return Err(OpError::Unavailable);
            }
            Err(e) => return Err(e.into()),
        };
        match applied {
            Applied::Ok { version } => {
                app.hub.observe(game, version, &state);
                app.move_counters.transitions_ok.increment(1);
                after_commit(app, game, &current.1, &state, lobby.is_some()).await;
                if let Some(due) = computer_due {
                    computer::act_when_due(app, game, due);
                }
                return Ok(Done {
                    version,
                    duplicate: false,
                    event: Some(event),
                });
            }
            Applied::Stale(sg) => {
                app.move_counters.transitions_stale.increment(1);
                app.hub.observe(game, sg.version, &sg.state);
                current = (sg.version, sg.state);
                fresh = true;
            }
            Applied::Duplicate { version } => {
                return Ok(Done {
                    version,
                    duplicate: true,
                    event: None,
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
    metrics::counter!("transitions_contended_total").increment(1);
    Err(OpError::Contended)
}

/// Publishes what the log holds at `version` once the replicas confirm it, for a repeated
/// request (or a catch-up) whose first attempt may have died with its instance before its
/// event went out. Best effort: subscribers drop a version they already have.
async fn publish_logged(store: &dyn Store, game: &GameId, version: u64) {
    if let Err(e) = store.publish_confirmed(game, version, Bytes::new()).await {
        tracing::warn!(%game, version, error = %e, "could not publish a logged event again");
    }
}

/// Follow-ups under way for events the replicas had not confirmed: bounded, so that a long
/// replica outage under load cannot pile them up (one left out is announced by the next
/// event's hole, or by a retry).
static FOLLOW_UPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
const MAX_FOLLOW_UPS: usize = 1024;
/// How often, and how many times, a follow-up asks the replicas again.
const FOLLOW_UP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
const FOLLOW_UP_TRIES: u32 = 120;

/// Runs a follow-up in the background, within [`MAX_FOLLOW_UPS`]; false if it was left out.
fn follow_up(task: impl std::future::Future<Output = ()> + Send + 'static) -> bool {
    use std::sync::atomic::Ordering;
    if FOLLOW_UPS.fetch_add(1, Ordering::Relaxed) >= MAX_FOLLOW_UPS {
        FOLLOW_UPS.fetch_sub(1, Ordering::Relaxed);
        metrics::counter!("publish_follow_ups_dropped_total").increment(1);
        return false;
    }
    tokio::spawn(async move {
        task.await;
        FOLLOW_UPS.fetch_sub(1, Ordering::Relaxed);
    });
    true
}

/// A transition the replicas did not confirm in time is in the log but its event was not
/// published (a failover could still take it back, and subscribers would see its version
/// twice). Nobody may retry it (a forfeit, a rematch, a seat: only moves carry an id), so its
/// event goes out here once the replicas confirm; if a failover took it back, the log holds
/// something else at that version, confirmed in turn, and that goes out instead.
fn publish_when_confirmed(app: &App, game: &GameId, version: u64) {
    let store = app.store.clone();
    let task_game = game.clone();
    let started = follow_up(async move {
        for _ in 0..FOLLOW_UP_TRIES {
            tokio::time::sleep(FOLLOW_UP_EVERY).await;
            if let Ok(true) = store
                .publish_confirmed(&task_game, version, Bytes::new())
                .await
            {
                return;
            }
        }
        tracing::warn!(game = %task_game, version, "the replicas never confirmed an event: not published");
    });
    if !started {
        tracing::warn!(%game, version, "unconfirmed event left to the next event or retry: too many follow-ups");
    }
}

/// Keeps the lobby (unless the transition recorded it) and the clocks in step with a change
/// of status. Best effort: the game itself is already committed, and a lobby entry also
/// expires on its own.
async fn after_commit(
    app: &App,
    game: &GameId,
    before: &GameState,
    after: &GameState,
    lobby_recorded: bool,
) {
    if before.status == after.status {
        return;
    }
    if !lobby_recorded && let Err(e) = update_lobby(app, game, after, None).await {
        tracing::warn!(%game, error = %e, "lobby update failed");
    }
    // Only when O first sits down: a rematch starts because both players just asked for it,
    // so both are there and the clocks have nothing to watch.
    if before.status == Status::Waiting && after.status == Status::Playing {
        start_clocks(app, game).await;
    }
    // The round's deadline (`guard_round_end`) records it if this fails or never runs.
    if super::profiles::ends_recorded_round(before, after)
        && let Err(e) = super::profiles::record_round(app, game).await
    {
        tracing::warn!(%game, error = %e, "round not recorded yet; its deadline will");
    }
}

/// The game began: start the away clocks of seats whose player is not here yet, and look at
/// the game again after the match-confirmation time, unless both players are there by then
/// (`presence::enter` clears the clock when the second one arrives).
async fn start_clocks(app: &App, game: &GameId) {
    let result = async {
        match app.store.inspect_seats(game).await? {
            Some(view) => {
                let at = view.now_ms + app.config.match_confirm.as_millis() as u64;
                super::deadlines::write_date(app, game, DueDate::Match, at).await
            }
            None => Ok(()),
        }
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(%game, error = %e, "could not start the game's clocks");
    }
}

/// What kind of game [`open`] opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Opening {
    /// Against the computer at this level: it takes O at once and the round starts.
    pub computer: Option<Level>,
    /// A rated game.
    pub rated: bool,
}

/// A game [`open`] opened.
#[derive(Debug)]
pub struct Opened {
    pub game: GameId,
    /// True when a create with the same client create id had already opened it: nothing
    /// new was created.
    pub duplicate: bool,
}

/// Opens a game with `x` seated, waiting for an opponent: within the player's and the
/// address's creation budgets and the player's cap on waiting games.
///
/// With `cid`, the client's create id, the game's id is derived from the player and `cid`,
/// and the store keeps `cid` with the game in the step that creates it: a retry (after
/// `unavailable`, on any instance) finds the game its first attempt created, is charged
/// nothing and creates nothing.
pub async fn open(
    app: &App,
    x: (&PlayerId, &str),
    ip: IpAddr,
    cid: Option<&str>,
    opening: Opening,
) -> Result<Opened, OpError> {
    if opening.rated && opening.computer.is_some() {
        return Err(OpError::ComputerNotRated);
    }
    if opening.rated {
        super::profiles::require(app, x.0).await?;
    }
    if let Some(cid) = cid
        && let Some(game) = created_before(app, x.0, cid).await?
    {
        metrics::counter!("creates_duplicate_total").increment(1);
        return Ok(Opened {
            game,
            duplicate: true,
        });
    }
    let key = app.store.keys().rate("create", x.0.as_str());
    if let Decision::Deny { retry_after_us } =
        app.store.rate(&key, app.config.create_rule()).await?
    {
        let retry_after_ms = Decision::retry_after_ms(retry_after_us);
        return Err(OpError::RateLimited { retry_after_ms });
    }
    if let Err(retry_after_ms) = app
        .limit_ip("ip-create", ip, app.config.ip_create_rule())
        .await
    {
        return Err(OpError::RateLimited { retry_after_ms });
    }
    for attempt in 0..CREATE_ATTEMPTS {
        let game = match cid {
            Some(cid) => requested_id(x.0, cid, attempt),
            None => GameId::generate(),
        };
        // A game against the computer never waits for an opponent.
        let waits = opening.computer.is_none();
        if waits {
            hold_waiting(app, x.0, &game).await?;
        }
        let (state, o) = match opening.computer {
            None => (GameState::new(x.1), None),
            Some(level) => {
                let state = GameState::against_computer(x.1, level, computer::name(level));
                (state, Some(computer::COMPUTER.clone()))
            }
        };
        let rated = if opening.rated { Rated::Yes } else { Rated::No };
        let seats = Seats {
            x: Some(x.0.clone()),
            o,
        };
        match insert(app, &game, state, seats, Some(ip), cid, rated).await {
            Ok(Creation::Created) => {
                return Ok(Opened {
                    game,
                    duplicate: false,
                });
            }
            // The first attempt got there while this one was on its way.
            Ok(Creation::Duplicate) => {
                return Ok(Opened {
                    game,
                    duplicate: true,
                });
            }
            Ok(Creation::Taken) if waits => release_waiting(app, x.0, &game).await,
            Ok(Creation::Taken) => {}
            // The game may exist after all: it stays held until the next check looks.
            Err(OpError::Unavailable) => return Err(OpError::Unavailable),
            Err(e) => {
                if waits {
                    release_waiting(app, x.0, &game).await;
                }
                return Err(e);
            }
        }
    }
    Err(OpError::Internal("could not find a free game id".into()))
}

/// The id the `attempt`th try of `player`'s create `cid` gives its game: a retry must find
/// the game without anything but the request to go on, and the store cannot look it up by
/// `cid` in the step that creates it (on Redis Cluster the game's keys are in the game's
/// slot, not the player's). The player's id is part of it, so no one else's create can make
/// it.
fn requested_id(player: &PlayerId, cid: &str, attempt: usize) -> GameId {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    // Player ids hold no NUL, so the fields cannot run into each other.
    h.update(b"create\0");
    h.update(player.as_str().as_bytes());
    h.update(b"\0");
    h.update(attempt.to_be_bytes());
    h.update(cid.as_bytes());
    GameId::from_digest(&h.finalize().into())
}

/// The game `player`'s create `cid` already made, if any: the first id of the sequence
/// [`open`] tries that is not someone else's game. (The create script checks the `cid`
/// itself; X is what can be read here, and an id derived from this player and `cid` with
/// this player as X is that create's game.)
async fn created_before(
    app: &App,
    player: &PlayerId,
    cid: &str,
) -> Result<Option<GameId>, OpError> {
    for attempt in 0..CREATE_ATTEMPTS {
        let game = requested_id(player, cid, attempt);
        match app.store.load_game(&game).await? {
            None => return Ok(None),
            Some(sg) if sg.seats.x.as_ref() == Some(player) => return Ok(Some(game)),
            Some(_) => {}
        }
    }
    Ok(None)
}

/// Counts `game` among the player's waiting games, unless it already has as many as
/// allowed. Held games that no longer wait (joined, finished, expired, or never created
/// because a write timed out) are dropped first: nothing else has to release them.
async fn hold_waiting(app: &App, player: &PlayerId, game: &GameId) -> Result<(), OpError> {
    let max = app.config.max_waiting_games;
    let ttl = app.config.game_ttl;
    let held = match app.store.hold_waiting(player, game, max, ttl).await? {
        Hold::Held => return Ok(()),
        Hold::Full(held) => held,
    };
    let mut freed = false;
    for g in held {
        let waiting = app
            .store
            .load_game(&g)
            .await?
            .is_some_and(|sg| sg.state.status == Status::Waiting);
        if !waiting {
            app.store.release_waiting(player, &g).await?;
            freed = true;
        }
    }
    if freed && app.store.hold_waiting(player, game, max, ttl).await? == Hold::Held {
        return Ok(());
    }
    metrics::counter!("creates_refused_total", "reason" => "too_many_waiting").increment(1);
    Err(OpError::TooManyWaiting { max })
}

async fn release_waiting(app: &App, player: &PlayerId, game: &GameId) {
    if let Err(e) = app.store.release_waiting(player, game).await {
        tracing::warn!(%game, error = %e, "could not release a waiting game");
    }
}

/// Creates a game with both players seated, for quick match. Returns its id.
pub async fn create_matched(
    app: &App,
    x: (&PlayerId, &str),
    o: (&PlayerId, &str),
) -> Result<GameId, OpError> {
    for _ in 0..CREATE_ATTEMPTS {
        let game = GameId::generate();
        let state = GameState::matched(x.1, o.1);
        let rated = Rated::IfBothHaveProfiles;
        let seats = Seats {
            x: Some(x.0.clone()),
            o: Some(o.0.clone()),
        };
        if insert(app, &game, state, seats, None, None, rated).await? == Creation::Created {
            return Ok(game);
        }
    }
    Err(OpError::Internal("could not find a free game id".into()))
}

/// Whether a new game is rated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rated {
    Yes,
    No,
    /// Quick match: rated when both players it pairs have profiles, casual otherwise.
    IfBothHaveProfiles,
}

/// Creates game `game` in `state` with `x` seated (and `o` too, for quick match and the
/// computer), unless the id is taken (or, with the client create id `cid`, that create
/// already made it). `ip` is the address of X's client, for the lobby's share per address.
async fn insert(
    app: &App,
    game: &GameId,
    mut state: GameState,
    seats: Seats<Option<PlayerId>>,
    ip: Option<IpAddr>,
    cid: Option<&str>,
    rated: Rated,
) -> Result<Creation, OpError> {
    state.ratings = super::profiles::seat_ratings(app, &seats).await?;
    state.rated = match rated {
        Rated::Yes => true,
        Rated::No => false,
        Rated::IfBothHaveProfiles => state.ratings.x.is_some() && state.ratings.o.is_some(),
    };
    let event = ServerMsg::Created {
        game: game.clone(),
        version: 1,
        state: state.clone(),
    }
    .to_json();
    let created = app
        .store
        .create_game(game, &seats, &state, event.into(), app.config.game_ttl, cid)
        .await?;
    if created != Creation::Created {
        return Ok(created);
    }
    metrics::counter!("games_created_total").increment(1);
    let owner = seats.x.as_ref().zip(ip);
    if let Err(e) = update_lobby(app, game, &state, owner).await {
        tracing::warn!(%game, error = %e, "lobby update failed");
    }
    if state.status == Status::Playing {
        start_clocks(app, game).await;
    }
    Ok(Creation::Created)
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
    // O's rating beside its name; and a rated game seats only a player with a profile.
    let rating = super::profiles::rating_of(app, player).await?;
    if start.1.rated && rating.is_none() {
        return Err(super::profiles::ProfileError::Required.into());
    }
    let result = apply(app, game, actor, Some(start), None, |version, s| {
        let mut state = s.seat_o(name)?;
        state.ratings.o = rating;
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
    cell: tictactoe_rules::Cell,
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
        moving(game, s, mark, cell, hint, version)
    })
    .await;
    match &done {
        Ok(d) if d.duplicate => app.move_counters.duplicate.increment(1),
        Ok(_) => app.move_counters.accepted.increment(1),
        Err(e) => {
            let code = format!("{:?}", e.code()).to_lowercase();
            metrics::counter!("moves_total", "result" => code).increment(1);
        }
    }
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
pub(super) fn conceding(
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

/// `mark` asks for the next round. Asking again (a retry after `unavailable`, a second
/// click) is acknowledged as a duplicate at the game's version: a new version for a request
/// that changes nothing would only be noise in every client's event stream.
///
/// The request that begins the next round first records the round that ends here
/// (idempotent: usually done already), and the next round begins with the ratings that
/// recording left. Only games with a profile pay for that: one whose state shows a rating, or
/// whose requester `has_profile` (one made since the round began: a first request then puts
/// the requester's rating in the state, so that the request beginning the round reads both).
pub async fn rematch(
    app: &App,
    game: &GameId,
    player: &PlayerId,
    mark: Mark,
    has_profile: bool,
) -> Result<Done, OpError> {
    let cached = app.hub.cached(game);
    // Against the computer, the player's request is the first and the computer's answer
    // begins the round right after it: the player's does the work.
    let begins = cached.as_ref().is_none_or(|(_, s)| {
        s.status == Status::Finished && (*s.rematch.get(mark.other()) || s.computer.is_some())
    });
    let rated_before = cached.as_ref().is_none_or(|(_, s)| !s.ratings.is_empty());
    let mut ratings = None;
    let mut mine = None;
    if begins && (rated_before || has_profile) {
        ratings = Some(next_round_ratings(app, game).await?);
    } else if !begins
        && has_profile
        && let Some((_, s)) = cached.as_ref().filter(|(_, s)| s.ratings.is_empty())
    {
        // A profile made since this round began: its rating goes into the state now, so that
        // the request that begins the next round reads both; the round that ends here began
        // without it, and is closed as having nothing to record.
        mine = super::profiles::rating_of(app, player).await?;
        if mine.is_some() {
            super::profiles::close_unrecorded_round(app, game, s.round).await?;
        }
    }
    let unready = std::sync::atomic::AtomicBool::new(false);
    let mut r;
    loop {
        r = apply(
            app,
            game,
            Actor::seated(player, mark),
            None,
            None,
            |version, s| {
                let (mut state, began) = s.request_rematch(mark, version)?;
                if began || s.computer.is_some() {
                    match &ratings {
                        Some(ratings) => state.ratings = ratings.clone(),
                        None if s.ratings.is_empty() && !has_profile => {}
                        None => {
                            // This instance had not seen the other request: read the ratings.
                            unready.store(true, std::sync::atomic::Ordering::Relaxed);
                            return Err(RuleError::RoundInProgress);
                        }
                    }
                    // The computer is never rated, whatever its seat's id.
                    if let Some(c) = state.computer {
                        *state.ratings.get_mut(c.mark) = None;
                    }
                } else if mine.is_some() {
                    *state.ratings.get_mut(mark) = mine;
                }
                let event = rematch_event(game, version, mark, &state, began);
                Ok((state, event))
            },
        )
        .await;
        if !unready.swap(false, std::sync::atomic::Ordering::Relaxed) || ratings.is_some() {
            break;
        }
        ratings = Some(next_round_ratings(app, game).await?);
    }
    match r {
        // Refused on the store's state, which `apply` put in the cache.
        Err(OpError::Rule(RuleError::RematchAsked)) => {
            let version = app.hub.cached(game).map_or(0, |(v, _)| v);
            // The request this one repeats may be in the log with its event not published
            // (with REDIS_WAIT_REPLICAS: the replicas had not confirmed it, and the follow-up
            // that would publish it died with its instance): publish what the log holds now,
            // once confirmed. Subscribers drop a version they already have.
            publish_logged(app.store.as_ref(), game, version).await;
            Ok(Done {
                version,
                duplicate: true,
                event: None,
            })
        }
        r => r,
    }
}

/// The ratings the next round of `game` begins with, once the round that ends is recorded.
/// The seats come from the hub (they never change hands once taken), read once per game.
async fn next_round_ratings(app: &App, game: &GameId) -> Result<Seats<Option<u32>>, OpError> {
    let seats = match app.hub.seats(game) {
        Some(seats) => seats,
        None => load_stored(app, game).await?.seats,
    };
    if app
        .hub
        .cached(game)
        .is_none_or(|(_, s)| !s.ratings.is_empty())
    {
        super::profiles::record_round(app, game).await?;
    }
    super::profiles::seat_ratings(app, &seats).await
}

/// The event of `mark`'s rematch request: the new round's start when it `began` one.
pub(super) fn rematch_event(
    game: &GameId,
    version: u64,
    mark: Mark,
    state: &GameState,
    began: bool,
) -> ServerMsg {
    if began {
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
    }
}

/// The creator takes back a game nobody has joined yet. It ends as `aborted` through the
/// ordinary compare-and-set (logged and published like any event; `after_commit` takes it out
/// of the lobby), and stops counting among the player's waiting games. Only X opened the
/// game: anyone else is refused as not holding the seat.
pub async fn cancel(
    app: &App,
    game: &GameId,
    player: &PlayerId,
    mark: Mark,
) -> Result<Done, OpError> {
    if mark != Mark::X {
        return Err(OpError::NotSeated);
    }
    let actor = Actor::seated(player, Mark::X);
    let done = apply(app, game, actor, None, None, |version, s| {
        let state = s.cancel()?;
        let event = ServerMsg::Aborted {
            game: game.clone(),
            version,
            state: state.clone(),
        };
        Ok((state, event))
    })
    .await?;
    release_waiting(app, player, game).await;
    metrics::counter!("games_cancelled_total").increment(1);
    tracing::info!(%game, "cancelled by its creator");
    Ok(done)
}

/// `player` is now called `name` in each of `games` where it holds a seat: a `renamed` event
/// in each (so every instance's clients see it), and the lobby entry of a listed game.
/// Games that are gone, aborted, or already show the name are skipped.
pub async fn rename(
    app: &App,
    player: &PlayerId,
    name: &str,
    games: &[GameId],
) -> Result<(), OpError> {
    for game in games {
        // Renames of one session from several connections race for the same games: a rename
        // that lost every compare-and-set of a round reads the game again and tries again,
        // and one that finds the name already there is done.
        let mut round = 0;
        loop {
            match rename_in(app, player, name, game).await {
                Err(OpError::Contended) if round + 1 < RENAME_ROUNDS => {
                    round += 1;
                    let pause = 5 + (uuid::Uuid::new_v4().as_u64_pair().0 % 20);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                r => break r?,
            }
        }
    }
    Ok(())
}

/// Rounds of compare-and-set attempts for a rename in one game.
const RENAME_ROUNDS: usize = 8;

/// [`rename`] in one game.
async fn rename_in(app: &App, player: &PlayerId, name: &str, game: &GameId) -> Result<(), OpError> {
    {
        let Some(sg) = app.store.load_game(game).await? else {
            return Ok(());
        };
        let Some(mark) = sg.seat_of(player) else {
            return Ok(());
        };
        if sg.state.players.get(mark).as_deref() == Some(name) || sg.state.status == Status::Aborted
        {
            return Ok(());
        }
        app.hub.observe(game, sg.version, &sg.state);
        let start = Some((sg.version, sg.state));
        let r = apply(
            app,
            game,
            Actor::seated(player, mark),
            start,
            None,
            |version, s| {
                let state = s.rename(mark, name)?;
                let event = ServerMsg::Renamed {
                    game: game.clone(),
                    version,
                    mark,
                    name: name.to_string(),
                    state: state.clone(),
                };
                Ok((state, event))
            },
        )
        .await;
        match r {
            Ok(_) => {}
            // The game changed hands or ended meanwhile: nothing to rename there.
            Err(OpError::Rule(_) | OpError::UnknownGame | OpError::NotSeated) => return Ok(()),
            Err(e) => return Err(e),
        }
        // The lobby lists names too. Best effort, as for every lobby update.
        if let Some((_, state)) = app.hub.cached(game)
            && matches!(state.status, Status::Waiting | Status::Playing)
            // The owner stays as recorded when the game opened.
            && let Err(e) = update_lobby(app, game, &state, None).await
        {
            tracing::warn!(%game, error = %e, "lobby update failed");
        }
    }
    Ok(())
}

/// A joined game as the client first sees it.
#[derive(Debug)]
pub struct Snapshot {
    pub version: u64,
    pub state: GameState,
    pub presence: Presence,
    pub chat: Vec<ChatLine>,
}

pub async fn snapshot(app: &App, game: &GameId) -> Result<Snapshot, OpError> {
    let (version, state) = load(app, game).await?;
    let presence = app.store.presence(game).await?;
    let chat = app
        .store
        .recent_chat(Some(game), app.config.chat_history)
        .await?;
    Ok(Snapshot {
        version,
        state,
        presence: presence.into(),
        chat: super::records::chat_lines(chat),
    })
}

/// The logged events of a game after version `since`. The newest state they carry goes into
/// the hub's cache: a replay usually follows events this instance never saw.
pub async fn missed_events(app: &App, game: &GameId, since: u64) -> Result<Missed, OpError> {
    let replay = app.store.events_since(game, since).await?;
    if let Missed::Events(events) = &replay
        && let Some(last) = events
            .last()
            .and_then(|e| serde_json::from_slice::<ServerMsg>(e).ok())
        && let Some((_, v)) = last.game_version()
    {
        if let Some(s) = last.state() {
            app.hub.observe(game, v, s);
        }
        if app.hub.heard(game) < v {
            republish(app, game, v);
        }
    }
    Ok(replay)
}

/// Publishes again the newest logged event of a game that a catch-up found and that never came
/// in on the game's channel here. With REDIS_WAIT_REPLICAS an event goes out only once the
/// replicas confirm it, by the instance that wrote it: if that instance died first (its
/// player's rematch request, say), the player, back through another instance, is shown the
/// event by this catch-up, and the opponent would wait for it until something else happened.
/// Seen in the chaos run: games stuck for 30-70 s after an instance's `kill -9`. Without WAIT
/// the transition published it already and this costs nothing; subscribers drop a version
/// they already have. Best effort, bounded like the other follow-ups.
fn republish(app: &App, game: &GameId, version: u64) {
    let store = app.store.clone();
    let game = game.clone();
    follow_up(async move { publish_logged(store.as_ref(), &game, version).await });
}
