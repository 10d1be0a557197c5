//! PresenceRecord in memory: connection counts per instance lease, the away clocks, and the leases
//! themselves, as `presence.lua` and `lease.lua` keep them.

use super::MemoryStore;
use super::{ms, now_ms};
use crate::store::{Absence, PresenceRecord};
use crate::store::{
    Attendance, LeaseRenewal, PresenceChange, PresenceEntry, PresenceEvent, SeatsView, StoreResult,
};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tictactoe_protocol::ids::GameId;
use tictactoe_protocol::templates::PresenceTemplate;
use tictactoe_protocol::{AwayReason, Role};
use tictactoe_rules::{Mark, Seats};

#[derive(Default)]
pub(super) struct MemPresence {
    /// `c|<lease>|<player>|<role>` -> connections.
    pub(super) conns: BTreeMap<String, i64>,
    pub(super) seen: Seats<bool>,
    pub(super) away: Seats<Option<u64>>,
    /// Why each seat emptied, while it is empty (`why|M` in presence.lua).
    pub(super) why: Seats<Option<AwayReason>>,
    pub(super) expires: u64,
}

impl MemPresence {
    pub(super) fn summary(&self) -> PresenceRecord {
        let mut p = PresenceRecord::default();
        let mut spectators = HashSet::new();
        for field in self.conns.keys() {
            let mut parts = field.splitn(4, '|').skip(2);
            let (player, role) = (parts.next(), parts.next());
            match role {
                Some("X") => p.players.x = true,
                Some("O") => p.players.o = true,
                Some(_) => {
                    spectators.insert(player.unwrap_or_default().to_string());
                }
                None => {}
            }
        }
        p.spectators = spectators.len() as u32;
        p
    }

    /// The summary with each emptied seat's absence, as presence.lua reports it.
    pub(super) fn view(&self, now: u64) -> PresenceRecord {
        let mut p = self.summary();
        for m in [Mark::X, Mark::O] {
            if *p.players.get(m) {
                continue;
            }
            if let (Some(reason), Some(since)) = (*self.why.get(m), *self.away.get(m)) {
                *p.away.get_mut(m) = Some(Absence {
                    reason,
                    for_ms: now.saturating_sub(since),
                });
            }
        }
        p
    }

    pub(super) fn lease_entries(&self, lease: &str) -> u64 {
        let prefix = format!("c|{lease}|");
        self.conns.keys().filter(|f| f.starts_with(&prefix)).count() as u64
    }

    /// Seat bookkeeping after a change, as presence.lua does it.
    pub(super) fn settle(
        &mut self,
        before: &PresenceRecord,
        after: &PresenceRecord,
        now: u64,
        why: AwayReason,
    ) -> Seats<bool> {
        let mut left = Seats::default();
        for m in [Mark::X, Mark::O] {
            if *after.players.get(m) {
                *self.away.get_mut(m) = None;
                *self.why.get_mut(m) = None;
                *self.seen.get_mut(m) = true;
            } else if *before.players.get(m) {
                *self.away.get_mut(m) = Some(now);
                *self.why.get_mut(m) = Some(why);
                *left.get_mut(m) = true;
            }
        }
        left
    }
}

pub(super) fn presence_change(
    store: &MemoryStore,
    game: &GameId,
    entry: &PresenceEntry<'_>,
    change: Attendance,
    event: &PresenceTemplate,
    ttl: Duration,
) -> StoreResult<PresenceChange> {
    let now = now_ms();
    let mut inner = store.lock();
    let (delta, why) = match change {
        Attendance::Arrive => (Some(1), AwayReason::Disconnected),
        Attendance::Leave(why) => (Some(-1), why),
        Attendance::Announce(_) => (None, AwayReason::Disconnected),
    };
    if !matches!(change, Attendance::Leave(_)) {
        inner
            .lease_games
            .entry(entry.lease.to_string())
            .or_default()
            .insert(game.clone());
    }
    let field = format!(
        "c|{}|{}|{}",
        entry.lease,
        entry.player,
        match entry.role {
            Role::X => "X",
            Role::O => "O",
            Role::Spectator => "spectator",
        }
    );
    let p = inner.presence.entry(game.clone()).or_default();
    let before = p.summary();
    let count = p.conns.entry(field.clone()).or_insert(0);
    match (delta, change) {
        (Some(d), _) => *count += d,
        (None, Attendance::Announce(n)) => *count = i64::from(n),
        (None, _) => {}
    }
    if *count <= 0 {
        p.conns.remove(&field);
    }
    let after = p.summary();
    let left = p.settle(&before, &after, now, why);
    p.expires = now + ms(ttl);
    let changed = before != after;
    let after = p.view(now);
    let mine = p.lease_entries(entry.lease);
    if mine == 0
        && let Some(set) = inner.lease_games.get_mut(entry.lease)
    {
        set.remove(game);
    }
    if changed {
        store.send(store.keys.game_channel(game), after.render(event).into());
    }
    Ok(PresenceChange {
        presence: after,
        left,
        lease_entries: mine,
    })
}

pub(super) fn presence(store: &MemoryStore, game: &GameId) -> StoreResult<PresenceRecord> {
    let now = now_ms();
    Ok(store
        .lock()
        .presence
        .get(game)
        .filter(|p| p.expires > now)
        .map(|p| p.view(now))
        .unwrap_or_default())
}

pub(super) fn inspect_seats(store: &MemoryStore, game: &GameId) -> StoreResult<Option<SeatsView>> {
    let now = now_ms();
    let mut inner = store.lock();
    let Some(g) = inner.live_game(game, now) else {
        return Ok(None);
    };
    let (version, state) = (g.version, g.state.clone());
    let p = inner.presence.entry(game.clone()).or_default();
    let present = p.summary().players;
    for m in [Mark::X, Mark::O] {
        if !*present.get(m) && p.away.get(m).is_none() {
            *p.away.get_mut(m) = Some(now);
        }
    }
    let away_since = Seats {
        x: if present.x { None } else { p.away.x },
        o: if present.o { None } else { p.away.o },
    };
    Ok(Some(SeatsView {
        now_ms: now,
        version,
        state,
        present,
        seen: p.seen.clone(),
        away_since,
    }))
}

pub(super) fn renew_lease(
    store: &MemoryStore,
    lease: &str,
    ttl: Duration,
) -> StoreResult<LeaseRenewal> {
    let mut inner = store.lock();
    if inner.lease_sweeps.contains_key(lease) {
        return Ok(LeaseRenewal::Sweeping);
    }
    let known = inner
        .leases
        .insert(lease.to_string(), now_ms() + ms(ttl))
        .is_some();
    Ok(if known {
        LeaseRenewal::Renewed
    } else {
        LeaseRenewal::Registered
    })
}

pub(super) fn claim_lapsed_leases(
    store: &MemoryStore,
    claim_ttl: Duration,
) -> StoreResult<Vec<String>> {
    let now = now_ms();
    let mut inner = store.lock();
    let inner = &mut *inner;
    let mut claimed: Vec<String> = inner
        .leases
        .iter()
        .chain(inner.lease_sweeps.iter())
        .filter(|(_, until)| **until < now)
        .map(|(l, _)| l.clone())
        .collect();
    claimed.sort();
    for lease in &claimed {
        inner.leases.remove(lease);
        inner
            .lease_sweeps
            .insert(lease.clone(), now + ms(claim_ttl));
    }
    Ok(claimed)
}

pub(super) fn sweep_lease(
    store: &MemoryStore,
    lease: &str,
    ttl: Duration,
    event: PresenceEvent,
) -> StoreResult<Vec<(GameId, Seats<bool>)>> {
    let now = now_ms();
    let mut inner = store.lock();
    let games = inner.lease_games.remove(lease).unwrap_or_default();
    inner.leases.remove(lease);
    inner.lease_sweeps.remove(lease);
    let prefix = format!("c|{lease}|");
    let mut emptied = Vec::new();
    let mut changed = Vec::new();
    for g in games {
        let Some(p) = inner.presence.get_mut(&g) else {
            continue;
        };
        let before = p.summary();
        p.conns.retain(|f, _| !f.starts_with(&prefix));
        let after = p.summary();
        let left = p.settle(&before, &after, now, AwayReason::Disconnected);
        p.expires = now + ms(ttl);
        if before != after {
            changed.push((g.clone(), p.view(now)));
        }
        if left.x || left.o {
            emptied.push((g, left));
        }
    }
    drop(inner);
    for (g, p) in changed {
        store.send(store.keys.game_channel(&g), p.render(&event(&g)).into());
    }
    Ok(emptied)
}
