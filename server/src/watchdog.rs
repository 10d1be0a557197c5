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
    let mut silence = Silence::default();
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
                silence.echoed(app.hub.late_echoes());
                if app.set_redis_lost(false) {
                    tracing::info!("Redis answers again: accepting connections");
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "Redis probe failed");
                if matches!(e, HubError::NoEcho) && silence.no_echo(app.hub.late_echoes()) {
                    app.hub.renew_bus();
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

/// When a bus that does not echo its probes counts as one that stopped delivering: two probes
/// in a row given up on, with no earlier one coming back late in between. One late echo is
/// what a busy Redis or a burst of subscriptions looks like; an instance busy with thousands
/// of arrivals reads every message late, its probes' too; and a new bus connection makes every
/// local client catch up, which only adds to that load.
#[derive(Debug, Default)]
struct Silence {
    silent_probes: u32,
    late_echoes_seen: u64,
}

impl Silence {
    fn echoed(&mut self, late_echoes: u64) {
        self.silent_probes = 0;
        self.late_echoes_seen = late_echoes;
    }

    /// A probe was given up on; `late_echoes` is the hub's count of probes that came back
    /// after that. True: replace the bus.
    fn no_echo(&mut self, late_echoes: u64) -> bool {
        if late_echoes != self.late_echoes_seen {
            // Something given up on came back since: the bus delivers, late.
            self.late_echoes_seen = late_echoes;
            self.silent_probes = 0;
        }
        self.silent_probes += 1;
        if self.silent_probes >= 2 {
            self.silent_probes = 0;
            return true;
        }
        false
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

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_comes_back_after_it_was_given_up_on_counts_as_late() {
        let (app, stop, bus) = on_memory();
        while app
            .hub
            .probe(app.store.as_ref(), Duration::from_secs(1))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(app.hub.late_echoes(), 0);
        // Given up on before the bus task could read it.
        let given_up = app.hub.probe(app.store.as_ref(), Duration::ZERO).await;
        assert!(matches!(given_up, Err(HubError::NoEcho)), "{given_up:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(app.hub.late_echoes(), 1);
        stop.cancel();
        let _ = bus.await;
    }

    /// An instance on a memory store, with its bus running.
    fn on_memory() -> (Arc<App>, CancellationToken, tokio::task::JoinHandle<()>) {
        let (_, app) = crate::app::on_memory_store(Config {
            redis_lost: Duration::from_millis(600),
            ..Config::default()
        });
        let app = Arc::new(app);
        let stop = CancellationToken::new();
        let bus = tokio::spawn(app.hub.clone().run_bus(
            app.store.bus(),
            app.config.redis_probe_every(),
            stop.clone(),
        ));
        (app, stop, bus)
    }

    /// Every connection waits on the flag: a probe that only confirms what it says must not
    /// wake them (it did, twice a second, and each time every connection's task ran).
    #[tokio::test(start_paused = true)]
    async fn probes_that_find_redis_as_before_wake_no_connection() {
        let (app, stop, bus) = on_memory();
        let connection = app.redis_lost.subscribe();
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
    fn a_bus_is_replaced_after_two_silent_probes_with_no_late_echo_between() {
        let mut s = Silence::default();
        // A hung connection: nothing comes back.
        assert!(!s.no_echo(0));
        assert!(s.no_echo(0));
        // An answered probe starts the count again.
        assert!(!s.no_echo(0));
        s.echoed(0);
        assert!(!s.no_echo(0));
        assert!(s.no_echo(0));
        // A busy instance: each probe is given up on, but the one before came back late.
        assert!(!s.no_echo(0));
        assert!(!s.no_echo(1));
        assert!(!s.no_echo(2));
        assert!(!s.no_echo(3));
        // The late echoes stop: the next silent probe is the second in a row with none.
        assert!(s.no_echo(3));
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
