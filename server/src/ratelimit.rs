//! Rate limiting with GCRA (the generic cell rate algorithm), in two tiers.
//!
//! The decision function is pure and shared: the in-process tier ([`LocalLimiter`]) runs it
//! per connection to drop floods before they cost a Redis round trip, the in-memory store runs
//! it as the authority, and `store/scripts/*.lua` mirror it line for line against Redis's own
//! clock (`TIME`), so a budget survives reconnects and instance hops.

use std::time::{Duration, Instant};

/// `burst` requests at once, then one every `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Emission interval in microseconds (1e6 / rate per second).
    pub interval_us: u64,
    pub burst: u32,
}

impl Rule {
    /// `per_second` may be fractional (0.5 = one every two seconds); `burst` is at least 1.
    pub fn per_second(per_second: f64, burst: u32) -> Rule {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            1e-6
        };
        Rule {
            interval_us: ((1e6 / per_second).round() as u64).max(1),
            burst: burst.max(1),
        }
    }

    /// How far ahead of now the theoretical arrival time may run before requests are refused.
    pub fn tolerance_us(&self) -> u64 {
        self.interval_us * u64::from(self.burst - 1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; store `new_tat` as the bucket's theoretical arrival time.
    Allow { new_tat: u64 },
    /// Refused; nothing changes. The same request will be allowed after `retry_after_us`.
    Deny { retry_after_us: u64 },
}

impl Decision {
    pub fn retry_after_ms(retry_after_us: u64) -> u64 {
        retry_after_us.div_ceil(1000)
    }
}

/// One GCRA step: `tat` is the stored theoretical arrival time (absent for a fresh bucket),
/// `now` the current time, both in microseconds on the same clock.
pub fn gcra(now: u64, tat: Option<u64>, rule: Rule) -> Decision {
    let tat = tat.unwrap_or(now).max(now);
    let allow_at = tat.saturating_sub(rule.tolerance_us());
    if now < allow_at {
        Decision::Deny {
            retry_after_us: allow_at - now,
        }
    } else {
        Decision::Allow {
            new_tat: tat + rule.interval_us,
        }
    }
}

/// The bucket's theoretical arrival time once one allowed request is given back (it turned
/// out to add nothing, as a retry of a chat line that went in): `tat` moved one interval
/// back, never before `now`. `None` when there is nothing to give back (a fresh or refilled
/// bucket), so that a refund never lifts a bucket above its burst.
pub fn gcra_refund(now: u64, tat: Option<u64>, rule: Rule) -> Option<u64> {
    tat.filter(|&t| t > now)
        .map(|t| t.saturating_sub(rule.interval_us).max(now))
}

/// An in-process bucket for one connection and one kind of request.
#[derive(Debug)]
pub struct LocalLimiter {
    rule: Rule,
    origin: Instant,
    tat: Option<u64>,
}

impl LocalLimiter {
    pub fn new(rule: Rule) -> LocalLimiter {
        LocalLimiter {
            rule,
            origin: Instant::now(),
            tat: None,
        }
    }

    /// Checks one request at `now` (injected so tests need no sleeping). `Err` holds how long
    /// to wait.
    pub fn check_at(&mut self, now: Instant) -> Result<(), Duration> {
        let now_us = now.saturating_duration_since(self.origin).as_micros() as u64;
        match gcra(now_us, self.tat, self.rule) {
            Decision::Allow { new_tat } => {
                self.tat = Some(new_tat);
                Ok(())
            }
            Decision::Deny { retry_after_us } => Err(Duration::from_micros(retry_after_us)),
        }
    }

    pub fn check(&mut self) -> Result<(), Duration> {
        self.check_at(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exactly_burst_requests_pass_at_once() {
        let rule = Rule::per_second(2.0, 5);
        let mut tat = None;
        for i in 0..5 {
            match gcra(1_000_000, tat, rule) {
                Decision::Allow { new_tat } => tat = Some(new_tat),
                d => panic!("request {i} refused: {d:?}"),
            }
        }
        assert_eq!(
            gcra(1_000_000, tat, rule),
            Decision::Deny {
                retry_after_us: 500_000
            }
        );
    }

    #[test]
    fn a_refused_request_passes_after_retry_after() {
        let rule = Rule::per_second(10.0, 1);
        let Decision::Allow { new_tat } = gcra(0, None, rule) else {
            panic!()
        };
        let Decision::Deny { retry_after_us } = gcra(30_000, Some(new_tat), rule) else {
            panic!()
        };
        assert_eq!(retry_after_us, 70_000);
        assert!(matches!(
            gcra(30_000 + retry_after_us - 1, Some(new_tat), rule),
            Decision::Deny { .. }
        ));
        assert!(matches!(
            gcra(30_000 + retry_after_us, Some(new_tat), rule),
            Decision::Allow { .. }
        ));
    }

    #[test]
    fn an_idle_bucket_refills_to_the_burst_and_no_further() {
        let rule = Rule::per_second(1.0, 3);
        let mut tat = None;
        let mut now = 0;
        for _ in 0..3 {
            let Decision::Allow { new_tat } = gcra(now, tat, rule) else {
                panic!()
            };
            tat = Some(new_tat);
        }
        // An hour later the bucket holds 3 again, not 3600.
        now += 3_600_000_000;
        let mut passed = 0;
        while let Decision::Allow { new_tat } = gcra(now, tat, rule) {
            tat = Some(new_tat);
            passed += 1;
        }
        assert_eq!(passed, 3);
    }

    #[test]
    fn the_local_limiter_uses_the_injected_clock() {
        let mut l = LocalLimiter::new(Rule::per_second(4.0, 2));
        let t0 = l.origin;
        assert!(l.check_at(t0).is_ok());
        assert!(l.check_at(t0).is_ok());
        assert_eq!(l.check_at(t0), Err(Duration::from_millis(250)));
        assert!(l.check_at(t0 + Duration::from_millis(250)).is_ok());
    }

    #[test]
    fn degenerate_rules_are_made_safe() {
        assert_eq!(Rule::per_second(0.0, 0).burst, 1);
        assert!(Rule::per_second(f64::NAN, 1).interval_us >= 1);
        assert_eq!(Decision::retry_after_ms(1), 1);
        assert_eq!(Decision::retry_after_ms(1000), 1);
    }

    #[test]
    fn a_refund_gives_back_one_request_and_never_more_than_the_burst() {
        let rule = Rule::per_second(1.0, 2);
        let (a, b) = match (gcra(0, None, rule), gcra(0, Some(1_000_000), rule)) {
            (Decision::Allow { new_tat: a }, Decision::Allow { new_tat: b }) => (a, b),
            other => panic!("{other:?}"),
        };
        assert!(matches!(gcra(0, Some(b), rule), Decision::Deny { .. }));
        // One given back: exactly one more passes.
        assert_eq!(gcra_refund(0, Some(b), rule), Some(a));
        assert!(matches!(gcra(0, Some(a), rule), Decision::Allow { .. }));
        // Half a second later, the refund stops at now.
        assert_eq!(gcra_refund(500_000, Some(a), rule), Some(500_000));
        // A full bucket has nothing to give back.
        assert_eq!(gcra_refund(2_000_000, Some(a), rule), None);
        assert_eq!(gcra_refund(0, None, rule), None);
    }

    proptest! {
        /// At the same instant, an allowed request and its refund leave the bucket exactly
        /// where it was.
        #[test]
        fn a_refund_undoes_an_allowed_request(
            start in 0u64..10_000_000,
            ahead in 0u64..5_000_000,
            per_second in 0.5f64..50.0,
            burst in 1u32..20,
        ) {
            let rule = Rule::per_second(per_second, burst);
            let tat = (ahead > 0).then_some(start + ahead);
            if let Decision::Allow { new_tat } = gcra(start, tat, rule) {
                let back = gcra_refund(start, Some(new_tat), rule);
                prop_assert_eq!(back, Some(tat.unwrap_or(start).max(start)));
            }
        }

        /// Over any schedule of requests, the number allowed up to time t never exceeds
        /// burst + t / interval: the defining bound of the algorithm.
        #[test]
        fn never_more_than_burst_plus_rate(
            gaps in proptest::collection::vec(0u64..400_000, 1..200),
            per_second in 0.5f64..50.0,
            burst in 1u32..20,
        ) {
            let rule = Rule::per_second(per_second, burst);
            let mut tat = None;
            let mut now = 0;
            let mut allowed = 0u64;
            for gap in gaps {
                now += gap;
                if let Decision::Allow { new_tat } = gcra(now, tat, rule) {
                    tat = Some(new_tat);
                    allowed += 1;
                }
                prop_assert!(allowed <= u64::from(burst) + now / rule.interval_us);
            }
        }
    }
}
