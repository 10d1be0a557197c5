//! Profiles, histories, recovery codes and the leaderboard, as `profile.lua`,
//! `record_round.lua` and `leaderboard.lua` keep them, for a lone instance.

use super::{MemoryStore, ms, now_ms};
use crate::store::StoreResult;
use crate::store::profiles::{
    BoardRead, BoardRecord, ProfileCreation, ProfileRead, ProfileRecord, ProfileStore, Recorded,
    RoundRecord, new_salt,
};
use async_trait::async_trait;
use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::profiles::RoundResult;
use tictactoe_rules::glicko2::Rating;

#[derive(Default)]
pub(super) struct MemProfiles {
    profiles: HashMap<PlayerId, MemProfile>,
    /// Code hash -> player.
    codes: HashMap<String, PlayerId>,
    /// Player -> rating, for profiles with a rated round.
    board: HashMap<PlayerId, f64>,
    /// Recorded rounds -> when the marker lapses (ms).
    recorded: HashMap<(GameId, u32), u64>,
    /// Made on first use, as Redis's is.
    salt: Option<String>,
}

struct MemProfile {
    record: ProfileRecord,
    code: String,
    /// Newest first.
    history: VecDeque<String>,
}

impl MemProfiles {
    pub(super) fn purge(&mut self, now: u64) {
        self.recorded.retain(|_, until| *until > now);
    }

    fn set_code(&mut self, player: &PlayerId, code: &str) {
        let Some(p) = self.profiles.get_mut(player) else {
            return;
        };
        self.codes.remove(&p.code);
        p.code = code.to_string();
        p.record.version += 1;
        self.codes.insert(code.to_string(), player.clone());
    }

    /// The board in Redis's ZREVRANGE order: highest rating first, ties by the member's
    /// bytes, highest first.
    fn ranked(&self) -> Vec<(&PlayerId, f64)> {
        let mut rows: Vec<(&PlayerId, f64)> = self.board.iter().map(|(p, r)| (p, *r)).collect();
        rows.sort_by(|a, b| {
            b.1.partial_cmp(&a.1)
                .unwrap_or(Ordering::Equal)
                .then_with(|| b.0.as_str().cmp(a.0.as_str()))
        });
        rows
    }

    fn row(&self, rank: usize, player: &PlayerId) -> Option<BoardRecord> {
        let r = &self.profiles.get(player)?.record;
        Some(BoardRecord {
            rank: rank as u32 + 1,
            name: r.name.clone(),
            rating: r.rating.rating,
            deviation: r.rating.deviation,
            wins: r.wins,
            draws: r.draws,
            losses: r.losses,
        })
    }
}

#[async_trait]
impl ProfileStore for MemoryStore {
    async fn profile_create(
        &self,
        player: &PlayerId,
        name: &str,
        address: &str,
        code_hash: &str,
    ) -> StoreResult<ProfileCreation> {
        let mut inner = self.lock();
        let p = &mut inner.profiles;
        let created = if p.profiles.contains_key(player) {
            ProfileCreation::Existed
        } else {
            let record = ProfileRecord {
                name: name.to_string(),
                rating: Rating::new_player(),
                wins: 0,
                draws: 0,
                losses: 0,
                rated_games: 0,
                address: address.to_string(),
                version: 0,
                created_ms: now_ms(),
            };
            p.profiles.insert(
                player.clone(),
                MemProfile {
                    record,
                    code: String::new(),
                    history: VecDeque::new(),
                },
            );
            ProfileCreation::Created
        };
        p.set_code(player, code_hash);
        Ok(created)
    }

    async fn profile_new_code(&self, player: &PlayerId, code_hash: &str) -> StoreResult<bool> {
        let mut inner = self.lock();
        let p = &mut inner.profiles;
        if !p.profiles.contains_key(player) {
            return Ok(false);
        }
        p.set_code(player, code_hash);
        Ok(true)
    }

    async fn profile_read(
        &self,
        player: &PlayerId,
        history: usize,
    ) -> StoreResult<Option<ProfileRead>> {
        let inner = self.lock();
        let p = &inner.profiles;
        let Some(profile) = p.profiles.get(player) else {
            return Ok(None);
        };
        let rank = p
            .board
            .contains_key(player)
            .then(|| p.ranked().iter().position(|(q, _)| *q == player))
            .flatten()
            .map(|i| i as u32 + 1);
        Ok(Some(ProfileRead {
            record: profile.record.clone(),
            history: profile.history.iter().take(history).cloned().collect(),
            rank,
        }))
    }

    async fn profile_records(
        &self,
        players: &[&PlayerId],
    ) -> StoreResult<Vec<Option<ProfileRecord>>> {
        let inner = self.lock();
        Ok(players
            .iter()
            .map(|p| inner.profiles.profiles.get(*p).map(|m| m.record.clone()))
            .collect())
    }

    async fn profile_of_code(&self, code_hash: &str) -> StoreResult<Option<PlayerId>> {
        Ok(self.lock().profiles.codes.get(code_hash).cloned())
    }

    async fn profile_delete(&self, player: &PlayerId) -> StoreResult<bool> {
        let mut inner = self.lock();
        let p = &mut inner.profiles;
        let Some(gone) = p.profiles.remove(player) else {
            return Ok(false);
        };
        p.codes.remove(&gone.code);
        p.board.remove(player);
        Ok(true)
    }

    async fn profile_rename(&self, player: &PlayerId, name: &str) -> StoreResult<()> {
        if let Some(p) = self.lock().profiles.profiles.get_mut(player)
            && p.record.name != name
        {
            p.record.name = name.to_string();
            p.record.version += 1;
        }
        Ok(())
    }

    async fn address_salt(&self) -> StoreResult<String> {
        let mut inner = self.lock();
        Ok(inner.profiles.salt.get_or_insert_with(new_salt).clone())
    }

    async fn profile_seen(
        &self,
        player: &PlayerId,
        address: &str,
    ) -> StoreResult<Option<ProfileRecord>> {
        let mut inner = self.lock();
        let Some(p) = inner.profiles.profiles.get_mut(player) else {
            return Ok(None);
        };
        if p.record.address != address {
            p.record.address = address.to_string();
            p.record.version += 1;
        }
        Ok(Some(p.record.clone()))
    }

    async fn record_round(&self, round: &RoundRecord<'_>) -> StoreResult<Recorded> {
        let now = now_ms();
        let mut inner = self.lock();
        let p = &mut inner.profiles;
        p.purge(now);
        let marker = (round.game.clone(), round.round);
        if p.recorded.contains_key(&marker) {
            return Ok(Recorded::Already);
        }
        let stale = round.seats.iter().any(|seat| {
            seat.rating.is_some_and(|w| {
                p.profiles.get(seat.player).map(|m| m.record.version) != Some(w.expected_version)
            })
        });
        if stale {
            return Ok(Recorded::Stale);
        }
        p.recorded.insert(marker, now + ms(round.marker_ttl));
        for seat in &round.seats {
            let Some(m) = p.profiles.get_mut(seat.player) else {
                continue;
            };
            m.history.push_front(seat.entry.clone());
            m.history.truncate(round.history_len);
            let r = &mut m.record;
            match seat.result {
                RoundResult::Win => r.wins += 1,
                RoundResult::Draw => r.draws += 1,
                RoundResult::Loss => r.losses += 1,
            }
            if let Some(w) = seat.rating {
                r.rating = w.rating;
                r.rated_games += 1;
                p.board.insert(seat.player.clone(), w.rating.rating);
            }
            r.version += 1;
        }
        Ok(Recorded::Done)
    }

    async fn leaderboard_since(
        &self,
        me: Option<&PlayerId>,
        top: usize,
        around: usize,
        _known: Option<u64>,
    ) -> StoreResult<BoardRead> {
        let inner = self.lock();
        let p = &inner.profiles;
        let ranked = p.ranked();
        let rows = |from: usize, to: usize| -> Vec<BoardRecord> {
            ranked
                .iter()
                .enumerate()
                .skip(from)
                .take(to.saturating_sub(from))
                .filter_map(|(i, (player, _))| p.row(i, player))
                .collect()
        };
        let mut board = BoardRead {
            top: rows(0, top),
            ..BoardRead::default()
        };
        if let Some(me) = me
            && let Some(rank) = ranked.iter().position(|(q, _)| *q == me)
        {
            board.me = p.row(rank, me);
            board.around = rows(rank.saturating_sub(around), rank + around + 1);
        }
        Ok(board)
    }
}
