//! Glicko-2 ratings (Glickman, "Example of the Glicko-2 system", 2013): a player's strength,
//! how sure we are of it and how erratic the player is, updated from a period's results.
//! Pure arithmetic, kept within bounds so that any input gives a finite rating.

use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// The system constant τ: how fast volatility may change. The paper suggests 0.3 to 1.2; the
/// middle-low choice keeps one surprising result from unsettling a rating for long.
pub const TAU: f64 = 0.5;

/// Scores, from the rated player's side. Plain numbers, as in the paper: a type named for
/// them would clash with [`crate::Outcome`], which says how a round ended.
pub const WIN: f64 = 1.0;
pub const DRAW: f64 = 0.5;
pub const LOSS: f64 = 0.0;

/// A newcomer's deviation, and the most a rating ever has: past it, a rating says nothing.
pub const MAX_DEVIATION: f64 = 350.0;
/// However many games someone plays, we stay this unsure, so that a regular's rating still
/// follows when their play changes.
pub const MIN_DEVIATION: f64 = 30.0;
/// Ratings are kept this close together so that every game carries information: 5,000 apart,
/// the expected score is still distinguishable from 0 and 1 in an f64, so the variance of
/// step 3 stays finite; a tic-tac-toe rating nowhere near either bound in practice.
pub const MIN_RATING: f64 = 0.0;
pub const MAX_RATING: f64 = 5_000.0;
/// Volatility stays positive (step 5 takes its logarithm) and bounded, so that one freak
/// period cannot leave a rating swinging for the next ones.
pub const MIN_VOLATILITY: f64 = 0.001;
pub const MAX_VOLATILITY: f64 = 0.2;

/// Step 2: the display scale around 1500 and Glicko-2's own, around 0.
const SCALE: f64 = 173.7178;
const CENTRE: f64 = 1500.0;
/// Step 5's convergence tolerance, as in the paper.
const TOLERANCE: f64 = 0.000_001;
/// Step 5 converges in a handful of iterations; the cap only guards against a loop that
/// floating point keeps from ending.
const MAX_ITERATIONS: u32 = 100;
/// τ is the caller's; outside this it is taken as its nearest bound.
const TAU_RANGE: (f64, f64) = (0.05, 2.0);

/// A player's rating on the display scale.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    /// Strength: 1500 for a newcomer, within [`MIN_RATING`]..=[`MAX_RATING`].
    pub rating: f64,
    /// Uncertainty of `rating` (RD): within [`MIN_DEVIATION`]..=[`MAX_DEVIATION`].
    pub deviation: f64,
    /// How erratic the player's results are (σ): within [`MIN_VOLATILITY`]..=[`MAX_VOLATILITY`].
    pub volatility: f64,
}

impl Rating {
    /// The paper's starting values: 1500, 350, 0.06.
    pub fn new_player() -> Rating {
        Rating {
            rating: CENTRE,
            deviation: MAX_DEVIATION,
            volatility: 0.06,
        }
    }
}

impl Default for Rating {
    fn default() -> Rating {
        Rating::new_player()
    }
}

/// `player`'s rating after one rating period with `results`, pairs of an opponent's rating
/// at the start of the period and `player`'s score against them ([`WIN`], [`DRAW`],
/// [`LOSS`]; clamped to 0..=1, and a NaN score is no result). No results: only the deviation
/// grows. Out-of-range or non-finite fields of any rating are taken at their nearest bound
/// (NaN at the newcomer's value), so the result is always finite and within bounds.
pub fn update(player: Rating, results: &[(Rating, f64)], tau: f64) -> Rating {
    let tau = sane(tau, TAU_RANGE.0, TAU_RANGE.1, TAU);
    let player = Scaled::from(player);
    let games: Vec<Game> = results
        .iter()
        .filter(|(_, score)| !score.is_nan())
        .map(|&(opponent, score)| Game::new(&player, Scaled::from(opponent), score))
        .collect();
    if games.is_empty() {
        return Scaled {
            phi: player.phi.hypot(player.sigma),
            ..player
        }
        .into();
    }
    // Step 3: the estimated variance of the rating from the games alone.
    let v = 1.0 / games.iter().map(Game::information).sum::<f64>();
    // Step 4: the improvement over what the ratings predicted, scaled to Δ.
    let improvement: f64 = games.iter().map(Game::surprise).sum();
    let delta = v * improvement;
    let sigma = new_volatility(player.phi, player.sigma, v, delta, tau)
        .clamp(MIN_VOLATILITY, MAX_VOLATILITY);
    // Steps 6 and 7.
    let phi_star = player.phi.hypot(sigma);
    let phi = 1.0 / (1.0 / (phi_star * phi_star) + 1.0 / v).sqrt();
    // μ' − μ added on the display scale rather than converting μ' back, so that a win can
    // never lower a rating through rounding.
    let rating = player.rating + SCALE * phi * phi * improvement;
    Scaled {
        rating,
        phi,
        sigma,
        ..player
    }
    .into()
}

/// Both players' ratings after one game, `score_a` being `a`'s ([`WIN`], [`DRAW`], [`LOSS`]).
/// Each is rated against the other's rating from before the game. One game is one rating
/// period: ratings move as each game ends instead of waiting for a batch.
pub fn rate_game(a: Rating, b: Rating, score_a: f64) -> (Rating, Rating) {
    (
        update(a, &[(b, score_a)], TAU),
        update(b, &[(a, 1.0 - score_a)], TAU),
    )
}

/// A rating on Glicko-2's scale (step 2), its fields brought within bounds.
#[derive(Clone, Copy, Debug)]
struct Scaled {
    /// The display rating that `mu` comes from, kept to add the change to.
    rating: f64,
    mu: f64,
    phi: f64,
    sigma: f64,
}

impl From<Rating> for Scaled {
    fn from(r: Rating) -> Scaled {
        let rating = sane(r.rating, MIN_RATING, MAX_RATING, CENTRE);
        Scaled {
            rating,
            mu: (rating - CENTRE) / SCALE,
            phi: sane(r.deviation, MIN_DEVIATION, MAX_DEVIATION, MAX_DEVIATION) / SCALE,
            sigma: sane(r.volatility, MIN_VOLATILITY, MAX_VOLATILITY, 0.06),
        }
    }
}

impl From<Scaled> for Rating {
    /// Step 8, bounds applied.
    fn from(s: Scaled) -> Rating {
        Rating {
            rating: sane(s.rating, MIN_RATING, MAX_RATING, CENTRE),
            deviation: sane(s.phi * SCALE, MIN_DEVIATION, MAX_DEVIATION, MAX_DEVIATION),
            volatility: sane(s.sigma, MIN_VOLATILITY, MAX_VOLATILITY, 0.06),
        }
    }
}

/// One result as step 3 sees it.
struct Game {
    /// g(φ_j): an unsure opponent's result counts for less.
    g: f64,
    /// E: the score the ratings predicted.
    expected: f64,
    score: f64,
}

impl Game {
    fn new(player: &Scaled, opponent: Scaled, score: f64) -> Game {
        let g = g(opponent.phi);
        Game {
            g,
            expected: expected(player.mu, opponent.mu, g),
            score: score.clamp(0.0, 1.0),
        }
    }

    fn information(&self) -> f64 {
        self.g * self.g * self.expected * (1.0 - self.expected)
    }

    fn surprise(&self) -> f64 {
        self.g * (self.score - self.expected)
    }
}

fn g(phi: f64) -> f64 {
    1.0 / (1.0 + 3.0 * phi * phi / (PI * PI)).sqrt()
}

fn expected(mu: f64, mu_j: f64, g_j: f64) -> f64 {
    1.0 / (1.0 + (-g_j * (mu - mu_j)).exp())
}

/// Step 5: the new volatility, by the Illinois algorithm as the paper gives it.
fn new_volatility(phi: f64, sigma: f64, v: f64, delta: f64, tau: f64) -> f64 {
    let a = (sigma * sigma).ln();
    let (phi2, delta2) = (phi * phi, delta * delta);
    let f = |x: f64| {
        let ex = x.exp();
        ex * (delta2 - phi2 - v - ex) / (2.0 * (phi2 + v + ex).powi(2)) - (x - a) / (tau * tau)
    };
    let mut lo = a;
    let mut hi = if delta2 > phi2 + v {
        (delta2 - phi2 - v).ln()
    } else {
        let mut k = 1.0;
        while f(a - k * tau) < 0.0 && k < f64::from(MAX_ITERATIONS) {
            k += 1.0;
        }
        a - k * tau
    };
    let (mut f_lo, mut f_hi) = (f(lo), f(hi));
    for _ in 0..MAX_ITERATIONS {
        if (hi - lo).abs() <= TOLERANCE {
            break;
        }
        let c = lo + (lo - hi) * f_lo / (f_hi - f_lo);
        let f_c = f(c);
        if !f_c.is_finite() {
            break;
        }
        if f_c * f_hi <= 0.0 {
            (lo, f_lo) = (hi, f_hi);
        } else {
            f_lo /= 2.0;
        }
        (hi, f_hi) = (c, f_c);
    }
    let sigma_new = (lo / 2.0).exp();
    if sigma_new.is_finite() {
        sigma_new
    } else {
        sigma
    }
}

/// `x` within `lo..=hi`, or `nan` when it is not a number at all.
fn sane(x: f64, lo: f64, hi: f64, nan: f64) -> f64 {
    if x.is_nan() { nan } else { x.clamp(lo, hi) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rating(rating: f64, deviation: f64) -> Rating {
        Rating {
            rating,
            deviation,
            volatility: 0.06,
        }
    }

    fn close(actual: f64, expected: f64, within: f64) -> bool {
        (actual - expected).abs() <= within
    }

    /// The paper's example: 1500/200/0.06 beats 1400/30, loses to 1550/100 and 1700/300.
    fn paper_example() -> Rating {
        update(
            rating(1500.0, 200.0),
            &[
                (rating(1400.0, 30.0), WIN),
                (rating(1550.0, 100.0), LOSS),
                (rating(1700.0, 300.0), LOSS),
            ],
            0.5,
        )
    }

    #[test]
    fn the_papers_example_gives_the_papers_figures() {
        let r = paper_example();
        // The paper rounds as it goes (E to three decimals, μ' to four, σ' down to five), so
        // its figures hold to within that rounding: 1464.06 is 173.7178 × -0.2069 + 1500,
        // and -0.2069 stands for anything within 0.00005, that is 0.0087 on this scale.
        assert!(close(r.rating, 1464.06, 0.01), "{r:?}");
        assert!(close(r.deviation, 151.52, 0.01), "{r:?}");
        assert!(close(r.volatility, 0.05999, 0.00001), "{r:?}");
        // Unrounded, as an independent computation in double precision gives them.
        assert!(close(r.rating, 1464.0507, 0.0001), "{r:?}");
        assert!(close(r.deviation, 151.5165, 0.0001), "{r:?}");
        assert!(close(r.volatility, 0.059996, 0.000001), "{r:?}");
    }

    #[test]
    fn the_papers_intermediate_values_hold_step_by_step() {
        let player = Scaled::from(rating(1500.0, 200.0));
        assert!(close(player.phi, 1.1513, 0.00005));
        let opponents = [
            (1400.0, 30.0, WIN),
            (1550.0, 100.0, LOSS),
            (1700.0, 300.0, LOSS),
        ];
        let games: Vec<Game> = opponents
            .iter()
            .map(|&(r, d, s)| Game::new(&player, Scaled::from(rating(r, d)), s))
            .collect();
        for (game, (g, e)) in games
            .iter()
            .zip([(0.9955, 0.639), (0.9531, 0.432), (0.7242, 0.303)])
        {
            assert!(close(game.g, g, 0.00005), "g {}", game.g);
            assert!(close(game.expected, e, 0.0005), "E {}", game.expected);
        }
        // v and Δ come out of the paper's rounded E: 1.7785 and -0.4834.
        let v = 1.0 / games.iter().map(Game::information).sum::<f64>();
        let delta = v * games.iter().map(Game::surprise).sum::<f64>();
        assert!(close(v, 1.7785, 0.001), "v {v}");
        assert!(close(delta, -0.4834, 0.001), "Δ {delta}");
        let sigma = new_volatility(player.phi, player.sigma, v, delta, 0.5);
        assert!(close(sigma, 0.05999, 0.00001), "σ' {sigma}");
    }

    #[test]
    fn a_period_without_games_only_makes_the_rating_less_sure() {
        let before = rating(1500.0, 200.0);
        let after = update(before, &[], TAU);
        assert_eq!(after.rating, before.rating);
        assert_eq!(after.volatility, before.volatility);
        // √(φ² + σ²) on Glicko-2's scale.
        assert!(close(after.deviation, 200.2714, 0.0001), "{after:?}");
        // Up to a newcomer's uncertainty and no further.
        assert_eq!(update(Rating::new_player(), &[], TAU), Rating::new_player());
        let nan_only = update(before, &[(Rating::new_player(), f64::NAN)], TAU);
        assert_eq!(nan_only, after);
    }

    #[test]
    fn a_newcomer_starts_at_1500_350_and_006() {
        let r = Rating::default();
        assert_eq!(r, Rating::new_player());
        assert_eq!((r.rating, r.deviation, r.volatility), (1500.0, 350.0, 0.06));
    }

    #[test]
    fn a_rating_round_trips_through_json_with_its_field_names() {
        let r = paper_example();
        let json = serde_json::to_string(&r).expect("a rating serialises");
        assert!(json.contains(r#""rating":"#) && json.contains(r#""deviation":"#));
        assert!(json.contains(r#""volatility":"#), "{json}");
        let back: Rating = serde_json::from_str(&json).expect("and reads back");
        // serde_json without its `float_roundtrip` feature may read a float one ulp off.
        assert!(close(back.rating, r.rating, 1e-9) && close(back.deviation, r.deviation, 1e-9));
        assert!(close(back.volatility, r.volatility, 1e-12), "{back:?}");
    }

    #[test]
    fn a_game_rates_each_player_against_the_others_rating_before_it() {
        let (a, b) = (rating(1600.0, 80.0), rating(1450.0, 200.0));
        let (a2, b2) = rate_game(a, b, LOSS);
        assert_eq!(a2, update(a, &[(b, LOSS)], TAU));
        assert_eq!(b2, update(b, &[(a, WIN)], TAU));
        assert!(a2.rating < a.rating && b2.rating > b.rating);
        // The surer rating moves less.
        assert!(a.rating - a2.rating < b2.rating - b.rating);
    }

    #[test]
    fn a_draw_between_equals_changes_neither_rating() {
        let r = rating(1723.0, 90.0);
        let (a, b) = rate_game(r, r, DRAW);
        assert_eq!((a.rating, b.rating), (r.rating, r.rating));
        assert!(a.deviation < r.deviation);
    }

    #[test]
    fn ratings_out_of_range_are_taken_at_their_bounds() {
        let wild = Rating {
            rating: 1e300,
            deviation: -5.0,
            volatility: f64::INFINITY,
        };
        let r = update(wild, &[(Rating::new_player(), WIN)], f64::NAN);
        assert_eq!(r.rating, MAX_RATING);
        assert!(r.deviation >= MIN_DEVIATION && r.volatility <= MAX_VOLATILITY);
    }

    fn any_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            prop::num::f64::ANY,
            -1e4..1e4f64,
            0.0..1.0f64,
            Just(0.0),
            Just(f64::MAX),
        ]
    }

    fn any_rating() -> impl Strategy<Value = Rating> {
        (any_f64(), any_f64(), any_f64()).prop_map(|(rating, deviation, volatility)| Rating {
            rating,
            deviation,
            volatility,
        })
    }

    fn in_range() -> impl Strategy<Value = Rating> {
        (
            MIN_RATING..=MAX_RATING,
            MIN_DEVIATION..=MAX_DEVIATION,
            MIN_VOLATILITY..=MAX_VOLATILITY,
        )
            .prop_map(|(rating, deviation, volatility)| Rating {
                rating,
                deviation,
                volatility,
            })
    }

    fn within_bounds(r: &Rating) -> bool {
        r.rating.is_finite()
            && (MIN_RATING..=MAX_RATING).contains(&r.rating)
            && (MIN_DEVIATION..=MAX_DEVIATION).contains(&r.deviation)
            && (MIN_VOLATILITY..=MAX_VOLATILITY).contains(&r.volatility)
    }

    proptest! {
        /// Whatever comes in, NaN and infinities included, a finite rating within bounds
        /// comes out.
        #[test]
        fn any_input_gives_a_finite_rating_within_bounds(
            player in any_rating(),
            results in prop::collection::vec((any_rating(), any_f64()), 0..20),
            tau in any_f64(),
        ) {
            let r = update(player, &results, tau);
            prop_assert!(within_bounds(&r), "{:?}", r);
            if let Some(&(opponent, score)) = results.first() {
                let (a, b) = rate_game(player, opponent, score);
                prop_assert!(within_bounds(&a) && within_bounds(&b), "{:?} {:?}", a, b);
            }
        }

        #[test]
        fn winning_never_lowers_a_rating_and_losing_never_raises_it(
            a in in_range(),
            b in in_range(),
            others in prop::collection::vec(in_range(), 1..15),
        ) {
            let (a_won, b_lost) = rate_game(a, b, WIN);
            prop_assert!(a_won.rating >= a.rating, "{:?} -> {:?}", a, a_won);
            prop_assert!(b_lost.rating <= b.rating, "{:?} -> {:?}", b, b_lost);
            let (a_lost, b_won) = rate_game(a, b, LOSS);
            prop_assert!(a_lost.rating <= a.rating && b_won.rating >= b.rating);
            let wins: Vec<_> = others.iter().map(|&o| (o, WIN)).collect();
            let losses: Vec<_> = others.iter().map(|&o| (o, LOSS)).collect();
            prop_assert!(update(a, &wins, TAU).rating >= a.rating);
            prop_assert!(update(a, &losses, TAU).rating <= a.rating);
        }
    }
}
