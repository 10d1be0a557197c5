//! Instance leases: this instance's heartbeat (and its presence announced again when its
//! lease lapsed), presence decrements retried after an outage, dead instances' presence swept,
//! and this instance's own released on shutdown.

use super::deadlines::{forfeit_clock, start_forfeit_clock};
use crate::app::App;
use crate::store::Attendance;
use tictactoe_protocol::templates::PresenceTemplate;

/// Renews this instance's lease. If it had lapsed (Redis was unreachable for longer than the
/// lease) another instance may have swept its presence: announce it again. Returns whether
/// Redis answered.
pub async fn heartbeat(app: &App) -> bool {
    match app
        .store
        .renew_lease(&app.lease, app.config.lease_ttl)
        .await
    {
        Ok(true) => true,
        Ok(false) => {
            // Anything deferred was swept with the lease.
            app.pending_leaves
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            let memberships = app.hub.memberships();
            if !memberships.is_empty() {
                tracing::warn!(
                    entries = memberships.len(),
                    "lease had lapsed; announcing presence again"
                );
            }
            for (game, player, role) in memberships {
                let entry = app.presence_entry(&player, role);
                if let Err(e) = app
                    .store
                    .presence_change(
                        &game,
                        &entry,
                        Attendance::Arrive,
                        &PresenceTemplate::new(&game),
                        app.config.game_ttl,
                    )
                    .await
                {
                    tracing::warn!(%game, error = %e, "could not announce presence");
                }
            }
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "lease renewal failed");
            false
        }
    }
}

/// Retries the presence decrements that could not reach the store, starting the forfeit
/// clocks of the seats they empty.
pub async fn retry_leaves(app: &App) {
    let pending: Vec<_> =
        std::mem::take(&mut *app.pending_leaves.lock().unwrap_or_else(|p| p.into_inner()));
    let mut pending = pending.into_iter();
    while let Some(leave) = pending.next() {
        let entry = app.presence_entry(&leave.player, leave.role);
        match app
            .store
            .presence_change(
                &leave.game,
                &entry,
                Attendance::Leave(leave.why),
                &PresenceTemplate::new(&leave.game),
                app.config.game_ttl,
            )
            .await
        {
            Ok(change) => start_forfeit_clock(app, &leave.game, &change).await,
            Err(_) => {
                // Redis is not answering: the rest waits for the next tick rather than each
                // waiting out its own timeout.
                app.defer_leave(leave);
                pending.for_each(|l| app.defer_leave(l));
                return;
            }
        }
    }
}

/// Clears the presence of instances whose lease expired (they died without a clean
/// shutdown), so their players show as gone and their forfeit clocks start.
pub async fn sweep_dead_instances(app: &App) {
    let leases = match app.store.expired_leases().await {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(error = %e, "could not list expired leases");
            return;
        }
    };
    for lease in leases.into_iter().filter(|l| *l != app.lease) {
        let swept = app
            .store
            .sweep_lease(&lease, app.config.game_ttl, PresenceTemplate::new)
            .await;
        match swept {
            Ok(emptied) => {
                tracing::info!(%lease, games = emptied.len(), "swept a dead instance's presence");
                metrics::counter!("leases_swept_total").increment(1);
                for (game, _) in emptied {
                    forfeit_clock(app, &game).await;
                }
            }
            Err(e) => tracing::warn!(%lease, error = %e, "sweep failed"),
        }
    }
}

/// Takes this instance's connections out of presence at once on shutdown, instead of
/// leaving them to the sweep after its lease expires.
pub async fn release(app: &App) {
    let swept = app
        .store
        .sweep_lease(&app.lease, app.config.game_ttl, PresenceTemplate::new)
        .await;
    if let Err(e) = swept {
        tracing::warn!(error = %e, "could not release this instance's lease");
    }
}
