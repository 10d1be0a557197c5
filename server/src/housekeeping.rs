//! Background duties every instance shares, none of which belongs to any one instance: lease
//! heartbeats, sweeping dead instances' presence, firing due deadlines (forfeits, match
//! aborts), retrying deferred presence updates and due dates, keeping quick-match tickets fresh and pushing
//! lobby changes to watchers.

//!
//! Like requests, every one of them goes through [`crate::operations`]: none reaches the store
//! directly.

use crate::app::App;
use crate::hub::{ConnId, Outbound};
use crate::operations::leases::Beat;
use crate::operations::{deadlines, leases, lobby, matching};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    let redis_ok_since = Arc::new(Mutex::new(None));
    let lease = tokio::spawn(keep_lease(
        app.clone(),
        stop.clone(),
        redis_ok_since.clone(),
    ));
    let mut tick = tokio::time::interval(app.config.sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let tickets_every = app.config.lease_ttl / 3;
    let mut last_tickets: Option<tokio::time::Instant> = None;
    let mut ticket_misses: HashMap<ConnId, u32> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if last_tickets.is_none_or(|t| t.elapsed() >= tickets_every) {
            last_tickets = Some(tokio::time::Instant::now());
            refresh_tickets(&app, &mut ticket_misses).await;
        }
        leases::retry_leaves(&app).await;
        deadlines::retry_unwritten_dates(&app).await;
        // An outage of Redis (a failover, say) lets every lease lapse, the living instances'
        // too. Sweeping right after it would show their players as gone and start forfeit
        // clocks; one lease period of working heartbeats first gives every living instance
        // the time to renew, and leaves only the dead ones to sweep.
        let since = *redis_ok_since.lock().unwrap_or_else(|p| p.into_inner());
        if since.is_some_and(|t: tokio::time::Instant| t.elapsed() >= app.config.lease_ttl) {
            leases::sweep_dead_instances(&app).await;
        }
        deadlines::fire_due(&app, DEADLINES_PER_TICK).await;
    }
    lobby.abort();
    lease.abort();
}

/// Renews this instance's lease a few times per lease period, in a task of its own: the other
/// duties (sweeps, deadlines) take as long as Redis makes them, and a renewal waiting behind
/// them let the lease lapse while the instance served its players. After a lapse, presence is
/// announced again in a task of its own too, so that the next renewals are not held up by it.
/// `redis_ok_since` is when renewals began to succeed without a failure since (for sweeping).
async fn keep_lease(
    app: Arc<App>,
    stop: CancellationToken,
    redis_ok_since: Arc<Mutex<Option<tokio::time::Instant>>>,
) {
    let mut tick = tokio::time::interval(app.config.lease_ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut announcing: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let beat = leases::heartbeat(&app).await;
        {
            let mut since = redis_ok_since.lock().unwrap_or_else(|p| p.into_inner());
            if beat == Beat::Failed {
                *since = None;
            } else {
                since.get_or_insert_with(tokio::time::Instant::now);
            }
        }
        if beat == Beat::Registered {
            // A lapse during an announcement swept what it had announced: start over.
            if let Some(previous) = announcing.take() {
                previous.abort();
            }
            let app = app.clone();
            announcing = Some(tokio::spawn(async move {
                leases::announce_again(&app).await;
            }));
        }
    }
    if let Some(announcing) = announcing {
        announcing.abort();
    }
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
