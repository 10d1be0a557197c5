//! What the protocol says about profiles: a player's lasting record (rating, wins, draws,
//! losses, recent rounds), the leaderboard's rows, and the short form `welcome` carries.
//! No player id appears in any of them: a profile is shown by name, never by who holds it.

use crate::ids::GameId;
use serde::{Deserialize, Serialize};
use tictactoe_rules::computer::Level;
use tictactoe_rules::{Cell, EndReason, Mark};

/// A deviation above this makes a rating provisional: too few games to trust it (lichess's
/// rule, on the same Glicko-2 scale).
pub const PROVISIONAL_DEVIATION: u32 = 110;

/// Whether a rating with this (rounded) deviation is still provisional.
pub fn provisional(deviation: u32) -> bool {
    deviation > PROVISIONAL_DEVIATION
}

/// The part of a profile `welcome` shows, for the page's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileBadge {
    pub rating: u32,
    pub provisional: bool,
}

/// A profile as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileView {
    pub name: String,
    /// Glicko-2 rating, rounded.
    pub rating: u32,
    /// Its deviation (RD), rounded.
    pub deviation: u32,
    pub provisional: bool,
    pub wins: u32,
    pub draws: u32,
    pub losses: u32,
    /// Place on the leaderboard (1 = top); `None` before the first rated round.
    pub rank: Option<u32>,
    /// The most recent finished rounds, newest first.
    pub games: Vec<HistoryEntry>,
}

/// How a round ended for the profile's player.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundResult {
    Win,
    Loss,
    Draw,
}

/// One finished round in a profile's history: enough to list it and replay it move by move.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub game: GameId,
    pub round: u32,
    /// When it was recorded, ms since the epoch.
    pub ended_ms: u64,
    /// The profile's player's mark.
    pub you: Mark,
    /// The opponent's name at the round's end.
    pub opponent: String,
    /// The opponent's rating at the round's start; `None` without a profile (or the computer).
    pub opponent_rating: Option<u32>,
    /// The computer's level when the opponent was the computer.
    pub computer: Option<Level>,
    pub result: RoundResult,
    pub reason: EndReason,
    /// Who moved first: `moves` alternates from there.
    pub starter: Mark,
    pub moves: Vec<Cell>,
    /// Created rated. A rated round between two profiles from one address moves no rating:
    /// then `rating_before == rating_after`.
    pub rated: bool,
    /// The player's rating before and after the round: `None` in a casual round.
    pub rating_before: Option<u32>,
    pub rating_after: Option<u32>,
}

/// One row of the leaderboard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardRow {
    pub rank: u32,
    pub name: String,
    pub rating: u32,
    pub provisional: bool,
    pub wins: u32,
    pub draws: u32,
    pub losses: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rating_is_provisional_above_110_deviation() {
        assert!(provisional(350));
        assert!(provisional(111));
        assert!(!provisional(110));
        assert!(!provisional(45));
    }
}
