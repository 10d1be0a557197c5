//! Logs (tracing: human-readable or JSON) and the Prometheus metrics recorder.

use crate::config::LogFormat;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Level;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static METRICS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the log subscriber. `RUST_LOG` overrides the default level (info). Safe to call
/// more than once (later calls do nothing), which tests rely on.
///
/// Whatever `RUST_LOG` says, the WebSocket library is never heard below debug: at trace it
/// prints every frame, session tokens included (see [`may_carry_secrets`]).
pub fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let fmt = tracing_subscriber::fmt::layer().with_ansi(ansi);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let secrets = filter_fn(|meta| !may_carry_secrets(meta.target(), *meta.level()));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt.with_filter(secrets))
        .try_init();
}

/// Log targets whose events at `level` can contain message payloads: tungstenite logs every
/// frame and message at trace, and a `hello` or `welcome` carries the session token. A filter
/// in code rather than a default directive, because `RUST_LOG` directives (a more specific
/// target, a span filter such as `[conn]=trace`) would override a directive.
pub fn may_carry_secrets(target: &str, level: Level) -> bool {
    level == Level::TRACE
        && ["tungstenite", "tokio_tungstenite"].iter().any(|lib| {
            target
                .strip_prefix(lib)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

/// Installs the process-wide metrics recorder once and returns its handle. Metrics are
/// process-wide: instances sharing a process (as in tests) share them.
pub fn install_metrics() -> Option<&'static PrometheusHandle> {
    METRICS
        .get_or_init(|| {
            let buckets = [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ];
            PrometheusBuilder::new()
                .set_buckets(&buckets)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
        })
        .as_ref()
}

pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    METRICS.get().and_then(Option::as_ref)
}

/// The counters every move bumps, registered once. The `counter!` macro registers its key
/// with the recorder on every use, an allocation or two each time.
pub struct MoveCounters {
    pub accepted: metrics::Counter,
    pub duplicate: metrics::Counter,
    pub transitions_ok: metrics::Counter,
    pub transitions_stale: metrics::Counter,
}

impl MoveCounters {
    /// Handles on the recorder installed now (none yet: they count nothing).
    pub fn new() -> MoveCounters {
        MoveCounters {
            accepted: metrics::counter!("moves_total", "result" => "accepted"),
            duplicate: metrics::counter!("moves_total", "result" => "duplicate"),
            transitions_ok: metrics::counter!("transitions_total", "result" => "ok"),
            transitions_stale: metrics::counter!("transitions_total", "result" => "stale"),
        }
    }
}

impl Default for MoveCounters {
    fn default() -> Self {
        MoveCounters::new()
    }
}

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds the histograms' recorded samples into their buckets every few seconds. The
/// recorder keeps every sample until it is drained, by a scrape or by this: an instance that
/// nobody scrapes would otherwise grow by a few bytes for every Redis call it makes, for ever.
pub async fn upkeep(handle: &'static PrometheusHandle, stop: CancellationToken) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => handle.run_upkeep(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_websocket_librarys_trace_events_are_held_back() {
        assert!(may_carry_secrets("tungstenite::protocol", Level::TRACE));
        assert!(may_carry_secrets("tungstenite", Level::TRACE));
        assert!(may_carry_secrets("tokio_tungstenite::compat", Level::TRACE));
        assert!(!may_carry_secrets("tungstenite::protocol", Level::DEBUG));
        assert!(!may_carry_secrets("tungstenitex", Level::TRACE));
        assert!(!may_carry_secrets("tictactoe::session", Level::TRACE));
    }
}
