//! Instance leases: this instance's heartbeat (and its presence announced again when its
//! lease lapsed), presence decrements retried after an outage, lapsed leases' presence swept,
//! and this instance's own released on shutdown.

use super::deadlines::{forfeit_clock, start_forfeit_clock};
use crate::app::App;
use crate::store::{Attendance, LeaseRenewal};
use futures_util::stream::{self, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use tictactoe_protocol::Role;
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::templates::PresenceTemplate;

/// What one heartbeat found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beat {
    /// The lease was renewed.
    Renewed,
    /// The lease lapsed and another instance is sweeping it: presence is announced again once
    /// that sweep has ended.
    Swept,
    /// The lease was registered anew (first start, or after a lapse and its sweep): this
    /// instance's presence must be announced again, [`announce_again`].
    Registered,
    /// Redis did not answer.
    Failed,
}

/// Renews this instance's lease, and nothing else: it runs on its own timer, which no other
/// duty may hold up (a lease that lapses while its instance serves its players makes them
/// forfeit).
pub async fn heartbeat(app: &App) -> Beat {
    match app
        .store
        .renew_lease(&app.lease, app.config.lease_ttl)
        .await
    {
        Ok(LeaseRenewal::Renewed) => Beat::Renewed,
        Ok(LeaseRenewal::Sweeping) => Beat::Swept,
        Ok(LeaseRenewal::Registered) => {
            // Anything deferred was swept with the lease; a retry already under way checks
            // the epoch before each decrement.
            app.lease_epoch.fetch_add(1, Ordering::SeqCst);
            app.pending_leaves
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            Beat::Registered
        }
        Err(e) => {
            tracing::warn!(error = %e, "lease renewal failed");
            Beat::Failed
        }
    }
}

/// Presence announcements in flight at once after a lapse: enough that thousands of entries
/// take a few round trips' time, few enough not to crowd out the moves sharing the link.
const ANNOUNCE_CONCURRENCY: usize = 32;

/// Announces every local connection's presence again after this instance's lease lapsed and
/// was swept: absolute counts, so that an entry the sweep missed is not counted twice.
pub async fn announce_again(app: &App) {
    let mut counts: HashMap<(GameId, PlayerId, Role), u32> = HashMap::new();
    for membership in app.hub.memberships() {
        *counts.entry(membership).or_insert(0) += 1;
    }
    if counts.is_empty() {
        return;
    }
    tracing::warn!(
        entries = counts.len(),
        "lease had lapsed; announcing presence again"
    );
    metrics::counter!("leases_reannounced_total").increment(1);
    stream::iter(counts)
        .for_each_concurrent(
            ANNOUNCE_CONCURRENCY,
            |((game, player, role), n)| async move {
                let entry = app.presence_entry(&player, role);
                if let Err(e) = app
                    .store
                    .presence_change(
                        &game,
                        &entry,
                        Attendance::Announce(n),
                        &PresenceTemplate::new(&game),
                        app.config.game_ttl,
                    )
                    .await
                {
                    tracing::warn!(%game, error = %e, "could not announce presence");
                }
            },
        )
        .await;
}

/// Retries the presence decrements that could not reach the store, starting the forfeit
/// clocks of the seats they empty. A decrement deferred before the lease was swept and
/// registered anew is dropped: the sweep removed its entry, and applied now it would take
/// away the same player's newer connection to this instance (its player then forfeits while
/// connected; the chaos run's finding 7).
pub async fn retry_leaves(app: &App) {
    let pending: Vec<_> =
        std::mem::take(&mut *app.pending_leaves.lock().unwrap_or_else(|p| p.into_inner()));
    let mut pending = pending.into_iter();
    while let Some(leave) = pending.next() {
        if leave.epoch != app.lease_epoch.load(Ordering::SeqCst) {
            continue;
        }
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

/// How many lease periods a sweeper's claim lasts: long enough for a sweep of thousands of
/// games on a slow link (a second sweeper could take up a lease whose first one has not
/// finished), short enough that a sweeper's death delays the sweep by little.
const CLAIM_LEASES: u32 = 5;

/// Clears the presence of instances whose lease lapsed (they died without a clean shutdown,
/// or could not renew), so their players show as gone and their forfeit clocks start. Each
/// lapsed lease is claimed first, so one instance sweeps it, and its instance, if alive,
/// waits for the sweep to end before announcing its presence again.
pub async fn sweep_dead_instances(app: &App) {
    let leases = match app
        .store
        .claim_lapsed_leases(CLAIM_LEASES * app.config.lease_ttl)
        .await
    {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(error = %e, "could not claim lapsed leases");
            return;
        }
    };
    for lease in leases {
        let swept = app
            .store
            .sweep_lease(&lease, app.config.game_ttl, PresenceTemplate::new)
            .await;
        match swept {
            Ok(emptied) => {
                tracing::info!(%lease, games = emptied.len(), "swept a lapsed lease's presence");
                metrics::counter!("leases_swept_total").increment(1);
                for (game, _) in emptied {
                    forfeit_clock(app, &game).await;
                }
            }
            // The claim lapses and another sweep takes the lease up again.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::PendingLeave;
    use crate::config::Config;
    use crate::store::Store;
    use crate::store::memory::MemoryStore;
    use std::sync::Arc;
    use std::time::Duration;
    use tictactoe_protocol::AwayReason;

    /// An instance on a memory store, a game and a player of it.
    fn setting() -> (Arc<MemoryStore>, App, GameId, PlayerId) {
        let (store, app) = crate::app::on_memory_store(Config::default());
        let game = GameId::try_from("g1".to_string()).unwrap();
        let ann = PlayerId::try_from("ann".to_string()).unwrap();
        (store, app, game, ann)
    }

    /// Finding 7 of docs/reliability.md: a retry of deferred departures, under way while the
    /// lease was swept and registered anew, reached one of them after the same player had come
    /// back to this instance, and took the newer connection out of presence.
    #[tokio::test]
    async fn a_departure_deferred_before_the_lease_was_registered_anew_is_dropped() {
        let (store, app, game, ann) = setting();
        let ttl = Duration::from_secs(60);
        let arrive = || async {
            let entry = app.presence_entry(&ann, Role::X);
            let template = PresenceTemplate::new(&game);
            app.store
                .presence_change(&game, &entry, Attendance::Arrive, &template, ttl)
                .await
                .unwrap();
        };
        assert_eq!(heartbeat(&app).await, Beat::Registered);
        arrive().await;
        // Her connection closes while Redis is away: the departure waits.
        let deferred = PendingLeave {
            game: game.clone(),
            player: ann.clone(),
            role: Role::X,
            why: AwayReason::Disconnected,
            epoch: app.lease_epoch.load(Ordering::SeqCst),
        };
        // The lease lapses and another instance sweeps it; this one registers it anew.
        store
            .sweep_lease(&app.lease, ttl, PresenceTemplate::new)
            .await
            .unwrap();
        assert_eq!(heartbeat(&app).await, Beat::Registered);
        // A retry that had taken the departure before the registration still holds it
        // when she comes back to this instance.
        app.defer_leave(deferred);
        arrive().await;
        retry_leaves(&app).await;
        assert!(
            store.presence(&game).await.unwrap().players.x,
            "her newer connection was taken out of presence"
        );
        assert!(app.pending_leaves.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_departure_deferred_under_the_current_registration_is_retried() {
        let (store, app, game, ann) = setting();
        let ttl = Duration::from_secs(60);
        assert_eq!(heartbeat(&app).await, Beat::Registered);
        let entry = app.presence_entry(&ann, Role::X);
        store
            .presence_change(
                &game,
                &entry,
                Attendance::Arrive,
                &PresenceTemplate::new(&game),
                ttl,
            )
            .await
            .unwrap();
        app.defer_leave(PendingLeave {
            game: game.clone(),
            player: ann.clone(),
            role: Role::X,
            why: AwayReason::Disconnected,
            epoch: app.lease_epoch.load(Ordering::SeqCst),
        });
        retry_leaves(&app).await;
        assert!(!store.presence(&game).await.unwrap().players.x);
    }
}
