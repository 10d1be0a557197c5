//! Reconnect delays: exponential backoff with jitter, as every client of the protocol should
//! use (the page, the tools, and an instance's own Redis bus), so that a restart is not met by
//! a thundering herd.

use std::time::Duration;

/// Exponential backoff with jitter: each delay is drawn from [d/2, d], d doubling up to max.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            current: min,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = d / 2;
        let jitter = uuid::Uuid::new_v4().as_u64_pair().0 % (half.as_micros() as u64 + 1);
        half + Duration::from_micros(jitter)
    }

    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(d <= Duration::from_secs(1));
        }
        let capped = b.next_delay();
        assert!(capped >= Duration::from_millis(500));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
