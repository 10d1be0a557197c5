//! The computer as an opponent: the cell it plays on a board at each [`Level`].
//! Pure: the caller supplies the randomness, so a game replays from a seed and the tests can
//! try every choice the computer could make.

use crate::{Board, Cell, Mark};
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr, sync::OnceLock};

/// How well the computer plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Any empty cell, uniformly at random.
    Easy,
    /// Wins when it can, blocks when it must, otherwise plays at random.
    Medium,
    /// Never loses. Among equally good cells it picks at random, so that it cannot be beaten
    /// by learning one line, nor read by always meeting the same one.
    Perfect,
}

impl Level {
    /// Every level, easiest first.
    pub const ALL: [Level; 3] = [Level::Easy, Level::Medium, Level::Perfect];

    /// The name on the wire and in settings, as serde spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Easy => "easy",
            Level::Medium => "medium",
            Level::Perfect => "perfect",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level name that is none of `easy`, `medium`, `perfect`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown level {0:?}: expected easy, medium or perfect")]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|level| level.as_str() == s)
            .ok_or_else(|| UnknownLevel(s.to_owned()))
    }
}

/// The cell the computer plays as `me`, taking `me` to be the mark to move. `rng(n)` must
/// return an index below `n`, uniformly for the levels to be as described; a larger one is
/// reduced modulo `n` rather than trusted. `None` when the round is over: a line is complete
/// or no cell is empty. Any board is accepted, even one that legal play cannot reach.
pub fn choose(
    board: &Board,
    me: Mark,
    level: Level,
    rng: &mut impl FnMut(usize) -> usize,
) -> Option<Cell> {
    if board.winning_line().is_some() {
        return None;
    }
    let free: Vec<Cell> = empty_cells(board).collect();
    let candidates = match level {
        Level::Easy => free,
        Level::Medium => {
            let wins = completing(board, &free, me);
            let blocks = completing(board, &free, me.other());
            if !wins.is_empty() {
                wins
            } else if !blocks.is_empty() {
                blocks
            } else {
                free
            }
        }
        Level::Perfect => best(board, &free, me),
    };
    let n = candidates.len();
    if n == 0 {
        return None;
    }
    candidates.get(rng(n) % n).copied()
}

/// A small seedable generator (SplitMix64) for callers that have none: `choose(.., &mut |n|
/// dice.below(n))`. Not for secrets; enough to make the computer's play varied.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An index below `n` (0 when `n` is 0). Multiply-shift rather than `%`: its bias is at
    /// most n / 2^64, nothing at the sizes of a board.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

fn all_cells() -> impl DoubleEndedIterator<Item = Cell> + Clone {
    (0..9).filter_map(|i| Cell::new(i).ok())
}

fn empty_cells(board: &Board) -> impl Iterator<Item = Cell> + '_ {
    all_cells().filter(|&c| board.get(c).is_none())
}

/// The cells among `free` that complete a line for `mark`. The board has no line yet, so any
/// line after the move is `mark`'s.
fn completing(board: &Board, free: &[Cell], mark: Mark) -> Vec<Cell> {
    free.iter()
        .copied()
        .filter(|&c| board.with(c, mark).winning_line().is_some())
        .collect()
}

/// The cells among `free` of the highest game value for `me`.
fn best(board: &Board, free: &[Cell], me: Mark) -> Vec<Cell> {
    let scored: Vec<(Cell, i8)> = free
        .iter()
        .map(|&c| (c, -value(&board.with(c, me), me.other())))
        .collect();
    let top = scored.iter().map(|&(_, v)| v).max();
    scored
        .into_iter()
        .filter(|&(_, v)| Some(v) == top)
        .map(|(c, _)| c)
        .collect()
}

/// Boards as base-3 numbers, one digit per cell.
const BOARDS: usize = 19_683;
const UNKNOWN: i8 = i8::MIN;

/// The game value of `board` with `mover` to move, for the mover: 0 for a draw; for a decided
/// game, 1 + the cells still empty at its end, positive when the mover wins. Counting the
/// empty cells is what makes the computer win as soon as it can and lose as late as it can.
fn value(board: &Board, mover: Mark) -> i8 {
    values()[key(board, mover)]
}

/// Every board with either mark to move, solved once on first use. The whole table is
/// 39,366 values, which is less work than one search from the empty board without it, and
/// covers boards that legal play cannot reach, so that no input needs a special case.
fn values() -> &'static [i8] {
    static VALUES: OnceLock<Vec<i8>> = OnceLock::new();
    VALUES.get_or_init(|| {
        let mut memo = vec![UNKNOWN; 2 * BOARDS];
        for code in 0..BOARDS {
            let board = decode(code);
            for mover in [Mark::X, Mark::O] {
                solve(board, mover, &mut memo);
            }
        }
        memo
    })
}

fn solve(board: Board, mover: Mark, memo: &mut [i8]) -> i8 {
    let k = key(&board, mover);
    if memo[k] != UNKNOWN {
        return memo[k];
    }
    let empty = empty_cells(&board).fold(0i8, |n, _| n + 1);
    let v = match board.winning_line() {
        Some((winner, _)) if winner == mover => 1 + empty,
        Some(_) => -(1 + empty),
        None => empty_cells(&board)
            .map(|c| -solve(board.with(c, mover), mover.other(), memo))
            .max()
            // A full board without a line.
            .unwrap_or(0),
    };
    memo[k] = v;
    v
}

fn key(board: &Board, mover: Mark) -> usize {
    let code = all_cells().fold(0, |code, c| {
        code * 3
            + match board.get(c) {
                None => 0,
                Some(Mark::X) => 1,
                Some(Mark::O) => 2,
            }
    });
    code * 2 + usize::from(mover == Mark::O)
}

fn decode(mut code: usize) -> Board {
    let mut board = Board::default();
    for c in all_cells().rev() {
        match code % 3 {
            1 => board = board.with(c, Mark::X),
            2 => board = board.with(c, Mark::O),
            _ => {}
        }
        code /= 3;
    }
    board
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashMap};

    fn board(s: &str) -> Board {
        s.parse().expect("a board written in the test")
    }

    fn cells(ns: &[usize]) -> BTreeSet<usize> {
        ns.iter().copied().collect()
    }

    fn empties(board: &Board) -> BTreeSet<usize> {
        empty_cells(board).map(Cell::index).collect()
    }

    fn is_over(board: &Board) -> bool {
        board.winning_line().is_some() || board.is_full()
    }

    /// Every cell `choose` can return, whatever the generator says: it takes the `rng(n)`-th
    /// of its candidates, and there are at most nine.
    fn every_choice(board: &Board, me: Mark, level: Level) -> BTreeSet<usize> {
        (0..9)
            .filter_map(|k| choose(board, me, level, &mut |_| k))
            .map(Cell::index)
            .collect()
    }

    /// The cells where `mark` would complete a line, worked out from the lines themselves.
    fn line_cells(board: &Board, mark: Mark) -> BTreeSet<usize> {
        crate::LINES
            .iter()
            .filter_map(|line| {
                let marks = line.map(|i| board.0[usize::from(i)]);
                let (mine, free): (Vec<_>, Vec<_>) = line
                    .iter()
                    .zip(marks)
                    .filter(|(_, m)| *m != Some(mark.other()))
                    .partition(|(_, m)| *m == Some(mark));
                (mine.len() == 2 && free.len() == 1).then(|| usize::from(*free[0].0))
            })
            .collect()
    }

    /// Every position legal play reaches from the empty board with `first` to move, finished
    /// ones included, with the mark to move in each, keyed by the board's text.
    fn reachable(first: Mark) -> HashMap<String, (Board, Mark)> {
        fn visit(board: Board, mover: Mark, seen: &mut HashMap<String, (Board, Mark)>) {
            if seen.insert(board.to_string(), (board, mover)).is_some() || is_over(&board) {
                return;
            }
            for c in empty_cells(&board) {
                visit(board.with(c, mover), mover.other(), seen);
            }
        }
        let mut seen = HashMap::new();
        visit(Board::default(), first, &mut seen);
        seen
    }

    /// The game's value for `mover` by plain minimax, written apart from the table the
    /// computer uses: 1 win, 0 draw, -1 loss.
    fn reference(board: &Board, mover: Mark, memo: &mut HashMap<(String, Mark), i8>) -> i8 {
        if let Some((winner, _)) = board.winning_line() {
            return if winner == mover { 1 } else { -1 };
        }
        if board.is_full() {
            return 0;
        }
        let k = (board.to_string(), mover);
        if let Some(&v) = memo.get(&k) {
            return v;
        }
        let v = empty_cells(board)
            .map(|c| -reference(&board.with(c, mover), mover.other(), memo))
            .max()
            .unwrap_or(0);
        memo.insert(k, v);
        v
    }

    /// The worst end for `computer` (1 win, 0 draw, -1 loss) over every reply the opponent
    /// can make and every cell Perfect may pick at each of its turns.
    fn worst_end(
        board: &Board,
        to_move: Mark,
        computer: Mark,
        memo: &mut HashMap<(String, Mark, Mark), i8>,
    ) -> i8 {
        if let Some((winner, _)) = board.winning_line() {
            return if winner == computer { 1 } else { -1 };
        }
        if board.is_full() {
            return 0;
        }
        let k = (board.to_string(), to_move, computer);
        if let Some(&v) = memo.get(&k) {
            return v;
        }
        let next = if to_move == computer {
            every_choice(board, computer, Level::Perfect)
        } else {
            empties(board)
        };
        assert!(!next.is_empty(), "no move on {board}");
        let v = next
            .into_iter()
            .map(|i| {
                let c = Cell::new(i as i64).expect("a cell from the board");
                worst_end(&board.with(c, to_move), to_move.other(), computer, memo)
            })
            .min()
            .unwrap_or(0);
        memo.insert(k, v);
        v
    }

    fn swap_marks(board: &Board) -> String {
        board
            .to_string()
            .chars()
            .map(|c| match c {
                'X' => 'O',
                'O' => 'X',
                other => other,
            })
            .collect()
    }

    #[test]
    fn legal_play_reaches_the_known_5478_positions_and_958_endings() {
        let from_x = reachable(Mark::X);
        assert_eq!(from_x.len(), 5_478, "the empty board included");
        let endings: Vec<&Board> = from_x
            .values()
            .map(|(b, _)| b)
            .filter(|b| is_over(b))
            .collect();
        assert_eq!(endings.len(), 958);
        let won_by = |mark| {
            endings
                .iter()
                .filter(|b| b.winning_line().map(|(w, _)| w) == Some(mark))
                .count()
        };
        assert_eq!(won_by(Mark::X), 626);
        assert_eq!(won_by(Mark::O), 316);
        assert_eq!(
            endings
                .iter()
                .filter(|b| b.winning_line().is_none())
                .count(),
            16
        );
        // Rounds that O starts reach the same positions with the marks swapped.
        let from_o = reachable(Mark::O);
        let mirrored: BTreeSet<String> = from_x.values().map(|(b, _)| swap_marks(b)).collect();
        assert_eq!(mirrored, from_o.keys().cloned().collect());
    }

    #[test]
    fn there_are_255168_games() {
        fn games(board: Board, mover: Mark, memo: &mut HashMap<String, u64>) -> u64 {
            if is_over(&board) {
                return 1;
            }
            if let Some(&n) = memo.get(&board.to_string()) {
                return n;
            }
            let n = empty_cells(&board)
                .map(|c| games(board.with(c, mover), mover.other(), memo))
                .sum();
            memo.insert(board.to_string(), n);
            n
        }
        assert_eq!(
            games(Board::default(), Mark::X, &mut HashMap::new()),
            255_168
        );
    }

    #[test]
    fn perfect_play_gets_the_game_value_from_every_reachable_position_against_any_opponent() {
        // From a drawn position it never loses, from a won one it always wins, whatever the
        // opponent does and whichever of its equally good cells it picks. Both rounds' first
        // movers, and the computer on either side of each.
        let mut reference_memo = HashMap::new();
        let mut memo = HashMap::new();
        let mut checked = 0;
        // Lost, drawn and won positions, each must occur for the check to mean anything.
        let mut by_value = [0; 3];
        for first in [Mark::X, Mark::O] {
            for (board, mover) in reachable(first).values() {
                if is_over(board) {
                    continue;
                }
                let value = reference(board, *mover, &mut reference_memo);
                let worst = worst_end(board, *mover, *mover, &mut memo);
                assert_eq!(worst, value, "{mover} to move on {board}");
                checked += 1;
                by_value[(value + 1) as usize] += 1;
            }
        }
        assert_eq!(checked, 2 * (5_478 - 958));
        assert!(by_value.iter().all(|&n| n > 0), "{by_value:?}");
    }

    #[test]
    fn perfect_never_loses_from_the_empty_board_as_either_mark_moving_first_or_second() {
        let mut memo = HashMap::new();
        for first in [Mark::X, Mark::O] {
            for computer in [Mark::X, Mark::O] {
                assert_eq!(worst_end(&Board::default(), first, computer, &mut memo), 0);
            }
        }
    }

    #[test]
    fn perfect_varies_its_opening_among_equally_good_cells() {
        // Every opening draws, so every cell is as good as any other.
        assert_eq!(
            every_choice(&Board::default(), Mark::X, Level::Perfect).len(),
            9
        );
        // Against a corner, only the centre draws.
        assert_eq!(
            every_choice(&board("X........"), Mark::O, Level::Perfect),
            cells(&[4])
        );
    }

    #[test]
    fn perfect_wins_at_once_rather_than_later() {
        // X wins at 2 now; 4 would win too, a move later, threatening both 2 and 7.
        let b = board("XX.O....O");
        assert_eq!(every_choice(&b, Mark::X, Level::Perfect), cells(&[2]));
        // And from every reachable position: whenever a line can be completed, it is.
        for (b, mover) in reachable(Mark::X).values() {
            let wins = line_cells(b, *mover);
            if !is_over(b) && !wins.is_empty() {
                assert!(
                    every_choice(b, *mover, Level::Perfect).is_subset(&wins),
                    "{b}"
                );
            }
        }
    }

    #[test]
    fn medium_wins_when_it_can_blocks_when_it_must_and_otherwise_plays_anywhere() {
        let mut single_threats = 0;
        for first in [Mark::X, Mark::O] {
            for (b, mover) in reachable(first).values() {
                if is_over(b) {
                    continue;
                }
                let wins = line_cells(b, *mover);
                let threats = line_cells(b, mover.other());
                let expected = if !wins.is_empty() {
                    wins
                } else if !threats.is_empty() {
                    single_threats += usize::from(threats.len() == 1);
                    threats
                } else {
                    empties(b)
                };
                assert_eq!(every_choice(b, *mover, Level::Medium), expected, "{b}");
            }
        }
        assert!(single_threats > 0);
        // Winning beats blocking: O completes 3-4-5 rather than stop X's 0-1-2.
        assert_eq!(
            every_choice(&board("XX.OO.X.."), Mark::O, Level::Medium),
            cells(&[5])
        );
    }

    #[test]
    fn easy_may_play_every_empty_cell_and_only_those() {
        for (b, mover) in reachable(Mark::X).values() {
            if !is_over(b) {
                assert_eq!(every_choice(b, *mover, Level::Easy), empties(b), "{b}");
            }
        }
    }

    #[test]
    fn easy_draws_reach_every_empty_cell_about_equally_often() {
        let mut dice = SplitMix64::new(7);
        for b in [Board::default(), board("X...O...X"), board("XOXOX.O..")] {
            let free = empties(&b);
            let mut seen: HashMap<usize, usize> = HashMap::new();
            let draws = 900 * free.len();
            for _ in 0..draws {
                let c = choose(&b, Mark::O, Level::Easy, &mut |n| dice.below(n));
                *seen.entry(c.expect("an empty cell").index()).or_default() += 1;
            }
            assert_eq!(seen.keys().copied().collect::<BTreeSet<_>>(), free);
            // 900 expected per cell; 6 standard deviations is about 170.
            assert!(seen.values().all(|&n| n.abs_diff(900) < 200), "{seen:?}");
        }
    }

    #[test]
    fn no_level_moves_once_the_round_is_over() {
        for b in ["XXXOO....", "XOXXOOOXX", "OOOOOOOOO", "XXXOOO..."] {
            for level in Level::ALL {
                for me in [Mark::X, Mark::O] {
                    assert_eq!(choose(&board(b), me, level, &mut |_| 0), None, "{b}");
                }
            }
        }
    }

    #[test]
    fn levels_are_named_in_lowercase_everywhere() {
        for level in Level::ALL {
            let json = serde_json::to_string(&level).expect("a level serialises");
            assert_eq!(json, format!("\"{level}\""));
            assert_eq!(
                serde_json::from_str::<Level>(&json).expect("and reads back"),
                level
            );
            assert_eq!(level.to_string().parse(), Ok(level));
        }
        assert_eq!(Level::Perfect.to_string(), "perfect");
        let err = "Hard".parse::<Level>().expect_err("not a level");
        assert_eq!(err, UnknownLevel("Hard".into()));
        assert_eq!(
            err.to_string(),
            r#"unknown level "Hard": expected easy, medium or perfect"#
        );
        assert!(serde_json::from_str::<Level>(r#""Easy""#).is_err());
    }

    #[test]
    fn below_stays_below_its_bound() {
        let mut dice = SplitMix64::new(0);
        assert_eq!(dice.below(0), 0);
        assert!((0..1000).all(|_| dice.below(3) < 3));
        assert_eq!(
            SplitMix64::new(42).next_u64(),
            SplitMix64::new(42).next_u64()
        );
    }

    /// Plays a round out with `choose` on both sides; the winner, if any.
    fn play_out(first: Mark, levels: [Level; 2], seed: u64) -> Option<Mark> {
        let mut dice = SplitMix64::new(seed);
        let mut b = Board::default();
        let mut mover = first;
        while let Some(c) = choose(&b, mover, levels[usize::from(mover == Mark::O)], &mut |n| {
            dice.below(n)
        }) {
            assert!(b.get(c).is_none());
            b = b.with(c, mover);
            mover = mover.other();
        }
        b.winning_line().map(|(w, _)| w)
    }

    proptest! {
        /// Any board, legal or not, any mark, any generator output: no panic, and a move
        /// exactly when the round is not over, on an empty cell.
        #[test]
        fn any_board_gets_an_empty_cell_or_none(
            text in "[XO.]{9}",
            o in any::<bool>(),
            level in prop::sample::select(Level::ALL.to_vec()),
            k in any::<usize>(),
        ) {
            let b = board(&text);
            let me = if o { Mark::O } else { Mark::X };
            match choose(&b, me, level, &mut |_| k) {
                Some(c) => {
                    prop_assert!(!is_over(&b));
                    prop_assert_eq!(b.get(c), None);
                }
                None => prop_assert!(is_over(&b)),
            }
        }

        #[test]
        fn perfect_never_loses_to_easy_or_medium_and_draws_with_itself(
            seed in any::<u64>(),
            first_o in any::<bool>(),
        ) {
            let first = if first_o { Mark::O } else { Mark::X };
            for other in [Level::Easy, Level::Medium] {
                prop_assert_ne!(play_out(first, [Level::Perfect, other], seed), Some(Mark::O));
                prop_assert_ne!(play_out(first, [other, Level::Perfect], seed), Some(Mark::X));
            }
            prop_assert_eq!(play_out(first, [Level::Perfect, Level::Perfect], seed), None);
        }
    }
}
