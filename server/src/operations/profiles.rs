//! Profiles: making one (with its recovery code), reading it, recovering it on another device,
//! deleting it, the leaderboard, the ratings shown beside names, and recording a finished
//! round in its players' profiles exactly once (history, counts, Glicko-2 ratings).
//!
//! Recording is idempotent and may be called by anyone who sees a finished round: the
//! instance that committed the end (right after), the deadline sweep of any instance (if that
//! one died in between), and a rematch before it starts the next round.

use super::OpError;
use crate::app::{App, DueDate, wall_ms};
use crate::ratelimit::{Decision, Rule};
use crate::recovery_code::RecoveryCode;
use crate::session::SessionToken;
use crate::store::profiles::{
    BoardRecord, ProfileRecord, RatingWrite, Recorded, RoundRecord, RoundSeat,
};
use crate::store::{SessionRecord, StoreError, StoredGame};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::profiles::{
    BoardRow, HistoryEntry, ProfileBadge, ProfileView, RoundResult, provisional,
};
use tictactoe_rules::glicko2::{self, Rating};
use tictactoe_rules::{GameState, Mark, Seats, Status};

/// Profiles made per client address: a few (a family behind one router), then one every
/// ten minutes. Profiles never expire, so this is what keeps a script from filling Redis.
pub const CREATE_RULE: Rule = Rule {
    interval_us: 600_000_000,
    burst: 5,
};

/// Recovery attempts per client address, right or wrong: guessing 100 bits is hopeless
/// anyway; this keeps attempts from costing the store.
pub const RECOVER_RULE: Rule = Rule {
    interval_us: 60_000_000,
    burst: 5,
};

/// New recovery codes per player.
pub const CODE_RULE: Rule = Rule {
    interval_us: 60_000_000,
    burst: 3,
};

/// Finished rounds kept per profile.
pub const HISTORY_LEN: usize = 20;
/// Rows of the leaderboard's top, and rows either side of the player's own.
pub const BOARD_TOP: usize = 100;
pub const BOARD_AROUND: usize = 5;
/// The least time a round is remembered as recorded. It only has to outlive every caller
/// that can still see the round finished: the game itself (gone `FINISHED_GAME_TTL_SECS`
/// after its last change, 10 minutes by default), and a caller that read it just before.
/// Each marker costs about 150 bytes, so a month of them would outweigh the profiles.
const RECORDED_AT_LEAST: Duration = Duration::from_secs(24 * 3600);
/// Tries when a profile changed between reading its rating and writing the new one.
const RECORD_ATTEMPTS: usize = 5;
/// How far ahead the deadline that records a round stands, set before the transition that
/// finishes it: if the instance that commits the end dies before recording it, any instance
/// records it then.
pub const RECORD_GUARD: Duration = Duration::from_secs(5);

/// Why a profile request did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("this player has no profile")]
    NoProfile,
    #[error("no profile has this recovery code")]
    BadCode,
    #[error("a rated game needs a profile: create one first")]
    Required,
}

/// What the store keeps of a client's address on its profile: a short hash, enough to tell
/// two addresses apart, never shown, and kept as long as the profile. It is keyed with the
/// deployment's secret `salt` ([`crate::store::profiles::ProfileStore::address_salt`]):
/// unkeyed, anyone who reads the store could hash all 2^32 IPv4 addresses in minutes and read
/// each profile's address back. IPv6 clients count by their /64, as every budget does.
pub fn address_hash(salt: &str, ip: IpAddr) -> String {
    let ip = crate::admission::budget_key(ip);
    let digest = Sha256::digest(format!("{salt}\0address\0{ip}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// `ip`'s hash for a profile, reading the salt from the store the first time.
async fn noted_address(app: &App, ip: IpAddr) -> Result<String, StoreError> {
    let salt = app
        .address_salt
        .get_or_try_init(|| app.store.address_salt())
        .await?;
    Ok(address_hash(salt, ip))
}

fn rounded(r: f64) -> u32 {
    r.round().clamp(0.0, f64::from(u32::MAX)) as u32
}

fn badge(r: &ProfileRecord) -> ProfileBadge {
    ProfileBadge {
        rating: rounded(r.rating.rating),
        provisional: provisional(rounded(r.rating.deviation)),
    }
}

/// `player` said hello from `ip`: its profile notes the address (for the same-address rule)
/// and `welcome` shows its rating. A profile that cannot be read only leaves the badge out:
/// the hello goes on.
pub async fn on_hello(app: &App, player: &PlayerId, ip: IpAddr) -> Option<ProfileBadge> {
    let seen = async {
        let address = noted_address(app, ip).await?;
        app.store.profile_seen(player, &address).await
    };
    match seen.await {
        Ok(record) => record.as_ref().map(badge),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the player's profile at hello");
            None
        }
    }
}

/// Makes `player` a profile named `name` (or, if it has one, gives it a new code). Returns
/// the profile and the recovery code to show once.
pub async fn create(
    app: &App,
    player: &PlayerId,
    name: &str,
    ip: IpAddr,
) -> Result<(ProfileView, String), OpError> {
    app.limit_ip("ip-profile", ip, CREATE_RULE)
        .await
        .map_err(|retry_after_ms| OpError::RateLimited { retry_after_ms })?;
    let address = noted_address(app, ip).await?;
    let code = RecoveryCode::generate();
    app.store
        .profile_create(player, name, &address, &code.hash())
        .await?;
    metrics::counter!("profiles_created_total").increment(1);
    Ok((view(app, player).await?, code.display()))
}

/// A new recovery code for `player`'s profile; the old one stops working.
pub async fn new_code(app: &App, player: &PlayerId) -> Result<(ProfileView, String), OpError> {
    let key = app.store.keys().rate("profile-code", player.as_str());
    if let Decision::Deny { retry_after_us } = app.store.rate(&key, CODE_RULE).await? {
        return Err(OpError::RateLimited {
            retry_after_ms: Decision::retry_after_ms(retry_after_us),
        });
    }
    let code = RecoveryCode::generate();
    if !app.store.profile_new_code(player, &code.hash()).await? {
        return Err(ProfileError::NoProfile.into());
    }
    Ok((view(app, player).await?, code.display()))
}

/// `player`'s profile with its recent rounds and rank.
pub async fn view(app: &App, player: &PlayerId) -> Result<ProfileView, OpError> {
    let read = app
        .store
        .profile_read(player, HISTORY_LEN)
        .await?
        .ok_or(ProfileError::NoProfile)?;
    let games = read
        .history
        .iter()
        .filter_map(|e| match serde_json::from_str::<HistoryEntry>(e) {
            Ok(entry) => Some(entry),
            Err(err) => {
                tracing::warn!(error = %err, "skipping an unreadable history entry");
                None
            }
        })
        .collect();
    let r = &read.record;
    Ok(ProfileView {
        name: r.name.clone(),
        rating: rounded(r.rating.rating),
        deviation: rounded(r.rating.deviation),
        provisional: provisional(rounded(r.rating.deviation)),
        wins: r.wins,
        draws: r.draws,
        losses: r.losses,
        rank: read.rank,
        games,
    })
}

/// A recovered profile: a new session of its player.
#[derive(Debug)]
pub struct Recovered {
    pub token: SessionToken,
    pub player: PlayerId,
    pub name: String,
}

/// Finds the profile `code` belongs to and opens a new session of its player. Every attempt
/// is charged to the address, right or wrong.
pub async fn recover(app: &App, code: &str, ip: IpAddr) -> Result<Recovered, OpError> {
    app.limit_ip("ip-recover", ip, RECOVER_RULE)
        .await
        .map_err(|retry_after_ms| OpError::RateLimited { retry_after_ms })?;
    let code = RecoveryCode::parse(code).ok_or(ProfileError::BadCode)?;
    let player = app
        .store
        .profile_of_code(&code.hash())
        .await?
        .ok_or(ProfileError::BadCode)?;
    // Deleted between the two reads: the code is gone with it.
    let [Some(record)] = <[_; 1]>::try_from(app.store.profile_records(&[&player]).await?)
        .map_err(|_| OpError::Internal("profile_records: wrong count".into()))?
    else {
        return Err(ProfileError::BadCode.into());
    };
    let token = SessionToken::generate();
    let session = SessionRecord {
        player: player.clone(),
        name: record.name.clone(),
    };
    app.store
        .create_session(&token.hash(), &session, app.config.session_ttl)
        .await?;
    metrics::counter!("profiles_recovered_total").increment(1);
    Ok(Recovered {
        token,
        player,
        name: record.name,
    })
}

pub async fn delete(app: &App, player: &PlayerId) -> Result<(), OpError> {
    if !app.store.profile_delete(player).await? {
        return Err(ProfileError::NoProfile.into());
    }
    metrics::counter!("profiles_deleted_total").increment(1);
    Ok(())
}

/// The session's player is now called `name`: so is its profile, if it has one.
pub async fn rename(app: &App, player: &PlayerId, name: &str) -> Result<(), OpError> {
    app.store.profile_rename(player, name).await?;
    Ok(())
}

/// The leaderboard: its top, and `player`'s row with the rows around it.
pub struct Board {
    pub top: Vec<BoardRow>,
    pub me: Option<BoardRow>,
    pub around: Vec<BoardRow>,
}

/// The leaderboard's top rows as this instance last read them, at the board's version: read
/// again only once the board changed. They are most of a leaderboard's cost to Redis (251 us
/// a request with 100 rows, 35 us without: docs/redis.md), and the same for everyone, so
/// a flood of leaderboard requests costs Redis what as many moves would.
#[derive(Default)]
pub struct BoardTop(std::sync::Mutex<Option<KeptTop>>);

type KeptTop = (u64, Arc<Vec<BoardRecord>>, Instant);

/// Kept rows are read again after this long whatever the version says: a change that did not
/// move it on (an instance of an older release, an operator's edit) shows within this time.
const BOARD_TOP_MAX_AGE: Duration = Duration::from_secs(30);

impl BoardTop {
    /// The rows kept, unless they are older than [`BOARD_TOP_MAX_AGE`].
    fn get(&self) -> Option<KeptTop> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|(_, _, at)| at.elapsed() < BOARD_TOP_MAX_AGE)
    }

    /// Keeps `top` at `version`, unless rows of a later version are kept already (reads end
    /// in any order).
    fn keep(&self, version: u64, top: Arc<Vec<BoardRecord>>) {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if kept.as_ref().is_none_or(|(v, _, _)| *v <= version) {
            *kept = Some((version, top, Instant::now()));
        }
    }
}

pub async fn leaderboard(app: &App, player: Option<&PlayerId>) -> Result<Board, OpError> {
    let known = app.board_top.get();
    let read = app
        .store
        .leaderboard_since(player, BOARD_TOP, BOARD_AROUND, known.as_ref().map(|k| k.0))
        .await?;
    let top = match (read.top_unchanged, known) {
        (true, Some((_, top, _))) => top,
        (true, None) => {
            return Err(StoreError::Corrupt("leaderboard: top rows kept by nobody".into()).into());
        }
        (false, _) => {
            let top = Arc::new(read.top);
            app.board_top.keep(read.version, top.clone());
            top
        }
    };
    let row = |r: BoardRecord| BoardRow {
        rank: r.rank,
        name: r.name,
        rating: rounded(r.rating),
        provisional: provisional(rounded(r.deviation)),
        wins: r.wins,
        draws: r.draws,
        losses: r.losses,
    };
    Ok(Board {
        top: top.iter().cloned().map(row).collect(),
        me: read.me.map(row),
        around: read.around.into_iter().map(row).collect(),
    })
}

/// A rated game needs `player` to have a profile.
pub async fn require(app: &App, player: &PlayerId) -> Result<(), OpError> {
    match rating_of(app, player).await? {
        Some(_) => Ok(()),
        None => Err(ProfileError::Required.into()),
    }
}

/// `player`'s rating (rounded), if it has a profile.
pub async fn rating_of(app: &App, player: &PlayerId) -> Result<Option<u32>, OpError> {
    let records = app.store.profile_records(&[player]).await?;
    Ok(records
        .into_iter()
        .next()
        .flatten()
        .map(|r| rounded(r.rating.rating)))
}

/// The rating (rounded) of each seated player with a profile, for `state.ratings`.
pub async fn seat_ratings(
    app: &App,
    seats: &Seats<Option<PlayerId>>,
) -> Result<Seats<Option<u32>>, OpError> {
    let players: Vec<&PlayerId> = [&seats.x, &seats.o].into_iter().flatten().collect();
    if players.is_empty() {
        return Ok(Seats::default());
    }
    let mut records = app.store.profile_records(&players).await?.into_iter();
    let mut next = |seat: &Option<PlayerId>| {
        seat.as_ref()
            .and_then(|_| records.next().flatten())
            .map(|r| rounded(r.rating.rating))
    };
    let x = next(&seats.x);
    let o = next(&seats.o);
    Ok(Seats { x, o })
}

/// Whether a transition from `before` to `after` ends a round that profiles will record.
pub fn ends_recorded_round(before: &GameState, after: &GameState) -> bool {
    before.status == Status::Playing
        && after.status == Status::Finished
        && !after.ratings.is_empty()
}

/// Before committing a transition that ends a round with a profile in it: a deadline a few
/// seconds ahead, so that if this instance dies between the commit and the recording, the
/// deadline sweep of any instance records the round. Best effort: a rematch records it too.
pub async fn guard_round_end(app: &App, game: &GameId, before: &GameState, after: &GameState) {
    if !ends_recorded_round(before, after) {
        return;
    }
    let at = wall_ms() + RECORD_GUARD.as_millis() as u64;
    if let Err(e) = super::deadlines::write_date(app, game, DueDate::Own, at).await {
        tracing::warn!(%game, error = %e, "round's recording not guarded yet; will retry");
    }
}

/// Records `game`'s finished round in its players' profiles, if it has one to record; any
/// number of callers, on any instances, record it once. `None` when there is nothing to
/// record (the round is not finished, or no seat has a profile).
pub async fn record_round(app: &App, game: &GameId) -> Result<Option<Recorded>, OpError> {
    for _ in 0..RECORD_ATTEMPTS {
        let Some(sg) = app.store.load_game(game).await? else {
            return Ok(None);
        };
        let players = profile_seats(&sg);
        if sg.state.status != Status::Finished || players.is_empty() {
            return Ok(None);
        }
        let ids: Vec<&PlayerId> = players.iter().map(|(_, p)| *p).collect();
        let records = app.store.profile_records(&ids).await?;
        let seats: Vec<(Mark, &PlayerId, ProfileRecord)> = players
            .iter()
            .zip(records)
            .filter_map(|((mark, p), r)| r.map(|r| (*mark, *p, r)))
            .collect();
        let rated = new_ratings(&sg.state, &seats);
        let ended_ms = wall_ms();
        let round_seats = seats
            .iter()
            .zip(&rated)
            .map(|((mark, player, record), new)| {
                let entry = history_entry(game, &sg.state, *mark, record, *new, ended_ms);
                let rating = new.map(|rating| RatingWrite {
                    expected_version: record.version,
                    rating,
                });
                Ok(RoundSeat {
                    player,
                    result: entry.result,
                    entry: serde_json::to_string(&entry)
                        .map_err(|e| OpError::Internal(e.to_string()))?,
                    rating,
                })
            })
            .collect::<Result<Vec<_>, OpError>>()?;
        let round = RoundRecord {
            game,
            round: sg.state.round,
            seats: round_seats,
            marker_ttl: recorded_for(app),
            history_len: HISTORY_LEN,
        };
        match app.store.record_round(&round).await? {
            Recorded::Stale => continue,
            done => {
                if done == Recorded::Done {
                    let kind = if rated.iter().any(Option::is_some) {
                        "rated"
                    } else {
                        "unrated"
                    };
                    metrics::counter!("rounds_recorded_total", "kind" => kind).increment(1);
                }
                return Ok(Some(done));
            }
        }
    }
    Err(OpError::Contended)
}

/// How long a recorded round's marker lives: a day, or longer if games live long enough to
/// need it (twice a game's lifetimes, playing and finished, so that a game kept alive by
/// changes after its round ended still finds its marker).
/// Marks `round` of `game`, which began with no profile seated, as recorded with nothing in
/// it: a profile made since then may put its rating in the finished round's state (see
/// `games::rematch`), and the round must not then be recorded as if it had begun with it.
pub async fn close_unrecorded_round(app: &App, game: &GameId, round: u32) -> Result<(), OpError> {
    let record = RoundRecord {
        game,
        round,
        seats: Vec::new(),
        marker_ttl: recorded_for(app),
        history_len: HISTORY_LEN,
    };
    app.store.record_round(&record).await?;
    Ok(())
}

fn recorded_for(app: &App) -> Duration {
    let game = app.config.game_ttl + app.config.finished_game_ttl;
    RECORDED_AT_LEAST.max(game * 2)
}

/// The seats to record: a person's seat whose rating the round began with (so the player had
/// a profile then), each player once (a player holding both seats plays nobody).
fn profile_seats(sg: &StoredGame) -> Vec<(Mark, &PlayerId)> {
    let mut out: Vec<(Mark, &PlayerId)> = Vec::new();
    for mark in [Mark::X, Mark::O] {
        if sg.state.is_computer(mark) || sg.state.ratings.get(mark).is_none() {
            continue;
        }
        if let Some(p) = sg.seats.get(mark)
            && out.iter().all(|(_, q)| *q != p)
        {
            out.push((mark, p));
        }
    }
    out
}

/// The new rating of each seat (in `seats`' order), or `None` where it does not change: only
/// a rated game's round between two profiles of different players from different addresses
/// moves ratings. One round is one Glicko-2 rating period.
fn new_ratings(
    state: &GameState,
    seats: &[(Mark, &PlayerId, ProfileRecord)],
) -> Vec<Option<Rating>> {
    let unchanged = vec![None; seats.len()];
    let [(a_mark, _, a), (_, _, b)] = seats else {
        return unchanged;
    };
    if !state.rated || state.computer.is_some() || a.address == b.address {
        return unchanged;
    }
    let Some(outcome) = state.result else {
        return unchanged;
    };
    let score_a = match outcome.winner {
        None => glicko2::DRAW,
        Some(w) if w == *a_mark => glicko2::WIN,
        Some(_) => glicko2::LOSS,
    };
    let (ra, rb) = glicko2::rate_game(a.rating, b.rating, score_a);
    vec![Some(ra), Some(rb)]
}

/// What `mark`'s player's history says of the round: enough to list and replay it.
fn history_entry(
    game: &GameId,
    state: &GameState,
    mark: Mark,
    record: &ProfileRecord,
    new: Option<Rating>,
    ended_ms: u64,
) -> HistoryEntry {
    let other = mark.other();
    let (result, reason) = match state.result {
        Some(o) => (
            match o.winner {
                None => RoundResult::Draw,
                Some(w) if w == mark => RoundResult::Win,
                Some(_) => RoundResult::Loss,
            },
            o.reason,
        ),
        // Only finished rounds are recorded, and a finished round has a result.
        None => (RoundResult::Draw, tictactoe_rules::EndReason::Draw),
    };
    let before = rounded(record.rating.rating);
    HistoryEntry {
        game: game.clone(),
        round: state.round,
        ended_ms,
        you: mark,
        opponent: state.players.get(other).clone().unwrap_or_default(),
        opponent_rating: *state.ratings.get(other),
        computer: state.computer.filter(|c| c.mark == other).map(|c| c.level),
        result,
        reason,
        starter: GameState::starter(state.round),
        moves: state.moves.clone(),
        rated: state.rated,
        rating_before: state.rated.then_some(before),
        rating_after: state
            .rated
            .then(|| new.map_or(before, |r| rounded(r.rating))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tictactoe_rules::computer::Level;
    use tictactoe_rules::{Cell, EndReason};

    fn row(name: &str) -> Arc<Vec<BoardRecord>> {
        Arc::new(vec![BoardRecord {
            rank: 1,
            name: name.into(),
            rating: 1500.0,
            deviation: 80.0,
            wins: 1,
            draws: 0,
            losses: 0,
        }])
    }

    #[test]
    fn the_board_top_kept_is_the_latest_version_read() {
        let kept = BoardTop::default();
        assert!(kept.get().is_none());
        kept.keep(3, row("three"));
        // A read that began before the board changed, ending after one that saw the change.
        kept.keep(2, row("two"));
        let (version, top, _) = kept.get().expect("kept");
        assert_eq!((version, top[0].name.as_str()), (3, "three"));
        kept.keep(3, row("again"));
        kept.keep(4, row("four"));
        assert_eq!(kept.get().expect("kept").0, 4);
    }

    fn record(rating: f64, address: &str) -> ProfileRecord {
        ProfileRecord {
            name: "n".into(),
            rating: Rating {
                rating,
                ..Rating::new_player()
            },
            wins: 0,
            draws: 0,
            losses: 0,
            rated_games: 0,
            address: address.into(),
            version: 7,
            created_ms: 0,
        }
    }

    fn played(moves: &[i64]) -> GameState {
        let mut g = GameState::matched("Ann", "Bob");
        g.rated = true;
        g.ratings = Seats {
            x: Some(1500),
            o: Some(1490),
        };
        for (i, c) in moves.iter().enumerate() {
            let mark = if i % 2 == 0 { Mark::X } else { Mark::O };
            g = g.play(mark, Cell::new(*c).unwrap()).unwrap();
        }
        g
    }

    #[test]
    fn a_history_entry_replays_the_round_from_its_players_side() {
        let g = played(&[0, 3, 1, 4, 2]);
        let game = GameId::try_from("k3n8vq2xhd".to_string()).unwrap();
        let after = Rating {
            rating: 1523.4,
            ..Rating::new_player()
        };
        let e = history_entry(&game, &g, Mark::X, &record(1500.2, "a"), Some(after), 42);
        assert_eq!(
            (e.you, e.result, e.reason),
            (Mark::X, RoundResult::Win, EndReason::Line)
        );
        assert_eq!(
            (e.opponent.as_str(), e.opponent_rating),
            ("Bob", Some(1490))
        );
        assert_eq!((e.starter, e.round, e.ended_ms), (Mark::X, 1, 42));
        let moves: Vec<usize> = e.moves.iter().map(|c| c.index()).collect();
        assert_eq!(moves, vec![0, 3, 1, 4, 2]);
        assert_eq!((e.rating_before, e.rating_after), (Some(1500), Some(1523)));
        let o = history_entry(&game, &g, Mark::O, &record(1490.0, "b"), None, 42);
        assert_eq!((o.result, o.opponent.as_str()), (RoundResult::Loss, "Ann"));
        assert_eq!((o.rating_before, o.rating_after), (Some(1490), Some(1490)));
        // A casual round shows no rating.
        let mut casual = g.clone();
        casual.rated = false;
        let c = history_entry(&game, &casual, Mark::X, &record(1500.0, "a"), None, 1);
        assert_eq!(
            (c.rated, c.rating_before, c.rating_after),
            (false, None, None)
        );
    }

    #[test]
    fn a_round_against_the_computer_names_its_level() {
        let mut g = GameState::against_computer("Ann", Level::Perfect, "Computer");
        g.ratings.x = Some(1500);
        let g = g.concede(Mark::X, EndReason::Resign).unwrap();
        let game = GameId::try_from("g1".to_string()).unwrap();
        let e = history_entry(&game, &g, Mark::X, &record(1500.0, "a"), None, 1);
        assert_eq!(e.computer, Some(Level::Perfect));
        assert_eq!((e.result, e.reason), (RoundResult::Loss, EndReason::Resign));
        assert_eq!(e.opponent_rating, None);
    }

    #[test]
    fn only_a_rated_round_between_two_addresses_moves_ratings() {
        let (ann, bob) = (PlayerId::generate(), PlayerId::generate());
        let g = played(&[0, 3, 1, 4, 2]);
        let seats = |a: &str, b: &str| {
            vec![
                (Mark::X, &ann, record(1500.0, a)),
                (Mark::O, &bob, record(1500.0, b)),
            ]
        };
        let moved = new_ratings(&g, &seats("a", "b"));
        let (x, o) = (moved[0].unwrap(), moved[1].unwrap());
        assert!(x.rating > 1500.0 && o.rating < 1500.0, "{x:?} {o:?}");
        assert_eq!(new_ratings(&g, &seats("a", "a")), vec![None, None]);
        let mut casual = g.clone();
        casual.rated = false;
        assert_eq!(new_ratings(&casual, &seats("a", "b")), vec![None, None]);
        // One profile alone (the other has none, or it was deleted) rates nobody.
        assert_eq!(new_ratings(&g, &seats("a", "b")[..1]), vec![None]);
        // A draw between equals leaves both where they were, deviation aside.
        let draw = played(&[0, 1, 2, 4, 3, 5, 7, 6, 8]);
        assert_eq!(draw.result.unwrap().winner, None);
        let moved = new_ratings(&draw, &seats("a", "b"));
        assert!((moved[0].unwrap().rating - 1500.0).abs() < 1e-6);
    }

    #[test]
    fn a_round_is_guarded_only_when_it_ends_with_a_profile_seated() {
        let before = played(&[0, 3, 1, 4]);
        let after = played(&[0, 3, 1, 4, 2]);
        assert!(ends_recorded_round(&before, &after));
        assert!(!ends_recorded_round(&after, &after));
        let mut anonymous = after.clone();
        anonymous.ratings = Seats::default();
        assert!(!ends_recorded_round(&before, &anonymous));
    }

    #[test]
    fn an_address_hash_is_short_stable_keyed_and_counts_ipv6_by_its_64() {
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let hash = |ip: &str| address_hash("salt", ip.parse().unwrap());
        assert_eq!(address_hash("salt", a), address_hash("salt", a));
        assert_eq!(address_hash("salt", a).len(), 16);
        assert_ne!(address_hash("salt", a), hash("203.0.113.8"));
        assert_eq!(hash("2001:db8::1"), hash("2001:db8::2"));
        // Without the deployment's salt, the hash of a guessed address matches nothing.
        assert_ne!(address_hash("salt", a), address_hash("other", a));
        assert_ne!(address_hash("", a), address_hash("salt", a));
    }
}
