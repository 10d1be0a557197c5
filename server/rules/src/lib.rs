//! The rules of tic-tac-toe and of a game's life (seats, rounds, rematch, forfeit, names),
//! with the round's moves and the game's running score.
//!
//! Pure values and functions: no async, no I/O, no clock. Every transition returns a new
//! [`GameState`] or a typed [`RuleError`]; the store only persists what these functions allow.
//! Beside them, equally pure: [`computer`], the computer opponent's three levels (the perfect
//! one from a table over every position), and [`glicko2`], the rating system.

pub mod computer;
pub mod glicko2;

use serde::{Deserialize, Serialize};
use std::fmt;

/// A player's mark. X created the game; the marks never change hands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mark {
    X,
    O,
}

impl Mark {
    pub fn other(self) -> Mark {
        match self {
            Mark::X => Mark::O,
            Mark::O => Mark::X,
        }
    }

    fn as_char(self) -> char {
        match self {
            Mark::X => 'X',
            Mark::O => 'O',
        }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// A cell index, 0..=8 in reading order (0 is top left, 8 bottom right).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Cell(u8);

impl Cell {
    /// Parses a wire integer into a cell. Anything outside 0..=8 is a typed error, not a panic.
    pub fn new(n: i64) -> Result<Cell, RuleError> {
        u8::try_from(n)
            .ok()
            .filter(|&c| c < 9)
            .map(Cell)
            .ok_or(RuleError::CellOutOfRange)
    }

    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        Cell::new(n).map_err(|_| serde::de::Error::custom("cell must be an integer from 0 to 8"))
    }
}

/// The eight winning lines.
pub const LINES: [[u8; 3]; 8] = [
    [0, 1, 2],
    [3, 4, 5],
    [6, 7, 8],
    [0, 3, 6],
    [1, 4, 7],
    [2, 5, 8],
    [0, 4, 8],
    [2, 4, 6],
];

/// Nine cells. On the wire it is a 9-character string of `X`, `O` and `.` in reading order, so
/// that a board stays legible in `redis-cli SUBSCRIBE` output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Board([Option<Mark>; 9]);

impl Board {
    pub fn get(&self, cell: Cell) -> Option<Mark> {
        self.0[cell.index()]
    }

    pub fn count(&self, mark: Mark) -> usize {
        self.0.iter().filter(|c| **c == Some(mark)).count()
    }

    pub fn is_full(&self) -> bool {
        self.0.iter().all(Option::is_some)
    }

    /// The first complete line and its owner, if any.
    pub fn winning_line(&self) -> Option<(Mark, [u8; 3])> {
        LINES.iter().find_map(|line| {
            let [a, b, c] = line.map(|i| self.0[usize::from(i)]);
            match (a, b, c) {
                (Some(m), Some(n), Some(o)) if m == n && n == o => Some((m, *line)),
                _ => None,
            }
        })
    }

    fn with(mut self, cell: Cell, mark: Mark) -> Board {
        self.0[cell.index()] = Some(mark);
        self
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0 {
            f.write_str(match c {
                Some(Mark::X) => "X",
                Some(Mark::O) => "O",
                None => ".",
            })?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Board {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 9 {
            return Err(format!("a board has 9 cells, got {}", s.len()));
        }
        let mut cells = [None; 9];
        for (slot, ch) in cells.iter_mut().zip(s.chars()) {
            *slot = match ch {
                'X' => Some(Mark::X),
                'O' => Some(Mark::O),
                '.' => None,
                other => return Err(format!("unexpected board character {other:?}")),
            };
        }
        Ok(Board(cells))
    }
}

impl Serialize for Board {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Board {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a game is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// X is seated, O is not.
    Waiting,
    /// Both seats taken, the round is on.
    Playing,
    /// The round ended; see `result`. A rematch starts the next round.
    Finished,
    /// A quick-match game whose players did not both show up, or a game its creator
    /// cancelled while it waited for an opponent. Terminal.
    Aborted,
}

/// Why a round ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    Line,
    Draw,
    /// The loser was away longer than the grace period.
    Forfeit,
    Resign,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub winner: Option<Mark>,
    pub line: Option<[u8; 3]>,
    pub reason: EndReason,
}

/// Rounds won by each player, and drawn, over the whole game (every round, not only the
/// current one). Marks never change hands, so a mark's wins are its player's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    #[serde(rename = "X")]
    pub x: u32,
    #[serde(rename = "O")]
    pub o: u32,
    pub draws: u32,
}

impl Score {
    /// Rounds that ended, whatever the way.
    pub fn rounds(&self) -> u32 {
        self.x + self.o + self.draws
    }
}

/// One value per seat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seats<T> {
    #[serde(rename = "X")]
    pub x: T,
    #[serde(rename = "O")]
    pub o: T,
}

impl<T> Seats<Option<T>> {
    /// Neither seat has a value.
    pub fn is_empty(&self) -> bool {
        self.x.is_none() && self.o.is_none()
    }
}

impl<T> Seats<T> {
    pub fn get(&self, mark: Mark) -> &T {
        match mark {
            Mark::X => &self.x,
            Mark::O => &self.o,
        }
    }

    pub fn get_mut(&mut self, mark: Mark) -> &mut T {
        match mark {
            Mark::X => &mut self.x,
            Mark::O => &mut self.o,
        }
    }
}

/// A game as everyone sees it. Player identities are not here, only display names: the
/// binding of a seat to a session lives beside the state in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameState {
    pub board: Board,
    /// Whose move it is (meaningful while `status` is `playing`).
    pub turn: Mark,
    pub status: Status,
    /// Starts at 1; each rematch adds one. Rounds alternate who starts: X in odd rounds.
    pub round: u32,
    /// Display names of the seated players.
    pub players: Seats<Option<String>>,
    /// Set when the round ended.
    pub result: Option<Outcome>,
    /// Who asked for the next round since this one ended.
    pub rematch: Seats<bool>,
    /// The cells played this round, in order, starting with the round's first mover: enough
    /// to list and replay the round. Cleared when the next round starts.
    #[serde(default)]
    pub moves: Vec<Cell>,
    /// The running score of the game.
    #[serde(default)]
    pub score: Score,
    /// The game's version at which this round began (0 for the first round): a move chosen
    /// on an earlier version was chosen on another round's board, and is refused
    /// ([`GameState::play_seen`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub began: u64,
    /// The game's version at this round's last move (0 before the first): a move chosen on
    /// an earlier version was chosen on a board its player had not seen yet.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub moved: u64,
    /// A rated game: each finished round moves both players' ratings (two different
    /// profiles, see `docs/protocol.md`). Absent (false) for a casual game.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rated: bool,
    /// The seat the computer holds, and how well it plays. Absent in a game of two people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer: Option<ComputerSeat>,
    /// Each seated player's rating (rounded) as of the round's start; `None` for a player
    /// without a profile, and for the computer. Absent when neither has one.
    #[serde(default, skip_serializing_if = "Seats::is_empty")]
    pub ratings: Seats<Option<u32>>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// The computer's seat in a game against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputerSeat {
    pub mark: Mark,
    pub level: computer::Level,
}

/// What the computer has to do next in its game, if anything. Pure, so whichever instance
/// finds the game due asks the same question and the compare-and-set lets one of them act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComputerTurn {
    /// The round is on and it is the computer's move.
    Play(Mark),
    /// The round is over and the player asked for another: the computer always agrees.
    Rematch(Mark),
}

/// Why a transition is refused. Every variant is an expected outcome of client input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("cell must be an integer from 0 to 8")]
    CellOutOfRange,
    #[error("that cell is already taken")]
    CellOccupied,
    #[error("it is not your turn")]
    NotYourTurn,
    #[error("the game is waiting for an opponent")]
    NotStarted,
    #[error("the round is over")]
    GameOver,
    #[error("the board changed since the move was chosen")]
    StaleBoard,
    #[error("the round is still being played")]
    RoundInProgress,
    #[error("both seats are taken")]
    SeatTaken,
    #[error("the game was aborted")]
    Aborted,
    #[error("nobody sits in that seat")]
    SeatEmpty,
}

impl GameState {
    /// A new game with X seated, waiting for O.
    pub fn new(x_name: impl Into<String>) -> GameState {
        GameState {
            board: Board::default(),
            turn: Mark::X,
            status: Status::Waiting,
            round: 1,
            players: Seats {
                x: Some(x_name.into()),
                o: None,
            },
            result: None,
            rematch: Seats::default(),
            moves: Vec::new(),
            score: Score::default(),
            began: 0,
            moved: 0,
            rated: false,
            computer: None,
            ratings: Seats::default(),
        }
    }

    /// A game against the computer, which holds O at `level`: the round starts at once, X
    /// (the player) moving first. Never rated against people.
    pub fn against_computer(
        x_name: impl Into<String>,
        level: computer::Level,
        computer_name: impl Into<String>,
    ) -> GameState {
        let mut g = GameState::matched(x_name, computer_name);
        g.computer = Some(ComputerSeat {
            mark: Mark::O,
            level,
        });
        g
    }

    /// What the computer must do now, if this game has one and it is its turn to act.
    pub fn computer_turn(&self) -> Option<ComputerTurn> {
        let me = self.computer?.mark;
        match self.status {
            Status::Playing if self.turn == me => Some(ComputerTurn::Play(me)),
            Status::Finished if *self.rematch.get(me.other()) && !*self.rematch.get(me) => {
                Some(ComputerTurn::Rematch(me))
            }
            _ => None,
        }
    }

    /// Whether the seat `mark` is the computer's, which is never away and never forfeits.
    pub fn is_computer(&self, mark: Mark) -> bool {
        self.computer.is_some_and(|c| c.mark == mark)
    }

    /// The mark that moves first in a round: X in odd rounds, O in even ones.
    pub fn starter(round: u32) -> Mark {
        if round % 2 == 1 { Mark::X } else { Mark::O }
    }

    /// A game created by quick match: both seats bound from the start.
    pub fn matched(x_name: impl Into<String>, o_name: impl Into<String>) -> GameState {
        let mut g = GameState::new(x_name);
        g.players.o = Some(o_name.into());
        g.status = Status::Playing;
        g
    }

    pub fn is_over(&self) -> bool {
        matches!(self.status, Status::Finished | Status::Aborted)
    }

    /// O sits down; the first round begins.
    pub fn seat_o(&self, name: impl Into<String>) -> Result<GameState, RuleError> {
        match self.status {
            Status::Waiting => {
                let mut g = self.clone();
                g.players.o = Some(name.into());
                g.status = Status::Playing;
                Ok(g)
            }
            Status::Aborted => Err(RuleError::Aborted),
            Status::Playing | Status::Finished => Err(RuleError::SeatTaken),
        }
    }

    /// `mark` puts its mark on `cell`.
    pub fn play(&self, mark: Mark, cell: Cell) -> Result<GameState, RuleError> {
        self.expect_playing()?;
        if self.turn != mark {
            return Err(RuleError::NotYourTurn);
        }
        if self.board.get(cell).is_some() {
            return Err(RuleError::CellOccupied);
        }
        let mut g = self.clone();
        g.board = self.board.with(cell, mark);
        g.moves.push(cell);
        g.turn = mark.other();
        if let Some((winner, line)) = g.board.winning_line() {
            g.finish(Outcome {
                winner: Some(winner),
                line: Some(line),
                reason: EndReason::Line,
            });
        } else if g.board.is_full() {
            g.finish(Outcome {
                winner: None,
                line: None,
                reason: EndReason::Draw,
            });
        }
        Ok(g)
    }

    /// `mark` puts its mark on `cell`, chosen while its board showed version `seen` of the
    /// game (if known), as the game's version `version`. A move chosen before this round
    /// began is refused as the round it was meant for is over, and one chosen before the
    /// round's last move as stale: retried after an outage, or chosen on a board an event had
    /// not reached yet, it would otherwise land on a board its player never saw.
    pub fn play_seen(
        &self,
        mark: Mark,
        cell: Cell,
        seen: Option<u64>,
        version: u64,
    ) -> Result<GameState, RuleError> {
        if let Some(seen) = seen {
            if seen < self.began {
                return Err(RuleError::GameOver);
            }
            if seen < self.moved {
                return Err(RuleError::StaleBoard);
            }
        }
        let mut g = self.play(mark, cell)?;
        g.moved = version;
        Ok(g)
    }

    /// `loser` gives up the round (resigned, or away past the grace period).
    pub fn concede(&self, loser: Mark, reason: EndReason) -> Result<GameState, RuleError> {
        self.expect_playing()?;
        let mut g = self.clone();
        g.finish(Outcome {
            winner: Some(loser.other()),
            line: None,
            reason,
        });
        Ok(g)
    }

    /// `mark` asks for another round. The round starts only once both have asked, so that
    /// no single player can reset the board under the other. Returns the new state and
    /// whether a new round began. `version` is the game's version once this request is
    /// applied: the new round's [`GameState::began`].
    pub fn request_rematch(
        &self,
        mark: Mark,
        version: u64,
    ) -> Result<(GameState, bool), RuleError> {
        match self.status {
            Status::Finished => {}
            Status::Aborted => return Err(RuleError::Aborted),
            Status::Waiting => return Err(RuleError::NotStarted),
            Status::Playing => return Err(RuleError::RoundInProgress),
        }
        let mut g = self.clone();
        *g.rematch.get_mut(mark) = true;
        if g.rematch.x && g.rematch.o {
            g.round += 1;
            g.board = Board::default();
            g.moves.clear();
            g.turn = GameState::starter(g.round);
            g.status = Status::Playing;
            g.result = None;
            g.rematch = Seats::default();
            g.began = version;
            g.moved = 0;
            return Ok((g, true));
        }
        Ok((g, false))
    }

    /// The player holding `mark` is now called `name`. Names are not part of the play: this
    /// works in any status but an aborted game's, and changes nothing else.
    pub fn rename(&self, mark: Mark, name: impl Into<String>) -> Result<GameState, RuleError> {
        if self.status == Status::Aborted {
            return Err(RuleError::Aborted);
        }
        if self.players.get(mark).is_none() {
            return Err(RuleError::SeatEmpty);
        }
        let mut g = self.clone();
        *g.players.get_mut(mark) = Some(name.into());
        Ok(g)
    }

    /// The creator takes back a game nobody has joined yet. Only a waiting game can be
    /// cancelled: once O sits down there is an opponent to resign to instead.
    pub fn cancel(&self) -> Result<GameState, RuleError> {
        match self.status {
            Status::Waiting => Ok(self.abort()),
            Status::Playing => Err(RuleError::RoundInProgress),
            Status::Finished => Err(RuleError::GameOver),
            Status::Aborted => Err(RuleError::Aborted),
        }
    }

    /// A quick-match game that one player never joined.
    pub fn abort(&self) -> GameState {
        let mut g = self.clone();
        g.status = Status::Aborted;
        g
    }

    fn expect_playing(&self) -> Result<(), RuleError> {
        match self.status {
            Status::Playing => Ok(()),
            Status::Waiting => Err(RuleError::NotStarted),
            Status::Finished => Err(RuleError::GameOver),
            Status::Aborted => Err(RuleError::Aborted),
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.status = Status::Finished;
        match outcome.winner {
            Some(Mark::X) => self.score.x += 1,
            Some(Mark::O) => self.score.o += 1,
            None => self.score.draws += 1,
        }
        self.result = Some(outcome);
        self.rematch = Seats::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cell(n: i64) -> Cell {
        Cell::new(n).unwrap()
    }

    fn started() -> GameState {
        GameState::new("ann").seat_o("bob").unwrap()
    }

    /// Plays alternating moves from X; panics on an illegal one.
    fn play_all(mut g: GameState, cells: &[i64]) -> GameState {
        for &c in cells {
            let mark = g.turn;
            g = g.play(mark, cell(c)).unwrap();
        }
        g
    }

    #[test]
    fn cells_outside_the_board_are_rejected() {
        for n in [-1, 9, 10, i64::MAX, i64::MIN] {
            assert_eq!(Cell::new(n), Err(RuleError::CellOutOfRange));
        }
        for n in 0..9 {
            assert_eq!(cell(n).index(), n as usize);
        }
    }

    #[test]
    fn a_new_game_waits_for_o_and_rejects_moves() {
        let g = GameState::new("ann");
        assert_eq!(g.status, Status::Waiting);
        assert_eq!(g.play(Mark::X, cell(0)), Err(RuleError::NotStarted));
    }

    #[test]
    fn the_third_player_cannot_take_a_seat() {
        assert_eq!(started().seat_o("eve"), Err(RuleError::SeatTaken));
    }

    #[test]
    fn x_moves_first_and_turns_alternate() {
        let g = started();
        assert_eq!(g.play(Mark::O, cell(0)), Err(RuleError::NotYourTurn));
        let g = g.play(Mark::X, cell(0)).unwrap();
        assert_eq!(g.turn, Mark::O);
        assert_eq!(g.play(Mark::X, cell(1)), Err(RuleError::NotYourTurn));
        assert_eq!(g.play(Mark::O, cell(0)), Err(RuleError::CellOccupied));
    }

    #[test]
    fn every_line_wins() {
        for line in LINES {
            // X takes the line; O answers on cells off the line, never completing its own.
            let others: Vec<u8> = (0..9).filter(|c| !line.contains(c)).collect();
            let mut g = started();
            for (i, &x) in line.iter().enumerate() {
                g = g.play(Mark::X, cell(i64::from(x))).unwrap();
                if i < 2 {
                    let o = others
                        .iter()
                        .copied()
                        .find(|&c| {
                            g.board.get(cell(i64::from(c))).is_none()
                                && g.play(Mark::O, cell(i64::from(c)))
                                    .map(|n| n.status == Status::Playing)
                                    .unwrap_or(false)
                        })
                        .unwrap();
                    g = g.play(Mark::O, cell(i64::from(o))).unwrap();
                }
            }
            assert_eq!(g.status, Status::Finished, "line {line:?}");
            let r = g.result.unwrap();
            assert_eq!(r.winner, Some(Mark::X));
            assert_eq!(r.line, Some(line));
            assert_eq!(r.reason, EndReason::Line);
        }
    }

    #[test]
    fn a_full_board_without_a_line_is_a_draw() {
        // X O X / X O O / O X X
        let g = play_all(started(), &[0, 1, 2, 4, 3, 5, 7, 6, 8]);
        assert_eq!(g.board.to_string(), "XOXXOOOXX");
        assert_eq!(g.status, Status::Finished);
        assert_eq!(
            g.result,
            Some(Outcome {
                winner: None,
                line: None,
                reason: EndReason::Draw
            })
        );
    }

    #[test]
    fn a_win_on_the_last_cell_is_a_win_not_a_draw() {
        // X fills the board and completes 2-4-6 with the ninth move.
        let g = play_all(started(), &[0, 1, 2, 3, 4, 8, 5, 7, 6]);
        assert!(g.board.is_full());
        assert_eq!(g.result.unwrap().reason, EndReason::Line);
        assert_eq!(g.result.unwrap().winner, Some(Mark::X));
    }

    #[test]
    fn play_stops_after_the_round_ends() {
        let g = play_all(started(), &[0, 3, 1, 4, 2]);
        assert_eq!(g.status, Status::Finished);
        assert_eq!(g.play(Mark::O, cell(5)), Err(RuleError::GameOver));
        assert_eq!(
            g.concede(Mark::O, EndReason::Resign),
            Err(RuleError::GameOver)
        );
    }

    #[test]
    fn a_rematch_needs_both_players_and_alternates_the_starter() {
        let g = play_all(started(), &[0, 3, 1, 4, 2]);
        assert_eq!(
            started().request_rematch(Mark::X, 7),
            Err(RuleError::RoundInProgress)
        );
        let (g, began) = g.request_rematch(Mark::X, 7).unwrap();
        assert!(!began);
        assert_eq!(g.status, Status::Finished);
        // Asking twice does not start the round alone.
        let (g, began) = g.request_rematch(Mark::X, 7).unwrap();
        assert!(!began);
        let (g, began) = g.request_rematch(Mark::O, 7).unwrap();
        assert!(began);
        assert_eq!(g.round, 2);
        assert_eq!(g.turn, Mark::O);
        assert_eq!(g.board, Board::default());
        assert_eq!(g.result, None);
        assert_eq!(g.play(Mark::X, cell(0)), Err(RuleError::NotYourTurn));
    }

    #[test]
    fn moves_are_listed_in_order_and_cleared_by_the_next_round() {
        let g = play_all(started(), &[4, 0, 8]);
        assert_eq!(g.moves, vec![cell(4), cell(0), cell(8)]);
        let g = play_all(started(), &[0, 3, 1, 4, 2]);
        assert_eq!(g.status, Status::Finished);
        assert_eq!(g.moves.len(), 5);
        let (g, _) = g.request_rematch(Mark::X, 7).unwrap();
        assert_eq!(
            g.moves.len(),
            5,
            "a finished round keeps its moves until the next starts"
        );
        let (g, began) = g.request_rematch(Mark::O, 7).unwrap();
        assert!(began);
        assert!(g.moves.is_empty());
    }

    #[test]
    fn the_score_counts_wins_by_player_and_draws_across_rounds() {
        let g = play_all(started(), &[0, 3, 1, 4, 2]);
        assert_eq!(
            g.score,
            Score {
                x: 1,
                o: 0,
                draws: 0
            }
        );
        let (g, _) = g.request_rematch(Mark::X, 7).unwrap();
        let (g, _) = g.request_rematch(Mark::O, 7).unwrap();
        // O starts round 2; the same cells make a draw.
        let g = play_all(g, &[0, 1, 2, 4, 3, 5, 7, 6, 8]);
        assert_eq!(g.result.unwrap().reason, EndReason::Draw);
        assert_eq!(
            g.score,
            Score {
                x: 1,
                o: 0,
                draws: 1
            }
        );
        let (g, _) = g.request_rematch(Mark::X, 7).unwrap();
        let (g, _) = g.request_rematch(Mark::O, 7).unwrap();
        let g = g.concede(Mark::X, EndReason::Resign).unwrap();
        assert_eq!(
            g.score,
            Score {
                x: 1,
                o: 1,
                draws: 1
            }
        );
        assert_eq!(g.score.rounds(), 3);
    }

    #[test]
    fn a_rename_changes_only_the_name() {
        let g = play_all(started(), &[4, 0]);
        let r = g.rename(Mark::O, "Bobby").unwrap();
        assert_eq!(r.players.o.as_deref(), Some("Bobby"));
        assert_eq!(
            GameState {
                players: g.players.clone(),
                ..r
            },
            g
        );
        assert_eq!(
            GameState::new("ann").rename(Mark::O, "x"),
            Err(RuleError::SeatEmpty)
        );
        assert_eq!(
            GameState::matched("a", "b").abort().rename(Mark::X, "c"),
            Err(RuleError::Aborted)
        );
    }

    #[test]
    fn a_state_stored_before_moves_and_score_existed_still_loads() {
        let old = r#"{"board":"X........","turn":"O","status":"playing","round":1,"players":{"X":"a","O":"b"},"result":null,"rematch":{"X":false,"O":false}}"#;
        let g: GameState = serde_json::from_str(old).unwrap();
        assert!(g.moves.is_empty());
        assert_eq!(g.score, Score::default());
        assert_eq!(g.began, 0);
        // And a first round's state is written as before.
        assert!(!serde_json::to_string(&g).unwrap().contains("began"));
    }

    #[test]
    fn a_move_chosen_before_the_round_began_is_refused() {
        let g = play_all(started(), &[0, 3, 1, 4, 2]);
        let (g, _) = g.request_rematch(Mark::X, 8).unwrap();
        let (g, began) = g.request_rematch(Mark::O, 9).unwrap();
        assert!(began);
        assert_eq!(g.began, 9);
        assert!(serde_json::to_string(&g).unwrap().contains(r#""began":9"#));
        // Chosen on round 1's board (up to v8): the round it was meant for is over.
        assert_eq!(
            g.play_seen(Mark::O, cell(4), Some(8), 10),
            Err(RuleError::GameOver)
        );
        // Chosen on this round's board, or with no version known: played as usual.
        let played = g.play_seen(Mark::O, cell(4), Some(9), 10).unwrap();
        assert_eq!(played.board, g.play(Mark::O, cell(4)).unwrap().board);
        assert_eq!(played.moved, 10);
        assert!(g.play_seen(Mark::O, cell(4), None, 10).is_ok());
        // The rules still come first for a move of this round.
        assert_eq!(
            g.play_seen(Mark::X, cell(4), Some(12), 13),
            Err(RuleError::NotYourTurn)
        );
        // X chose on v9, before O's move (v10) reached its board: stale, whatever the cell.
        assert_eq!(
            played.play_seen(Mark::X, cell(0), Some(9), 11),
            Err(RuleError::StaleBoard)
        );
        // Chosen on v10, or on a later version of the same board (a rename): played.
        assert!(played.play_seen(Mark::X, cell(0), Some(10), 11).is_ok());
        assert!(played.play_seen(Mark::X, cell(0), Some(11), 12).is_ok());
        // The next round starts clean.
        let done = play_all(played, &[0, 3, 1, 5]);
        let (done, _) = done.request_rematch(Mark::X, 20).unwrap();
        let (next, _) = done.request_rematch(Mark::O, 21).unwrap();
        assert_eq!((next.began, next.moved), (21, 0));
    }

    #[test]
    fn conceding_gives_the_round_to_the_other_player() {
        let g = started().concede(Mark::X, EndReason::Forfeit).unwrap();
        assert_eq!(g.status, Status::Finished);
        assert_eq!(g.result.unwrap().winner, Some(Mark::O));
        assert_eq!(
            GameState::new("a").concede(Mark::O, EndReason::Forfeit),
            Err(RuleError::NotStarted)
        );
    }

    #[test]
    fn an_aborted_game_refuses_everything() {
        let g = GameState::matched("a", "b").abort();
        assert_eq!(g.play(Mark::X, cell(0)), Err(RuleError::Aborted));
        assert_eq!(g.request_rematch(Mark::X, 7), Err(RuleError::Aborted));
        assert_eq!(g.seat_o("c"), Err(RuleError::Aborted));
    }

    #[test]
    fn only_a_waiting_game_can_be_cancelled() {
        let waiting = GameState::new("ann");
        let cancelled = waiting.cancel().unwrap();
        assert_eq!(cancelled.status, Status::Aborted);
        assert_eq!(
            GameState {
                status: Status::Waiting,
                ..cancelled.clone()
            },
            waiting,
            "nothing but the status changes"
        );
        assert_eq!(cancelled.seat_o("bob"), Err(RuleError::Aborted));
        assert_eq!(cancelled.cancel(), Err(RuleError::Aborted));
        assert_eq!(started().cancel(), Err(RuleError::RoundInProgress));
        let finished = started().concede(Mark::X, EndReason::Resign).unwrap();
        assert_eq!(finished.cancel(), Err(RuleError::GameOver));
    }

    #[test]
    fn the_computer_acts_only_on_its_turn_and_always_agrees_to_a_rematch() {
        use computer::Level;
        let g = GameState::against_computer("ann", Level::Easy, "Computer");
        assert_eq!(g.status, Status::Playing);
        assert!(g.is_computer(Mark::O) && !g.is_computer(Mark::X));
        assert_eq!(g.computer_turn(), None, "the player starts round 1");
        let g = g.play(Mark::X, cell(4)).unwrap();
        assert_eq!(g.computer_turn(), Some(ComputerTurn::Play(Mark::O)));
        let g = g.concede(Mark::O, EndReason::Resign).unwrap();
        assert_eq!(
            g.computer_turn(),
            None,
            "nobody asked for another round yet"
        );
        let (g, began) = g.request_rematch(Mark::X, 9).unwrap();
        assert!(!began);
        assert_eq!(g.computer_turn(), Some(ComputerTurn::Rematch(Mark::O)));
        let (g, began) = g.request_rematch(Mark::O, 10).unwrap();
        assert!(began);
        assert_eq!(
            g.computer_turn(),
            Some(ComputerTurn::Play(Mark::O)),
            "O starts round 2"
        );
        assert_eq!(GameState::matched("a", "b").computer_turn(), None);
        assert_eq!(g.abort().computer_turn(), None);
    }

    #[test]
    fn rated_computer_and_ratings_are_absent_from_the_wire_unless_set() {
        let g = started();
        let json = serde_json::to_string(&g).unwrap();
        for field in ["rated", "computer", "ratings"] {
            assert!(!json.contains(field), "{json}");
        }
        let mut g = GameState::against_computer("ann", computer::Level::Perfect, "Computer");
        g.rated = true;
        g.ratings.x = Some(1512);
        let json = serde_json::to_string(&g).unwrap();
        assert!(json.contains(r#""rated":true"#), "{json}");
        assert!(
            json.contains(r#""computer":{"mark":"O","level":"perfect"}"#),
            "{json}"
        );
        assert!(json.contains(r#""ratings":{"X":1512,"O":null}"#), "{json}");
        assert_eq!(serde_json::from_str::<GameState>(&json).unwrap(), g);
    }

    #[test]
    fn the_board_round_trips_through_its_wire_form() {
        let g = play_all(started(), &[4, 0, 8]);
        let json = serde_json::to_string(&g).unwrap();
        assert!(json.contains(r#""board":"O...X...X""#), "{json}");
        let back: GameState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, g);
        assert!("XO.".parse::<Board>().is_err());
        assert!("XO.......Z".parse::<Board>().is_err());
        assert!("XO......Z".parse::<Board>().is_err());
    }

    /// The board a round's move list leads to, marks alternating from the round's starter.
    fn replay(round: u32, moves: &[Cell]) -> Board {
        let mut b = Board::default();
        let mut mark = GameState::starter(round);
        for &c in moves {
            b.0[c.index()] = Some(mark);
            mark = mark.other();
        }
        b
    }

    /// Reference check of a board's validity, written independently of the rules above.
    fn lines_of(board: &Board, mark: Mark) -> usize {
        LINES
            .iter()
            .filter(|l| l.iter().all(|&i| board.0[usize::from(i)] == Some(mark)))
            .count()
    }

    proptest! {
        /// Any sequence of attempted moves, legal or not: the game never reaches an invalid
        /// board, a win is reported exactly when a line is complete, and nothing changes
        /// after the round ends.
        #[test]
        fn random_play_keeps_every_invariant(moves in proptest::collection::vec((any::<bool>(), 0i64..9), 0..40)) {
            let mut g = started();
            for (is_x, c) in moves {
                let mark = if is_x { Mark::X } else { Mark::O };
                let before = g.clone();
                match g.play(mark, cell(c)) {
                    Ok(next) => {
                        prop_assert_eq!(before.status, Status::Playing);
                        prop_assert_eq!(before.turn, mark);
                        prop_assert!(before.board.get(cell(c)).is_none());
                        prop_assert_eq!(next.board.get(cell(c)), Some(mark));
                        g = next;
                    }
                    Err(e) => {
                        // A refused move is explained by exactly the rule it breaks.
                        let expected = if before.status == Status::Finished {
                            RuleError::GameOver
                        } else if before.turn != mark {
                            RuleError::NotYourTurn
                        } else {
                            RuleError::CellOccupied
                        };
                        prop_assert_eq!(e, expected);
                        prop_assert_eq!(&g, &before);
                    }
                }
                let (x, o) = (g.board.count(Mark::X), g.board.count(Mark::O));
                prop_assert!(x == o || x == o + 1, "X leads by at most one: {}", g.board);
                let (xl, ol) = (lines_of(&g.board, Mark::X), lines_of(&g.board, Mark::O));
                prop_assert!(xl == 0 || ol == 0, "both players cannot have a line");
                let complete = xl + ol > 0;
                let won = matches!(g.result, Some(Outcome { reason: EndReason::Line, .. }));
                prop_assert_eq!(won, complete, "win reported iff a line is complete");
                if won {
                    let r = g.result.unwrap();
                    let winner = r.winner.unwrap();
                    prop_assert!(lines_of(&g.board, winner) > 0);
                    prop_assert!(r.line.unwrap().iter().all(|&i| g.board.0[usize::from(i)] == Some(winner)));
                }
                let drawn = matches!(g.result, Some(Outcome { reason: EndReason::Draw, .. }));
                prop_assert_eq!(drawn, g.board.is_full() && !complete);
                prop_assert_eq!(g.status == Status::Finished, won || drawn);
                // The move list replays to the board, and the score counts this round once.
                prop_assert_eq!(replay(g.round, &g.moves), g.board);
                prop_assert_eq!(g.score.rounds(), u32::from(g.status == Status::Finished));
            }
        }

        /// Rounds after rematches keep the same invariants, and whoever starts alternates;
        /// the score adds up every round's result and the move list replays each round.
        #[test]
        fn rematches_alternate_the_first_player(rounds in 1u32..6, seed in proptest::collection::vec(0i64..9, 60)) {
            let mut g = started();
            let mut seed = seed.into_iter().cycle();
            let mut tally = Score::default();
            for round in 1..=rounds {
                prop_assert_eq!(g.round, round);
                prop_assert_eq!(g.turn, if round % 2 == 1 { Mark::X } else { Mark::O });
                prop_assert!(g.moves.is_empty());
                while g.status == Status::Playing {
                    let start = seed.next().unwrap();
                    let free = (0..9).map(|k| (start + k) % 9).find(|&c| g.board.get(cell(c)).is_none()).unwrap();
                    g = g.play(g.turn, cell(free)).unwrap();
                    prop_assert_eq!(g.moves.last().copied(), Some(cell(free)));
                    prop_assert_eq!(replay(g.round, &g.moves), g.board);
                }
                prop_assert_eq!(g.status, Status::Finished);
                match g.result.unwrap().winner {
                    Some(Mark::X) => tally.x += 1,
                    Some(Mark::O) => tally.o += 1,
                    None => tally.draws += 1,
                }
                prop_assert_eq!(g.score, tally);
                let (next, began) = g.request_rematch(Mark::O, 7).unwrap();
                prop_assert!(!began);
                let at = u64::from(next.round) * 10;
                let (next, began) = next.request_rematch(Mark::X, at).unwrap();
                prop_assert!(began);
                prop_assert_eq!(next.began, at);
                // Whatever the previous round's board showed, a move chosen on it is refused.
                prop_assert_eq!(
                    next.play_seen(next.turn, cell(4), Some(at - 1), at + 1),
                    Err(RuleError::GameOver)
                );
                g = next;
            }
        }
    }
}
