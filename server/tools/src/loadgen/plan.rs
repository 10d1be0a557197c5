//! The pure parts of a run: where each connection goes, durations on the command line, the
//! connection pacer's arithmetic and the move-picking generator.

use std::time::Duration;
use tictactoe_rules::{Board, Cell};

/// Where one connection goes: an index into the URLs, and one into the source addresses
/// (`None` when the kernel picks the source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub url: usize,
    pub source: Option<usize>,
}

/// The two players of one game.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GamePlan {
    pub x: Slot,
    pub o: Slot,
}

fn source(conn: usize, sources: usize) -> Option<usize> {
    (sources > 0).then(|| conn % sources)
}

/// Pairs `connections` into games (an odd one out is left out). Game `g` puts X on URL
/// `g mod U` and O on the next URL, so the two players of a game are on different instances
/// whenever there are several, and every instance gets the same share of X and O seats.
/// Source addresses go round-robin over the connection number, spreading ephemeral ports
/// evenly whatever the URL count.
pub fn play_plan(connections: usize, urls: usize, sources: usize) -> Vec<GamePlan> {
    let urls = urls.max(1);
    (0..connections / 2)
        .map(|g| GamePlan {
            x: Slot {
                url: g % urls,
                source: source(2 * g, sources),
            },
            o: Slot {
                url: (g + 1) % urls,
                source: source(2 * g + 1, sources),
            },
        })
        .collect()
}

/// Idle connections, round-robin over URLs and source addresses.
pub fn idle_plan(connections: usize, urls: usize, sources: usize) -> Vec<Slot> {
    let urls = urls.max(1);
    (0..connections)
        .map(|c| Slot {
            url: c % urls,
            source: source(c, sources),
        })
        .collect()
}

/// Parses `30s`, `500ms`, `2m`, `1.5s` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 30s, 500ms or 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))
}

/// Nanoseconds between two connection starts for `rate` per second (0: no pacing).
pub fn pace_interval_nanos(rate: u32) -> u64 {
    if rate == 0 {
        0
    } else {
        1_000_000_000 / u64::from(rate)
    }
}

/// SplitMix64: a few lines, good enough to pick cells, and reproducible from `--seed`
/// without another dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant for n ≤ 9.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A uniformly chosen empty cell, or `None` on a full board.
pub fn random_free_cell(board: &Board, rng: &mut Rng) -> Option<usize> {
    let free = |i: &usize| {
        Cell::new(*i as i64)
            .map(|c| board.get(c).is_none())
            .unwrap_or(false)
    };
    let count = (0..9).filter(free).count() as u64;
    if count == 0 {
        return None;
    }
    let k = rng.below(count) as usize;
    (0..9).filter(free).nth(k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn durations_parse_with_and_without_units() {
        let ok = [
            ("30s", 30_000),
            ("500ms", 500),
            ("2m", 120_000),
            ("1.5s", 1_500),
            ("10", 10_000),
            (" 3 s ", 3_000),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "s", "ten", "5 parsecs", "-1s", "1e999s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_game_spans_two_instances_and_instances_get_even_shares() {
        for urls in [2, 3, 5] {
            let plan = play_plan(60, urls, 0);
            assert_eq!(plan.len(), 30);
            let mut per_url: HashMap<usize, (usize, usize)> = HashMap::new();
            for g in &plan {
                assert_ne!(g.x.url, g.o.url, "{urls} urls: {g:?}");
                assert!(g.x.url < urls && g.o.url < urls);
                per_url.entry(g.x.url).or_default().0 += 1;
                per_url.entry(g.o.url).or_default().1 += 1;
            }
            let shares: Vec<usize> = (0..urls).map(|u| per_url[&u].0 + per_url[&u].1).collect();
            let (min, max) = (shares.iter().min(), shares.iter().max());
            assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 2), "{shares:?}");
        }
    }

    #[test]
    fn one_url_hosts_both_players_and_an_odd_connection_is_left_out() {
        let plan = play_plan(7, 1, 0);
        assert_eq!(plan.len(), 3);
        assert!(plan.iter().all(|g| g.x.url == 0 && g.o.url == 0));
        assert!(plan.iter().all(|g| g.x.source.is_none()));
    }

    #[test]
    fn source_addresses_go_round_robin_over_connections() {
        let plan = play_plan(8, 2, 3);
        let sources: Vec<usize> = plan
            .iter()
            .flat_map(|g| [g.x.source, g.o.source])
            .map(|s| s.unwrap_or(usize::MAX))
            .collect();
        assert_eq!(sources, [0, 1, 2, 0, 1, 2, 0, 1]);
        let idle = idle_plan(5, 2, 2);
        assert_eq!(
            idle.iter().map(|s| (s.url, s.source)).collect::<Vec<_>>(),
            [
                (0, Some(0)),
                (1, Some(1)),
                (0, Some(0)),
                (1, Some(1)),
                (0, Some(0))
            ]
        );
    }

    #[test]
    fn pacing_interval_and_free_cells() {
        assert_eq!(pace_interval_nanos(0), 0);
        assert_eq!(pace_interval_nanos(1000), 1_000_000);
        let board: Board = "XOXOXOXO.".parse().unwrap();
        let mut rng = Rng::new(7);
        for _ in 0..20 {
            assert_eq!(random_free_cell(&board, &mut rng), Some(8));
        }
        let full: Board = "XOXOXOOXO".parse().unwrap();
        assert_eq!(random_free_cell(&full, &mut rng), None);
        let empty = Board::default();
        let mut seen = [false; 9];
        for _ in 0..500 {
            if let Some(c) = random_free_cell(&empty, &mut rng) {
                seen[c] = true;
            }
        }
        assert!(seen.iter().all(|s| *s), "every cell gets picked: {seen:?}");
    }
}
