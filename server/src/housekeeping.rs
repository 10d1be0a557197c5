//! Background duties every instance shares, none of which belongs to any one instance: lease
//! heartbeats, sweeping dead instances' presence, firing due deadlines (forfeits, match
//! aborts), retrying deferred presence updates, keeping quick-match tickets fresh and pushing
//! lobby changes to watchers.

//!
//! Like requests, every one of them goes through [`crate::operations`]: none reaches the store
//! directly.

use crate::app::App;
use crate::hub::{ConnId, Outbound};
use crate::operations::{deadlines, leases, lobby, matching};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
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
                lobby::push_changes(&app).await;
                if last_prune.elapsed() >= LOBBY_PRUNE_EVERY {
                    last_prune = tokio::time::Instant::now();
                    lobby::prune(&app).await;
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
            if leases::heartbeat(&app).await {
                redis_ok_since.get_or_insert_with(tokio::time::Instant::now);
            } else {
                redis_ok_since = None;
            }
            refresh_tickets(&app, &mut ticket_misses).await;
        }
        leases::retry_leaves(&app).await;
        // An outage of Redis (a failover, say) lets every lease lapse, the living instances'
        // too. Sweeping right after it would show their players as gone and start forfeit
        // clocks; one lease period of working heartbeats first gives every living instance
        // the time to renew, and leaves only the dead ones to sweep.
        if redis_ok_since.is_some_and(|t| t.elapsed() >= app.config.lease_ttl) {
            leases::sweep_dead_instances(&app).await;
        }
        deadlines::fire_due(&app, DEADLINES_PER_TICK).await;
    }
    lobby.abort();
}

/// Keeps this instance's waiting tickets fresh. A ticket that left the queue without its
/// connection hearing of a match (the pairing instance died before telling it) is queued
/// again at the next refresh.
async fn refresh_tickets(app: &App, misses: &mut HashMap<ConnId, u32>) {
    let queued: Vec<(ConnId, tictactoe_protocol::ids::PlayerId)> = app
        .match_queue
        .iter()
        .map(|e| (*e.key(), e.value().clone()))
        .collect();
    misses.retain(|c, _| app.match_queue.contains_key(c));
    if queued.is_empty() {
        return;
    }
    let players: Vec<_> = queued.iter().map(|(_, p)| p.clone()).collect();
    let missing = match matching::refresh(app, &players).await {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(error = %e, "could not refresh tickets");
            return;
        }
    };
    for (conn, player) in queued {
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
