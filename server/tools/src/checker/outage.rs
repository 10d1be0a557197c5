//! How long players could not move, by kind of fault: for every fault, each game's longest
//! wait for a move that was wanted while the fault was on (from the moment its player wanted
//! to move to its ack or final refusal, or to the end of the run), then the p50, p99 and
//! maximum of those per kind. Moves that overlap no fault give the baseline.

use super::history::{FaultWindow, History};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KindOutage {
    /// The fault's kind, or `none` for moves no fault overlapped.
    pub kind: String,
    /// Faults of this kind injected.
    pub faults: u64,
    /// (fault, game) pairs in which a move was waited for.
    pub samples: u64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

/// The value below which `q` of the sorted samples lie (nearest rank).
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn summary(kind: &str, faults: u64, mut waits: Vec<u64>) -> KindOutage {
    waits.sort_unstable();
    KindOutage {
        kind: kind.to_string(),
        faults,
        samples: waits.len() as u64,
        p50_ms: percentile(&waits, 0.50),
        p99_ms: percentile(&waits, 0.99),
        max_ms: waits.last().copied().unwrap_or(0),
    }
}

fn overlaps(w: &FaultWindow, from: u64, to: u64, run_end: u64) -> bool {
    from <= w.end_or(run_end) && to >= w.start_ms
}

/// One row per kind of fault injected (in name order), then `none`.
pub fn by_kind(h: &History) -> Vec<KindOutage> {
    // Every move's wait: (game, wanted, settled).
    let mut waits: Vec<(&str, u64, u64)> = Vec::new();
    for p in &h.players {
        for m in &p.moves {
            let settled = m.resolved_ms.unwrap_or(h.end_ms).max(m.intent_ms);
            waits.push((p.game.as_str(), m.intent_ms, settled));
        }
    }
    let mut kinds: BTreeMap<&str, (u64, Vec<u64>)> = BTreeMap::new();
    for w in &h.faults {
        let mut per_game: BTreeMap<&str, u64> = BTreeMap::new();
        for (game, from, to) in &waits {
            if overlaps(w, *from, *to, h.end_ms) {
                let longest = per_game.entry(game).or_default();
                *longest = (*longest).max(to - from);
            }
        }
        let entry = kinds.entry(w.kind.as_str()).or_default();
        entry.0 += 1;
        entry.1.extend(per_game.into_values());
    }
    let mut rows: Vec<KindOutage> = kinds
        .into_iter()
        .map(|(kind, (faults, waits))| summary(kind, faults, waits))
        .collect();
    let quiet: Vec<u64> = waits
        .iter()
        .filter(|(_, from, to)| !h.faults.iter().any(|w| overlaps(w, *from, *to, h.end_ms)))
        .map(|(_, from, to)| to - from)
        .collect();
    rows.push(summary("none", 0, quiet));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::history::{MoveAck, MoveAttempt, PlayerHistory};
    use tictactoe_rules::Mark;

    fn mv(intent: u64, settled: Option<u64>) -> MoveAttempt {
        MoveAttempt {
            mid: format!("m{intent}"),
            cell: 0,
            based_on: 1,
            intent_ms: intent,
            sends: 1,
            resolved_ms: settled,
            ack: settled.map(|at| MoveAck {
                at_ms: at,
                version: 2,
                duplicate: false,
            }),
            refused: None,
        }
    }

    fn player(game: &str, moves: Vec<MoveAttempt>) -> PlayerHistory {
        PlayerHistory {
            game: game.into(),
            mark: Mark::X,
            connections: vec![],
            received: vec![],
            moves,
            chats: vec![],
        }
    }

    #[test]
    fn each_fault_counts_the_longest_wait_of_every_game_it_touched() {
        let h = History {
            end_ms: 100_000,
            players: vec![
                player("a", vec![mv(1_000, Some(1_010)), mv(10_000, Some(13_000))]),
                player(
                    "b",
                    vec![mv(10_500, Some(10_600)), mv(11_000, Some(12_000))],
                ),
                // Wanted during the second fault and never acknowledged: waits to the end.
                player("c", vec![mv(50_000, Some(50_020)), mv(60_500, None)]),
            ],
            faults: vec![
                FaultWindow {
                    kind: "kill_instance".into(),
                    start_ms: 10_200,
                    end_ms: Some(11_500),
                    ..FaultWindow::default()
                },
                FaultWindow {
                    kind: "kill_instance".into(),
                    start_ms: 60_000,
                    end_ms: Some(61_000),
                    ..FaultWindow::default()
                },
            ],
            ..History::default()
        };
        let rows = by_kind(&h);
        assert_eq!(rows.len(), 2);
        let kill = &rows[0];
        assert_eq!(
            (kill.kind.as_str(), kill.faults, kill.samples),
            ("kill_instance", 2, 3)
        );
        // Game a waited 3 s, game b 1 s (its longest), game c 39.5 s.
        assert_eq!(kill.max_ms, 39_500);
        assert_eq!(kill.p50_ms, 3_000);
        let none = &rows[1];
        assert_eq!(
            (none.kind.as_str(), none.samples, none.max_ms),
            ("none", 2, 20)
        );
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
