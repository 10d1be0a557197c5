//! `/readyz`'s Redis half, on a budget. The endpoint is public (on the game port, where load
//! balancers look for it), and a fresh verdict costs Redis two commands: a `PING` and the
//! pub/sub echo. Without a budget anyone could make every instance send Redis two commands
//! per HTTP request, and a flood of health checks would slow every game sharing that Redis.
//! So fresh verdicts are taken at most [`PROBES_PER_SECOND`] times a second (after a burst of
//! [`PROBE_BURST`]), in all; a request beyond that is answered with the latest verdict, which
//! a flood keeps no older than one budget interval (50 ms). A health checker polling every
//! second or two always gets a fresh one.

use crate::ratelimit::{LocalLimiter, Rule};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const PROBES_PER_SECOND: f64 = 20.0;
pub const PROBE_BURST: u32 = 20;

/// What the probes found, and when.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub store: Result<(), String>,
    /// The pub/sub echo's round trip.
    pub pubsub: Result<Duration, String>,
    pub at: Instant,
}

pub struct Readiness {
    budget: Mutex<LocalLimiter>,
    latest: Mutex<Option<Verdict>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            budget: Mutex::new(LocalLimiter::new(Rule::per_second(
                PROBES_PER_SECOND,
                PROBE_BURST,
            ))),
            latest: Mutex::new(None),
        }
    }
}

impl Readiness {
    /// The verdict for a check arriving `now`: a fresh one from `probe` within the budget
    /// (kept as the latest), else the latest; `None` before any probe has ended.
    pub async fn verdict(
        &self,
        now: Instant,
        probe: impl Future<Output = Verdict>,
    ) -> Option<Verdict> {
        if !self.may_probe_at(now) {
            metrics::counter!("readyz_from_latest_total").increment(1);
            return self.latest();
        }
        let verdict = probe.await;
        self.record(verdict.clone());
        Some(verdict)
    }

    /// Whether a request arriving `now` may take a fresh verdict (spending the budget).
    fn may_probe_at(&self, now: Instant) -> bool {
        self.budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check_at(now)
            .is_ok()
    }

    /// Keeps `verdict` unless a newer one is kept already (concurrent probes end in any
    /// order).
    fn record(&self, verdict: Verdict) {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        if latest.as_ref().is_none_or(|l| l.at <= verdict.at) {
            *latest = Some(verdict);
        }
    }

    /// The newest verdict, if any probe has ended yet.
    fn latest(&self) -> Option<Verdict> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(at: Instant, store: Result<(), String>) -> Verdict {
        Verdict {
            store,
            pubsub: Ok(Duration::from_micros(300)),
            at,
        }
    }

    #[test]
    fn a_burst_of_fresh_verdicts_then_the_rate() {
        let r = Readiness::default();
        let t0 = Instant::now();
        for i in 0..PROBE_BURST {
            assert!(r.may_probe_at(t0), "request {i} of the burst");
        }
        assert!(!r.may_probe_at(t0), "beyond the burst");
        let interval = Duration::from_secs_f64(1.0 / PROBES_PER_SECOND);
        assert!(r.may_probe_at(t0 + interval), "one more an interval later");
        assert!(!r.may_probe_at(t0 + interval));
        // A second without requests refills the burst.
        let later = t0 + interval + Duration::from_secs(1);
        assert!((0..PROBE_BURST).all(|_| r.may_probe_at(later)));
    }

    #[tokio::test]
    async fn over_the_budget_the_latest_verdict_answers_without_a_probe() {
        let r = Readiness::default();
        let t0 = Instant::now();
        for _ in 0..PROBE_BURST {
            let fresh = r
                .verdict(t0, async { verdict(Instant::now(), Ok(())) })
                .await;
            assert!(fresh.is_some_and(|v| v.store.is_ok()));
        }
        let latest = r
            .verdict(t0, async { panic!("probed beyond the budget") })
            .await
            .expect("the latest verdict");
        assert!(latest.store.is_ok());
        let none_yet = Readiness::default();
        for _ in 0..PROBE_BURST {
            assert!(none_yet.may_probe_at(t0));
        }
        assert!(
            none_yet
                .verdict(t0, async { panic!("probed beyond the budget") })
                .await
                .is_none()
        );
    }

    #[test]
    fn the_newest_verdict_is_kept_whatever_order_probes_end_in() {
        let r = Readiness::default();
        assert!(r.latest().is_none());
        let t0 = Instant::now();
        let newer = t0 + Duration::from_millis(10);
        r.record(verdict(newer, Err("down".into())));
        r.record(verdict(t0, Ok(())));
        let kept = r.latest().expect("a verdict");
        assert_eq!((kept.at, kept.store), (newer, Err("down".into())));
        let newest = newer + Duration::from_millis(10);
        r.record(verdict(newest, Ok(())));
        assert_eq!(r.latest().expect("a verdict").at, newest);
    }
}
