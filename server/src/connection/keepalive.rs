//! A connection's liveness clock, kept across both phases (it starts when the connection
//! opens): a peer quiet for a third of `IDLE_TIMEOUT_MS` is pinged, one silent for all of it
//! is closed, and the session is renewed every quarter of its lifetime.
//!
//! A peer heard within the last third is not pinged: its own frames prove it there (and every
//! request is answered, so the other direction is not quiet either). Pinging every
//! connection every third regardless cost, at human pace, a wake-up, a write and a read of
//! the pong for about every tenth move (docs/benchmarks.md, "Human pace, fourth pass"). The
//! timer is moved on each frame instead of firing on a fixed beat, so a busy connection's
//! timer never fires at all; moving a tokio timer later costs no system call.

use std::pin::Pin;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

pub(super) struct Keepalive {
    timer: Pin<Box<Sleep>>,
    idle: Duration,
    last_heard: Instant,
    last_pinged: Instant,
    /// When the session is next due for renewal (or a failed renewal is retried).
    renew_at: Instant,
    renew_every: Duration,
}

/// What a due timer asks of the connection.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Due {
    /// Silent for the whole idle timeout: close it.
    Idle,
    /// Quiet for a third of it: ping, and renew the session if that is due.
    Ping,
    /// Heard lately: only the session's renewal may be due.
    Renew,
}

impl Keepalive {
    pub(super) fn start(idle: Duration, renew_every: Duration) -> Keepalive {
        let now = Instant::now();
        let renew_at = now + renew_every;
        Keepalive {
            timer: Box::pin(tokio::time::sleep_until((now + idle / 3).min(renew_at))),
            idle,
            last_heard: now,
            last_pinged: now,
            renew_at,
            renew_every,
        }
    }

    /// A frame came in.
    pub(super) fn heard(&mut self) {
        self.last_heard = Instant::now();
        self.reschedule();
    }

    /// Resolves when something is due; then [`Keepalive::due`] says what.
    pub(super) async fn tick(&mut self) {
        self.timer.as_mut().await;
    }

    /// What is due now, and the timer set for the next check.
    pub(super) fn due(&mut self) -> Due {
        let now = Instant::now();
        let due = if now.duration_since(self.last_heard) > self.idle {
            Due::Idle
        } else if now.duration_since(self.last_heard.max(self.last_pinged)) >= self.idle / 3 {
            self.last_pinged = now;
            Due::Ping
        } else {
            Due::Renew
        };
        self.reschedule();
        due
    }

    pub(super) fn renewal_due(&self) -> bool {
        Instant::now() >= self.renew_at
    }

    /// A renewal was tried: the next one is a full period away, a failed one is retried at
    /// the next check.
    pub(super) fn renewed(&mut self, ok: bool) {
        if ok {
            self.renew_at = Instant::now() + self.renew_every;
            self.reschedule();
        } else {
            self.defer_renewal();
        }
    }

    /// Not now (there is no session yet, or renewing failed): asked again at the next check.
    pub(super) fn defer_renewal(&mut self) {
        self.renew_at = Instant::now() + self.idle / 3;
        self.reschedule();
    }

    fn reschedule(&mut self) {
        let check = self.last_heard.max(self.last_pinged) + self.idle / 3;
        self.timer.as_mut().reset(check.min(self.renew_at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(60);
    const RENEW: Duration = Duration::from_secs(3600);

    async fn fires_after(k: &mut Keepalive) -> Duration {
        let t = Instant::now();
        k.tick().await;
        t.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_peer_is_pinged_each_third_and_closed_once_silent_throughout() {
        let mut k = Keepalive::start(IDLE, RENEW);
        for _ in 0..3 {
            assert_eq!(fires_after(&mut k).await, IDLE / 3);
            assert_eq!(k.due(), Due::Ping);
        }
        assert_eq!(fires_after(&mut k).await, IDLE / 3);
        assert_eq!(k.due(), Due::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_heard_within_a_third_is_never_pinged() {
        let mut k = Keepalive::start(IDLE, RENEW);
        for _ in 0..10 {
            tokio::time::advance(IDLE / 4).await;
            k.heard();
        }
        // Its timer kept moving: it fires a third after the last frame, not before.
        assert_eq!(fires_after(&mut k).await, IDLE / 3);
        assert_eq!(k.due(), Due::Ping);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_peer_still_gets_its_session_renewed_and_a_failure_retried() {
        let renew = Duration::from_secs(90);
        let mut k = Keepalive::start(IDLE, renew);
        let started = Instant::now();
        while !k.renewal_due() {
            tokio::select! {
                _ = k.tick() => assert_eq!(k.due(), Due::Renew),
                _ = tokio::time::sleep(IDLE / 6) => k.heard(),
            }
        }
        assert_eq!(started.elapsed(), renew);
        k.renewed(false);
        assert!(!k.renewal_due());
        tokio::time::advance(IDLE / 6).await;
        k.heard();
        assert_eq!(fires_after(&mut k).await, IDLE / 3 - IDLE / 6);
        assert!(
            k.renewal_due(),
            "retried within a third of the idle timeout"
        );
        k.renewed(true);
        assert!(!k.renewal_due());
    }
}
