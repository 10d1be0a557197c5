//! The audit's checker: reads what the clients of a run recorded ([`History`]) beside what
//! Redis held at its end ([`StoredGame`] per game) and counts every broken guarantee. Pure:
//! no I/O, no clock, so each kind of violation is tested on a history made by hand.
//!
//! - [`history`]: the recorded data and the stored games.
//! - [`outage`]: how long players could not move, by kind of fault.

pub mod history;
pub mod outage;

use history::{History, Logged, PlayerHistory, ReceivedKind, RedisCut, StoredGame};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use tictactoe_rules::EndReason;

/// How many examples of each violation the findings keep (in the JSON report), for people to
/// look up: every stuck game of a bad run, not just a few, is worth reading.
const EXAMPLES: usize = 100;
/// How many of them the text report prints.
const PRINTED: usize = 5;

/// What the checker needs to know beyond the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// A game that neither progressed nor ended for longer than this is stuck.
    pub stuck_after_ms: u64,
    /// The deployment's `FORFEIT_GRACE_MS` (every `welcome` says it).
    pub forfeit_grace_ms: u64,
    /// A connection counts as present for a forfeit only if it was welcomed this long before
    /// the forfeit was first seen: the presence write and the forfeit may race in Redis, and
    /// the client learns of either a little later.
    pub forfeit_slack_ms: u64,
    /// How long before a player's forfeit clock started a Redis cut can still have caused
    /// it: a cut instance's lease lapses and another sweeps its players (`LEASE_TTL_MS` +
    /// `SWEEP_INTERVAL_MS`), plus margin.
    pub cut_reach_ms: u64,
    /// The deployment's `CHAT_KEPT`: a history this long may have dropped older lines.
    pub chat_kept: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            stuck_after_ms: 30_000,
            forfeit_grace_ms: 30_000,
            forfeit_slack_ms: 2_000,
            cut_reach_ms: 10_000,
            chat_kept: 100,
        }
    }
}

/// Counts of everything the checker looked at and everything it found, with a few examples
/// of each finding.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    pub games: u64,
    pub players: u64,
    pub connections: u64,
    pub events_received: u64,
    pub moves_acked: u64,
    pub moves_acked_duplicate: u64,
    pub chats_acked: u64,
    pub forfeits: u64,
    /// Acknowledged moves whose version in the log holds something else, or nothing.
    pub acked_moves_missing: u64,
    /// Moves in the log played at a version their client did not choose them for (a retry
    /// applied again, or a move nobody sent), or one `mid` acknowledged at two versions.
    pub moves_applied_twice: u64,
    /// Clients that received one event twice.
    pub clients_event_twice: u64,
    /// Clients that received an event older than one already received.
    pub clients_out_of_order: u64,
    /// Clients whose events skipped a version that no later snapshot covered.
    pub clients_unfilled_gap: u64,
    /// Forfeits of a player connected all along to an instance that could reach Redis.
    pub forfeits_while_connected: u64,
    /// Forfeits nobody saw, after every version anyone saw: they may have come after the load
    /// ended and every client hung up (the stored games are read a while later), so they are
    /// not judged.
    #[serde(default)]
    pub forfeits_after_load: u64,
    /// Games that neither progressed nor ended for longer than `stuck_after_ms`.
    pub games_stuck: u64,
    /// Longest time any game went without progress, ms.
    pub longest_stall_ms: u64,
    /// Acknowledged chat lines not in the game's chat history (and not old enough to have
    /// been trimmed from it).
    pub acked_chats_missing: u64,
    /// Games whose log does not hold every version up to the game's own: the audit could not
    /// see their whole history (`EVENT_LOG_LEN` too small for the run).
    pub games_log_incomplete: u64,
    pub examples: BTreeMap<String, Vec<String>>,
}

/// Which findings a run must not have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Required {
    /// Acknowledged moves must survive: `REDIS_WAIT_REPLICAS` set, or one Redis with
    /// `appendfsync always` (nothing acknowledged is lost to its restart).
    pub durable_moves: bool,
    /// Acknowledged chat lines must survive (one durable Redis: chat does not wait for
    /// replicas).
    pub durable_chat: bool,
}

impl Findings {
    fn example(&mut self, kind: &str, text: String) {
        let list = self.examples.entry(kind.to_string()).or_default();
        if list.len() < EXAMPLES {
            list.push(text);
        }
    }

    /// The findings that break a guarantee, by name and count (empty: the run passed).
    pub fn violations(&self, required: Required) -> Vec<(&'static str, u64)> {
        let mut v = vec![
            ("moves_applied_twice", self.moves_applied_twice),
            ("clients_event_twice", self.clients_event_twice),
            ("clients_out_of_order", self.clients_out_of_order),
            ("clients_unfilled_gap", self.clients_unfilled_gap),
            ("forfeits_while_connected", self.forfeits_while_connected),
            ("games_stuck", self.games_stuck),
            ("games_log_incomplete", self.games_log_incomplete),
        ];
        if required.durable_moves {
            v.push(("acked_moves_missing", self.acked_moves_missing));
        }
        if required.durable_chat {
            v.push(("acked_chats_missing", self.acked_chats_missing));
        }
        v.retain(|(_, n)| *n > 0);
        v
    }

    /// Lines for people.
    pub fn render(&self, required: Required) -> String {
        let must = |yes: bool| if yes { "must be 0" } else { "reported" };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "audited: {} games, {} players, {} connections, {} events received, \
             {} moves acknowledged ({} as duplicates), {} chat lines acknowledged, {} forfeits \
             ({} after the load, not judged)",
            self.games,
            self.players,
            self.connections,
            self.events_received,
            self.moves_acked,
            self.moves_acked_duplicate,
            self.chats_acked,
            self.forfeits,
            self.forfeits_after_load
        );
        let rows: [(&str, u64, &str); 10] = [
            (
                "acknowledged moves missing from the log",
                self.acked_moves_missing,
                must(required.durable_moves),
            ),
            ("moves applied twice", self.moves_applied_twice, must(true)),
            (
                "clients that received an event twice",
                self.clients_event_twice,
                must(true),
            ),
            (
                "clients that received events out of order",
                self.clients_out_of_order,
                must(true),
            ),
            (
                "clients with a gap no resync filled",
                self.clients_unfilled_gap,
                must(true),
            ),
            (
                "forfeits while connected to an instance that reached Redis",
                self.forfeits_while_connected,
                must(true),
            ),
            ("games stuck", self.games_stuck, must(true)),
            (
                "acknowledged chat lines missing from history",
                self.acked_chats_missing,
                must(required.durable_chat),
            ),
            (
                "games whose log the audit could not read whole",
                self.games_log_incomplete,
                must(true),
            ),
            ("longest stall of a game, ms", self.longest_stall_ms, "-"),
        ];
        for (what, n, rule) in rows {
            let _ = writeln!(out, "  {what:<62} {n:>8}   ({rule})");
        }
        for (kind, examples) in &self.examples {
            for e in examples.iter().take(PRINTED) {
                let _ = writeln!(out, "  e.g. {kind}: {e}");
            }
            if examples.len() > PRINTED {
                let more = examples.len() - PRINTED;
                let _ = writeln!(out, "  ({more} more {kind} in the JSON report)");
            }
        }
        out
    }
}

/// Checks a run's history against what Redis held at its end.
pub fn check(
    history: &History,
    stored: &BTreeMap<String, StoredGame>,
    settings: &Settings,
) -> Findings {
    let empty = StoredGame::default();
    let mut f = Findings::default();
    let mut games: BTreeMap<&str, Vec<&PlayerHistory>> = BTreeMap::new();
    for p in &history.players {
        games.entry(p.game.as_str()).or_default().push(p);
    }
    f.games = games.len() as u64;
    f.players = history.players.len() as u64;
    for (game, players) in &games {
        let s = stored.get(*game).unwrap_or(&empty);
        check_log_whole(&mut f, game, s);
        for p in players {
            f.connections += p.connections.len() as u64;
            f.events_received += p
                .received
                .iter()
                .filter(|r| r.kind == ReceivedKind::Event)
                .count() as u64;
            check_acked_moves(&mut f, p, s);
            check_events(&mut f, p);
            check_chat(&mut f, history, p, s, settings);
        }
        check_applied_once(&mut f, game, players, s);
        check_forfeits(&mut f, history, game, players, s, settings);
        check_progress(&mut f, history, game, players, s, settings);
    }
    f
}

fn check_log_whole(f: &mut Findings, game: &str, s: &StoredGame) {
    let top = s
        .version
        .unwrap_or(0)
        .max(s.log.keys().last().copied().unwrap_or(0));
    let held = s.log.range(1..=top).count() as u64;
    if held < top {
        f.games_log_incomplete += 1;
        f.example(
            "games_log_incomplete",
            format!("{game}: {held} of versions 1..={top} in the log"),
        );
    }
}

fn check_acked_moves(f: &mut Findings, p: &PlayerHistory, s: &StoredGame) {
    for m in &p.moves {
        let Some(ack) = m.ack else { continue };
        f.moves_acked += 1;
        if ack.duplicate {
            f.moves_acked_duplicate += 1;
        }
        let expected = Logged::Moved {
            mark: p.mark,
            cell: m.cell,
        };
        let logged = s.log.get(&ack.version);
        if logged != Some(&expected) {
            f.acked_moves_missing += 1;
            f.example(
                "acked_moves_missing",
                format!(
                    "{} {:?} mid {} cell {} acknowledged at v{}; the log holds {:?}",
                    p.game, p.mark, m.mid, m.cell, ack.version, logged
                ),
            );
        }
    }
}

/// Every logged move of an audited player must be one of its attempts played on the board
/// it was chosen for (version `based_on + 1`), and each attempt can explain one logged move
/// only. A retry applied after its first attempt had been is played at a later version
/// than its choice: it matches no attempt. So does a `mid` acknowledged at two versions.
fn check_applied_once(f: &mut Findings, game: &str, players: &[&PlayerHistory], s: &StoredGame) {
    for p in players {
        let chosen: BTreeSet<(u64, u8)> =
            p.moves.iter().map(|m| (m.based_on + 1, m.cell)).collect();
        for (v, logged) in &s.log {
            if let Logged::Moved { mark, cell } = logged
                && *mark == p.mark
                && !chosen.contains(&(*v, *cell))
            {
                f.moves_applied_twice += 1;
                f.example(
                    "moves_applied_twice",
                    format!(
                        "{game} v{v}: {mark:?} played {cell}, which no attempt chose at v{}",
                        v - 1
                    ),
                );
            }
        }
        let mut acked_at: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
        for m in &p.moves {
            if let Some(a) = m.ack {
                acked_at
                    .entry(m.mid.as_str())
                    .or_default()
                    .insert(a.version);
            }
        }
        for (mid, versions) in acked_at {
            if versions.len() > 1 {
                f.moves_applied_twice += 1;
                f.example(
                    "moves_applied_twice",
                    format!("{game}: mid {mid} acknowledged at versions {versions:?}"),
                );
            }
        }
    }
}

/// A client must receive each event once, in version order, and a skipped version must be
/// covered by a snapshot (set-up, resume or catch-up) before the run ends.
fn check_events(f: &mut Findings, p: &PlayerHistory) {
    let mut seen = BTreeSet::new();
    let mut last: Option<u64> = None;
    let (mut twice, mut disorder) = (None, None);
    // Gaps still open: (first missing, last missing).
    let mut gaps: Vec<(u64, u64)> = Vec::new();
    for r in &p.received {
        match r.kind {
            ReceivedKind::Snapshot => {
                gaps.retain(|(_, hi)| *hi > r.version);
                last = Some(last.map_or(r.version, |l| l.max(r.version)));
            }
            ReceivedKind::Event => {
                if !seen.insert(r.version) {
                    twice.get_or_insert(r.version);
                } else if last.is_some_and(|l| r.version <= l) {
                    // Older than what the client already shows (an event or a snapshot).
                    disorder.get_or_insert(r.version);
                } else {
                    if let Some(l) = last
                        && r.version > l + 1
                    {
                        gaps.push((l + 1, r.version - 1));
                    }
                    last = Some(r.version);
                }
            }
        }
    }
    let who = format!("{} {:?}", p.game, p.mark);
    if let Some(v) = twice {
        f.clients_event_twice += 1;
        f.example("clients_event_twice", format!("{who}: v{v} received twice"));
    }
    if let Some(v) = disorder {
        f.clients_out_of_order += 1;
        f.example(
            "clients_out_of_order",
            format!("{who}: v{v} received after a later version"),
        );
    }
    if let Some((lo, hi)) = gaps.first() {
        f.clients_unfilled_gap += 1;
        f.example(
            "clients_unfilled_gap",
            format!("{who}: versions {lo}..={hi} never received nor covered by a snapshot"),
        );
    }
}

fn check_chat(
    f: &mut Findings,
    h: &History,
    p: &PlayerHistory,
    s: &StoredGame,
    settings: &Settings,
) {
    let kept: BTreeSet<&str> = s.chat.iter().map(|(_, t)| t.as_str()).collect();
    // A full history may have dropped lines older than its oldest one.
    let trimmed_before = (s.chat.len() >= settings.chat_kept)
        .then(|| s.chat.first().map(|(ms, _)| *ms))
        .flatten();
    for c in &p.chats {
        f.chats_acked += 1;
        if kept.contains(c.text.as_str()) {
            continue;
        }
        // The ack comes after the line was added, so a line acknowledged before the oldest
        // kept one was added may have been trimmed.
        if trimmed_before.is_some_and(|oldest| h.start_epoch_ms + c.at_ms < oldest) {
            continue;
        }
        f.acked_chats_missing += 1;
        f.example(
            "acked_chats_missing",
            format!(
                "{} {:?}: {:?} acknowledged at {} ms",
                p.game, p.mark, c.text, c.at_ms
            ),
        );
    }
}

/// When each version of a game was first seen by any of its clients (ack or event).
fn first_seen(players: &[&PlayerHistory]) -> BTreeMap<u64, u64> {
    let mut at: BTreeMap<u64, u64> = BTreeMap::new();
    let mut note = |v: u64, ms: u64| {
        at.entry(v).and_modify(|t| *t = (*t).min(ms)).or_insert(ms);
    };
    for p in players {
        for r in &p.received {
            note(r.version, r.at_ms);
        }
        for m in &p.moves {
            if let Some(a) = m.ack {
                note(a.version, a.at_ms);
            }
        }
    }
    at
}

/// A forfeit is a violation when its player had one connection, welcomed well before the
/// forfeit and still open at it, to an instance that nothing cut off from Redis around the
/// time the forfeit clock could have started.
fn check_forfeits(
    f: &mut Findings,
    h: &History,
    game: &str,
    players: &[&PlayerHistory],
    s: &StoredGame,
    settings: &Settings,
) {
    let seen = first_seen(players);
    for (v, logged) in &s.log {
        let Logged::Conceded {
            mark,
            reason: EndReason::Forfeit,
        } = logged
        else {
            continue;
        };
        f.forfeits += 1;
        // When it happened: first seen at v, or between the last version seen before it and
        // the first seen after it. Seen by nobody and followed by nothing anyone saw, it may
        // have come after the clients hung up at the end of the load (a forfeit takes the
        // grace period, and the games are read once every client has stopped): not judged.
        let (lo, hi) = match seen.get(v) {
            Some(at) => (*at, *at),
            None => match seen.range(v + 1..).map(|(_, t)| *t).min() {
                Some(after) => (seen.range(..v).map(|(_, t)| *t).max().unwrap_or(0), after),
                None => {
                    f.forfeits_after_load += 1;
                    continue;
                }
            },
        };
        let Some(p) = players.iter().find(|p| p.mark == *mark) else {
            continue;
        };
        let reach_from = lo.saturating_sub(settings.forfeit_grace_ms + settings.cut_reach_ms);
        let present = p.connections.iter().enumerate().find(|(i, c)| {
            // In the game from the first event or snapshot of it on this connection: a
            // resume that could not restore the game leaves a connection outside it (the
            // server says so), and its player is rightly away.
            let Some(back) = p.received.iter().find(|r| r.conn == *i).map(|r| r.at_ms) else {
                return false;
            };
            back.max(c.welcomed_ms) + settings.forfeit_slack_ms <= lo
                && c.closed_ms.is_none_or(|closed| closed >= hi)
                && !h.faults.iter().any(|w| {
                    let cuts = match &w.cut {
                        RedisCut::None => false,
                        RedisCut::All => true,
                        RedisCut::Instance(i) => *i == c.instance,
                    };
                    cuts && w.start_ms <= hi && w.end_or(h.end_ms) >= reach_from
                })
        });
        if let Some((_, c)) = present {
            f.forfeits_while_connected += 1;
            f.example(
                "forfeits_while_connected",
                format!(
                    "{game} v{v}: {mark:?} forfeited at {lo}..{hi} ms, connected to {} since {} ms",
                    c.instance, c.welcomed_ms
                ),
            );
        }
    }
}

/// A game progresses while new versions appear; it has ended once aborted. The stretch from
/// the last version to the end of the load counts too.
fn check_progress(
    f: &mut Findings,
    h: &History,
    game: &str,
    players: &[&PlayerHistory],
    s: &StoredGame,
    settings: &Settings,
) {
    let seen = first_seen(players);
    let mut times: Vec<u64> = seen.values().copied().collect();
    times.sort_unstable();
    let Some(first) = times.first().copied() else {
        return;
    };
    let aborted = s.log.values().any(|l| *l == Logged::Aborted);
    let end = if aborted {
        *times.last().unwrap_or(&first)
    } else {
        h.end_ms
    };
    let mut longest = (0, first);
    let mut prev = first;
    for t in times.iter().copied().chain(std::iter::once(end.max(first))) {
        if t - prev > longest.0 {
            longest = (t - prev, prev);
        }
        prev = t;
    }
    f.longest_stall_ms = f.longest_stall_ms.max(longest.0);
    if longest.0 > settings.stuck_after_ms {
        f.games_stuck += 1;
        f.example(
            "games_stuck",
            format!(
                "{game}: no progress for {} ms from {} ms",
                longest.0, longest.1
            ),
        );
    }
}

#[cfg(test)]
mod tests;
