//! Open mode's clock: when each game's next move is due, so that the games together offer
//! a fixed rate of moves whatever the servers do. A move's latency is measured from the
//! time it was due, not from when it could be sent (no coordinated omission).

use super::plan::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;

/// How a game's moves are spaced in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// Exactly 1/rate apart, each game from a random phase: the total is a smooth stream.
    #[default]
    Even,
    /// Exponentially distributed gaps: each game, and so the total, is a Poisson process
    /// (bursts as independent players would make them).
    Poisson,
}

impl Arrivals {
    pub fn as_str(self) -> &'static str {
        match self {
            Arrivals::Even => "even",
            Arrivals::Poisson => "poisson",
        }
    }
}

/// One game's due times.
#[derive(Clone, Debug)]
pub struct Schedule {
    next: Instant,
    /// Mean gap between two of this game's moves, in nanoseconds.
    mean_nanos: f64,
    arrivals: Arrivals,
}

impl Schedule {
    /// A game's share of `rate` moves per second spread over `games` games, from `start`.
    /// The first move comes a random part of a gap after `start`, so that games set up in
    /// the same instant do not all move together.
    pub fn new(rate: f64, games: usize, arrivals: Arrivals, start: Instant, rng: &mut Rng) -> Self {
        let mean_nanos = 1e9 * games.max(1) as f64 / rate.max(f64::MIN_POSITIVE);
        let first = match arrivals {
            Arrivals::Even => unit(rng) * mean_nanos,
            // Memoryless: the wait for the first arrival is a gap like any other.
            Arrivals::Poisson => gap(mean_nanos, arrivals, rng),
        };
        Schedule {
            next: start + nanos(first),
            mean_nanos,
            arrivals,
        }
    }

    /// When the next move is due.
    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// The next move's due time, moving the schedule on to the one after.
    pub fn take(&mut self, rng: &mut Rng) -> Instant {
        let due = self.next;
        self.next += nanos(gap(self.mean_nanos, self.arrivals, rng));
        due
    }
}

/// Uniform in [0, 1), from the top 53 bits.
fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// One gap between moves, in nanoseconds.
fn gap(mean_nanos: f64, arrivals: Arrivals, rng: &mut Rng) -> f64 {
    match arrivals {
        Arrivals::Even => mean_nanos,
        // Inverse transform: 1 − u is in (0, 1], so the logarithm is finite.
        Arrivals::Poisson => -(1.0 - unit(rng)).ln() * mean_nanos,
    }
}

fn nanos(n: f64) -> Duration {
    Duration::from_nanos(n.clamp(0.0, u64::MAX as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaps(arrivals: Arrivals, n: usize) -> Vec<f64> {
        let mut rng = Rng::new(11);
        let start = Instant::now();
        // 500 moves/s over 1,000 games: a move every 2 s per game.
        let mut s = Schedule::new(500.0, 1000, arrivals, start, &mut rng);
        assert_eq!(nanos(s.mean_nanos), Duration::from_secs(2));
        let mut last = s.take(&mut rng);
        (0..n)
            .map(|_| {
                let t = s.take(&mut rng);
                let g = (t - last).as_secs_f64();
                last = t;
                g
            })
            .collect()
    }

    #[test]
    fn even_moves_are_exactly_one_gap_apart() {
        for g in gaps(Arrivals::Even, 100) {
            assert!((g - 2.0).abs() < 1e-6, "{g}");
        }
    }

    #[test]
    fn poisson_gaps_average_to_the_mean_and_spread_like_it() {
        let g = gaps(Arrivals::Poisson, 20_000);
        let mean = g.iter().sum::<f64>() / g.len() as f64;
        assert!((mean - 2.0).abs() < 0.1, "{mean}");
        // An exponential distribution's standard deviation is its mean.
        let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / g.len() as f64;
        assert!((var.sqrt() - 2.0).abs() < 0.15, "{}", var.sqrt());
        assert!(g.iter().all(|x| *x >= 0.0 && x.is_finite()));
    }

    #[test]
    fn games_together_offer_the_rate_from_spread_out_phases() {
        let mut rng = Rng::new(3);
        let start = Instant::now();
        let games = 200;
        for arrivals in [Arrivals::Even, Arrivals::Poisson] {
            let mut all: Vec<Duration> = Vec::new();
            for _ in 0..games {
                let mut s = Schedule::new(1000.0, games, arrivals, start, &mut rng);
                loop {
                    let due = s.take(&mut rng) - start;
                    if due >= Duration::from_secs(10) {
                        break;
                    }
                    all.push(due);
                }
            }
            // 1,000 moves/s for 10 s.
            let n = all.len() as f64;
            assert!((n - 10_000.0).abs() < 400.0, "{arrivals:?}: {n}");
            // Phases are spread: the first 100 ms hold about their share, not a burst.
            let early = all
                .iter()
                .filter(|d| **d < Duration::from_millis(100))
                .count();
            assert!(
                early < 200,
                "{arrivals:?}: {early} moves in the first 100 ms"
            );
        }
    }
}
