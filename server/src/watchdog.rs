//! Whether this instance can reach Redis, checked end to end several times a second: a probe
//! it publishes to its own channel must come back. A probe that was published but never
//! delivered replaces the pub/sub connection (a command that timed out has already had its
//! connection replaced by the store). After `REDIS_LOST_MS` without a successful probe the
//! instance gives up on its clients: they are closed with 1012 and resume on an instance that
//! can reach Redis, before their forfeit clocks run out; new ones are refused until a probe
//! succeeds again.

use crate::app::App;
use crate::hub::HubError;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest wait for a published probe to come back.
const ECHO_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn run(app: Arc<App>, stop: CancellationToken) {
    let lost_after = app.config.redis_lost;
    let every = app.config.redis_probe_every();
    let echo = ECHO_TIMEOUT
        .min(app.config.redis_timeout)
        .min(lost_after / 2);
    let mut last_ok = Instant::now();
    let mut silent_probes = 0u32;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let probe = tokio::select! {
            _ = stop.cancelled() => return,
            p = app.hub.probe(app.store.as_ref(), echo) => p,
        };
        match probe {
            Ok(_) => {
                last_ok = Instant::now();
                silent_probes = 0;
                if app.set_redis_lost(false) {
                    tracing::info!("Redis answers again: accepting connections");
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "Redis probe failed");
                // Two in a row: one late echo is what a busy Redis or a burst of subscriptions
                // looks like, and a new bus connection makes every local client catch up.
                if matches!(e, HubError::NoEcho) {
                    silent_probes += 1;
                    if silent_probes >= 2 {
                        silent_probes = 0;
                        app.hub.renew_bus();
                    }
                }
                // Redis answering other commands is busy, not gone: giving up on it would
                // send every client elsewhere because of a burst (thousands of connections
                // arriving at once did exactly that).
                if unreachable(last_ok, app.store.last_answer(), lost_after, Instant::now())
                    && app.set_redis_lost(true)
                {
                    metrics::counter!("redis_lost_total").increment(1);
                    tracing::warn!(
                        after_ms = lost_after.as_millis() as u64,
                        error = %e,
                        "Redis unreachable: closing connections (1012) so that they resume \
                         on another instance, and refusing new ones"
                    );
                }
            }
        }
        metrics::gauge!("redis_lost").set(if app.is_redis_lost() { 1.0 } else { 0.0 });
    }
}

/// Whether Redis counts as unreachable at `now`: no probe came back and no command was answered
/// for `lost_after`.
fn unreachable(
    last_probe: Instant,
    last_answer: Option<std::time::Instant>,
    lost_after: Duration,
    now: Instant,
) -> bool {
    let answering = last_answer.is_some_and(|at| now.into_std().duration_since(at) < lost_after);
    now.duration_since(last_probe) >= lost_after && !answering
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::memory::MemoryStore;
    use crate::store::{Keys, StoreLimits};

    /// Every connection waits on the flag: a probe that only confirms what it says must not
    /// wake them (it did, twice a second, and each time every connection's task ran).
    #[tokio::test(start_paused = true)]
    async fn probes_that_find_redis_as_before_wake_no_connection() {
        let store = Arc::new(MemoryStore::new(Keys::new("t:"), StoreLimits::default()));
        let config = Config {
            redis_lost: Duration::from_millis(600),
            ..Config::default()
        };
        let app = Arc::new(App::new(
            config,
            store,
            "i".into(),
            "i-1".into(),
            CancellationToken::new(),
        ));
        let stop = CancellationToken::new();
        let bus = tokio::spawn(app.hub.clone().run_bus(
            app.store.bus(),
            app.config.redis_probe_every(),
            stop.clone(),
        ));
        let mut connection = app.redis_lost.subscribe();
        let watchdog = tokio::spawn(run(app.clone(), stop.clone()));
        // Twenty probes' worth, each answered.
        tokio::time::sleep(app.config.redis_probe_every() * 20).await;
        assert!(!app.is_redis_lost());
        assert!(
            !connection.has_changed().unwrap(),
            "a probe woke the connections"
        );
        stop.cancel();
        let _ = tokio::join!(bus, watchdog);
    }

    #[test]
    fn a_redis_that_answers_commands_is_busy_not_unreachable() {
        let lost = Duration::from_secs(3);
        let start = Instant::now();
        let later = start + Duration::from_secs(5);
        // No probe back for 5 s, and no command answered either: gone.
        assert!(unreachable(start, None, lost, later));
        assert!(unreachable(start, Some(start.into_std()), lost, later));
        // Commands answered a second ago: busy (probes late), not gone.
        let recent = (later - Duration::from_secs(1)).into_std();
        assert!(!unreachable(start, Some(recent), lost, later));
        // A probe back within the window: fine whatever the commands did.
        assert!(!unreachable(
            later - Duration::from_secs(1),
            None,
            lost,
            later
        ));
    }
}
