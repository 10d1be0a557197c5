//! The composition root: an instance built from its settings, one way, for the binary, the
//! in-process tests and the connection's unit tests alike. Settings are checked as a whole
//! here (the Redis layout decided, contradictions refused, unwise combinations logged), then
//! the store, the shared handles and the background work are put together.

use crate::app::App;
use crate::config::Config;
use crate::{ServerError, admission, housekeeping, listener, operations, routes, telemetry};
use crate::{bind, watchdog};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A scrape's request must arrive within this, whatever the game port allows.
const METRICS_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// A built instance: its shared handles and the background tasks that serve them.
pub struct Application {
    pub app: Arc<App>,
    /// The bus, housekeeping, the watchdog, metrics upkeep and the metrics listener.
    background: TaskTracker,
    stop_background: CancellationToken,
}

impl Application {
    /// Checks the settings, connects the store they name and builds the instance's handles;
    /// starts the pub/sub bus (nothing can join a game without it). Nothing is served yet.
    pub fn build(config: Config, shutdown: CancellationToken) -> Result<Application, ServerError> {
        // Before anything registers a metric: handles taken earlier would record nowhere.
        telemetry::install_metrics();
        let checked = config.check()?;
        for warning in &checked.warnings {
            tracing::warn!("{warning}");
        }
        // Not a setting that cannot work, so not refused: a binary started from another
        // directory than the repository's (a service manager's `/`) otherwise serves a 404
        // for its page with nothing in its log to say why.
        if !config.web_dir.join("index.html").is_file() {
            tracing::warn!(
                web_dir = %config.web_dir.display(),
                "WEB_DIR has no index.html: the page answers 404 (WebSockets still work)"
            );
        }
        let instance = config.instance_id.clone().unwrap_or_else(|| {
            format!(
                "ttt-{}",
                &tictactoe_protocol::ids::GameId::generate().as_str()[..6]
            )
        });
        let lease = format!(
            "{}-{}",
            safe_name(&instance),
            &tictactoe_protocol::ids::GameId::generate().as_str()[..6]
        );
        let store = crate::store::connect(&checked.layout, &config)?;
        let app = Arc::new(App::new(config, store, instance, lease, shutdown));
        let background = TaskTracker::new();
        let stop_background = CancellationToken::new();
        background.spawn(app.hub.clone().run_bus(
            app.store.bus(),
            app.config.redis_probe_every(),
            stop_background.clone(),
        ));
        Ok(Application {
            app,
            background,
            stop_background,
        })
    }

    /// Starts the work every serving instance does besides its connections: housekeeping,
    /// the Redis watchdog, metrics upkeep.
    pub fn start_background(&self) {
        let (app, stop) = (&self.app, &self.stop_background);
        self.background
            .spawn(housekeeping::run(app.clone(), stop.clone()));
        self.background
            .spawn(watchdog::run(app.clone(), stop.clone()));
        let timers = app
            .computer_timers_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(timers) = timers {
            self.background.spawn(crate::operations::computer::run(
                app.clone(),
                timers,
                stop.clone(),
            ));
        }
        if let Some(metrics) = telemetry::metrics_handle() {
            self.background
                .spawn(telemetry::upkeep(metrics, stop.clone()));
        }
    }

    /// Serves on `listener` (and on METRICS_ADDR when set) until shutdown, then drains:
    /// stops accepting, closes every session with 1012 (reconnect elsewhere), waits for them
    /// up to the grace period, releases this instance's presence, and stops the background.
    pub async fn serve(self, listener: TcpListener) -> Result<(), ServerError> {
        let app = self.app.clone();
        let addr = listener.local_addr()?;
        if let Some(metrics_addr) = app.config.metrics_addr {
            let metrics = bind(metrics_addr)?;
            if let Ok(addr) = metrics.local_addr() {
                tracing::info!(%addr, "metrics listening");
            }
            // The same accept loop as the game port, with caps of its own: a flood of silent
            // sockets here must not take the descriptors the players need.
            let gate = listener::Gate {
                admission: Arc::new(admission::Admission::new(
                    admission::METRICS_MAX_OPEN,
                    admission::METRICS_PER_ADDRESS,
                    1,
                )),
                trusted: Default::default(),
                header_read_timeout: app.config.header_read_timeout.min(METRICS_HEADER_TIMEOUT),
                polite_refusals: admission::METRICS_MAX_OPEN,
            };
            self.background.spawn(listener::serve(
                metrics,
                gate,
                routes::metrics_router(),
                self.stop_background.clone(),
                Duration::ZERO,
            ));
        }
        tracing::info!(
            %addr,
            instance = %app.instance,
            lease = %app.lease,
            max_connections = app.admission.max_open(),
            "listening"
        );
        let gate = listener::Gate {
            admission: app.admission.clone(),
            trusted: app.trusted_proxies.clone(),
            header_read_timeout: app.config.header_read_timeout,
            polite_refusals: listener::POLITE_REFUSALS,
        };
        listener::serve(
            listener,
            gate,
            routes::router(app.clone()),
            app.shutdown.clone(),
            app.config.shutdown_grace,
        )
        .await;

        // The accept loop has stopped; it does not wait for upgraded connections. Those
        // saw the same token and are closing with 1012: wait for them to leave their games.
        app.connections.close();
        let grace = app.config.shutdown_grace;
        if tokio::time::timeout(grace, app.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = app.connections.len(),
                "connections still open after the shutdown grace period"
            );
        }
        operations::leases::release(&app).await;
        self.stop_background.cancel();
        self.background.close();
        self.background.wait().await;
        tracing::info!(instance = %app.instance, "stopped");
        Ok(())
    }

    /// Stops the background work of an instance that is not served (the connection's tests).
    pub fn stop(&self) {
        self.stop_background.cancel();
    }
}

/// An instance id reduced to characters that are safe in key names and hash tags.
fn safe_name(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if cleaned.is_empty() {
        "instance".into()
    } else {
        cleaned
    }
}
