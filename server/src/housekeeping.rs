//! Background duties every instance shares, none of which belongs to any one instance: lease
//! heartbeats, sweeping dead instances' presence, firing due deadlines (forfeits, match
//! aborts), retrying deferred presence updates, keeping quick-match tickets fresh and pushing
//! lobby changes to watchers.

use crate::app::App;
use crate::hub::{ConnId, Outbound};
use crate::operations;
use crate::operations::deadlines::start_forfeit_clock;
use crate::operations::lobby::LOBBY_MAX;
use crate::store::Attendance;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tictactoe_protocol::templates::PresenceTemplate;
use tokio_util::sync::CancellationToken;

/// How often coalesced lobby changes are pushed to watchers.
const LOBBY_EVERY: Duration = Duration::from_millis(300);
/// Due deadlines handled per tick.
const DEADLINES_PER_TICK: usize = 100;
/// How often the lobby is pruned of games that expired, even when nobody watches it.
const LOBBY_PRUNE_EVERY: Duration = Duration::from_secs(60);

pub async fn run(app: Arc<App>, stop: CancellationToken) {
    let lobby = {
        let app = app.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(LOBBY_EVERY);
            let mut last_prune = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                app.hub
                    .flush_lobby(
                        app.store.as_ref(),
                        LOBBY_MAX,
                        crate::operations::lobby::share(&app),
                        app.config.game_ttl,
                    )
                    .await;
                // Listing prunes entries older than the game lifetime.
                if last_prune.elapsed() >= LOBBY_PRUNE_EVERY {
                    last_prune = tokio::time::Instant::now();
                    let _ = app
                        .store
                        .lobby_list(1, Default::default(), app.config.game_ttl)
                        .await;
                }
            }
        })
    };
    let mut tick = tokio::time::interval(app.config.sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let heartbeat_every = app.config.lease_ttl / 3;
    let mut last_heartbeat: Option<tokio::time::Instant> = None;
    // Since when this instance's heartbeats reach Redis without a failure in between.
    let mut redis_ok_since: Option<tokio::time::Instant> = None;
    let mut ticket_misses: HashMap<ConnId, u32> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if last_heartbeat.is_none_or(|t| t.elapsed() >= heartbeat_every) {
            last_heartbeat = Some(tokio::time::Instant::now());
            if heartbeat(&app).await {
                redis_ok_since.get_or_insert_with(tokio::time::Instant::now);
            } else {
                redis_ok_since = None;
            }
            refresh_tickets(&app, &mut ticket_misses).await;
        }
        retry_leaves(&app).await;
        // An outage of Redis (a failover, say) lets every lease lapse, the living instances'
        // too. Sweeping right after it would show their players as gone and start forfeit
        // clocks; one lease period of working heartbeats first gives every living instance
        // the time to renew, and leaves only the dead ones to sweep.
        if redis_ok_since.is_some_and(|t| t.elapsed() >= app.config.lease_ttl) {
            sweep_dead_instances(&app).await;
        }
        fire_deadlines(&app).await;
    }
    lobby.abort();
}

/// Renews this instance's lease. If it had lapsed (Redis was unreachable for longer than the
/// lease) another instance may have swept its presence: announce it again. Returns whether
/// Redis answered.
async fn heartbeat(app: &App) -> bool {
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

async fn retry_leaves(app: &App) {
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
async fn sweep_dead_instances(app: &App) {
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
                let at = crate::app::wall_ms() + app.config.forfeit_grace.as_millis() as u64;
                for (game, _) in emptied {
                    if let Err(e) = app.store.set_deadline(&game, at).await {
                        tracing::warn!(%game, error = %e, "could not start the forfeit clock");
                    }
                }
            }
            Err(e) => tracing::warn!(%lease, error = %e, "sweep failed"),
        }
    }
}

async fn fire_deadlines(app: &App) {
    let due = match app.store.due_deadlines(DEADLINES_PER_TICK).await {
        Ok((_, due)) => due,
        Err(e) => {
            tracing::debug!(error = %e, "could not read deadlines");
            return;
        }
    };
    for (game, at) in due {
        if let Err(e) = operations::deadlines::resolve_deadline(app, &game, at).await {
            tracing::warn!(%game, error = %e, "deadline not resolved; will retry");
        }
    }
}

/// Keeps this instance's waiting tickets fresh. A ticket that left the queue without its
/// connection hearing of a match (the pairing instance died before telling it) is queued
/// again at the next refresh.
async fn refresh_tickets(app: &App, misses: &mut HashMap<ConnId, u32>) {
    let waiting: Vec<(ConnId, tictactoe_protocol::ids::PlayerId)> = app
        .waiting
        .iter()
        .map(|e| (*e.key(), e.value().clone()))
        .collect();
    misses.retain(|c, _| app.waiting.contains_key(c));
    if waiting.is_empty() {
        return;
    }
    let players: Vec<_> = waiting.iter().map(|(_, p)| p.clone()).collect();
    let missing = match app
        .store
        .match_refresh(&players, app.config.lease_ttl)
        .await
    {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(error = %e, "could not refresh tickets");
            return;
        }
    };
    for (conn, player) in waiting {
        if missing.contains(&player) {
            let n = misses.entry(conn).or_insert(0);
            *n += 1;
            if *n >= 2 {
                misses.remove(&conn);
                app.hub.deliver(conn, Outbound::Requeue);
            }
        } else {
            misses.remove(&conn);
        }
    }
}
