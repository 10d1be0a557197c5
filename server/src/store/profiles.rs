//! Profiles as the store keeps them: the lasting record of a player (rating, counts, recovery
//! code hash, last address), its recent rounds, the leaderboard, and the one atomic step that
//! records a finished round exactly once. Every key of it shares one slot (`{profiles}`), so
//! that step updates both players, both histories and the board together.
//!
//! History entries reach the store rendered (JSON, newest first) and come back verbatim: the
//! store does not know their layout.

use super::StoreResult;
use async_trait::async_trait;
use std::time::Duration;
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::profiles::RoundResult;
use tictactoe_rules::glicko2::Rating;

/// A profile's hash.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileRecord {
    pub name: String,
    pub rating: Rating,
    pub wins: u32,
    pub draws: u32,
    pub losses: u32,
    /// Rounds that moved the rating.
    pub rated_games: u32,
    /// Short hash of the address of the player's last `hello` (never shown): two profiles
    /// with the same one do not rate each other.
    pub address: String,
    /// Bumped by every write: a rating update computed from this record is applied only if
    /// it is still the newest.
    pub version: u64,
    pub created_ms: u64,
}

/// A profile with its recent rounds and its place on the board.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileRead {
    pub record: ProfileRecord,
    /// History entries as recorded, newest first.
    pub history: Vec<String>,
    /// 1-based place on the leaderboard; `None` before the first rated round.
    pub rank: Option<u32>,
}

/// A new rating for a seat, to apply only if the profile is still at `expected_version`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatingWrite {
    pub expected_version: u64,
    pub rating: Rating,
}

/// One seat's part in recording a round: its history entry, its count, and perhaps its new
/// rating. A seat whose profile no longer exists (deleted meanwhile) is skipped.
#[derive(Clone, Debug)]
pub struct RoundSeat<'a> {
    pub player: &'a PlayerId,
    pub entry: String,
    pub result: RoundResult,
    pub rating: Option<RatingWrite>,
}

/// A finished round to record: once per (game, round), whoever asks.
#[derive(Clone, Debug)]
pub struct RoundRecord<'a> {
    pub game: &'a GameId,
    pub round: u32,
    pub seats: Vec<RoundSeat<'a>>,
    /// How long "this round is recorded" is remembered: longer than a game lives, so that
    /// no late caller can record it again.
    pub marker_ttl: Duration,
    /// History entries kept per profile.
    pub history_len: usize,
}

/// What [`ProfileStore::record_round`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    Done,
    /// Someone recorded this round before: nothing changed.
    Already,
    /// A profile to re-rate changed since it was read: nothing changed, read and try again.
    Stale,
}

/// One row of the leaderboard as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct BoardRecord {
    pub rank: u32,
    pub name: String,
    pub rating: f64,
    pub deviation: f64,
    pub wins: u32,
    pub draws: u32,
    pub losses: u32,
}

/// The top of the board, and a player's row and neighbours.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BoardRead {
    /// The board's version when read (see [`ProfileStore::leaderboard_since`]); 0 from a store
    /// that keeps none.
    pub version: u64,
    /// The caller's top rows, at `version`, are current: `top` was not read, and is empty.
    pub top_unchanged: bool,
    pub top: Vec<BoardRecord>,
    pub me: Option<BoardRecord>,
    pub around: Vec<BoardRecord>,
}

/// What creating a profile did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileCreation {
    Created,
    /// The player had a profile: it is kept, and the new code replaced its old one.
    Existed,
}

/// A new address salt (see [`ProfileStore::address_salt`]): 244 random bits, as hex.
pub(crate) fn new_salt() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The profile half of a store (a supertrait of [`super::Store`]).
#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// Makes `player` a profile with a new player's rating, unless it has one; either way
    /// `code_hash` becomes its recovery code (the old one stops working).
    async fn profile_create(
        &self,
        player: &PlayerId,
        name: &str,
        address: &str,
        code_hash: &str,
    ) -> StoreResult<ProfileCreation>;
    /// Replaces the profile's recovery code. False without a profile.
    async fn profile_new_code(&self, player: &PlayerId, code_hash: &str) -> StoreResult<bool>;
    /// The profile with its last `history` entries and its rank.
    async fn profile_read(
        &self,
        player: &PlayerId,
        history: usize,
    ) -> StoreResult<Option<ProfileRead>>;
    /// The records of several players at once (`None` for those without a profile).
    async fn profile_records(
        &self,
        players: &[&PlayerId],
    ) -> StoreResult<Vec<Option<ProfileRecord>>>;
    /// The player whose recovery code hashes to `code_hash`.
    async fn profile_of_code(&self, code_hash: &str) -> StoreResult<Option<PlayerId>>;
    /// Removes the profile, its history, its code and its board entry. False if none.
    async fn profile_delete(&self, player: &PlayerId) -> StoreResult<bool>;
    /// The profile, if any, is now called `name`.
    async fn profile_rename(&self, player: &PlayerId, name: &str) -> StoreResult<()>;
    /// The deployment's secret that profiles' address hashes are keyed with: made at random by
    /// the first instance that asks, then the same for every instance for as long as the
    /// profiles live (it has no lifetime either).
    async fn address_salt(&self) -> StoreResult<String>;
    /// The player said hello from `address`: remembered on its profile, which is returned.
    async fn profile_seen(
        &self,
        player: &PlayerId,
        address: &str,
    ) -> StoreResult<Option<ProfileRecord>>;
    /// Records a finished round exactly once: histories, counts, ratings, the board.
    async fn record_round(&self, round: &RoundRecord<'_>) -> StoreResult<Recorded>;
    /// The first `top` rows, and `me`'s row with up to `around` rows either side.
    async fn leaderboard(
        &self,
        me: Option<&PlayerId>,
        top: usize,
        around: usize,
    ) -> StoreResult<BoardRead> {
        self.leaderboard_since(me, top, around, None).await
    }
    /// [`ProfileStore::leaderboard`] for a caller that holds the top rows of the board at
    /// version `known`: while the board is still at that version they are not read again
    /// (`top_unchanged`). A store may always read them (the one in memory does: they cost it
    /// nothing).
    async fn leaderboard_since(
        &self,
        me: Option<&PlayerId>,
        top: usize,
        around: usize,
        known: Option<u64>,
    ) -> StoreResult<BoardRead>;
}
