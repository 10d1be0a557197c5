//! What one instance shares between its connections and background tasks. Nothing here is a
//! source of truth: state lives in the store; this is sockets, subscriptions and handles.

use crate::admission::{Admission, budget_key};
use crate::config::Config;
use crate::hub::{ConnId, Hub};
use crate::ratelimit::{Decision, LocalLimiter, Rule};
use crate::store::{PresenceEntry, Store, StoreError};
use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::{AwayReason, Role};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Per-IP limiters used only while Redis is unreachable, so that an outage does not lift
/// the per-IP limits altogether. Bounded: cleared when it grows past this many addresses.
const FALLBACK_IPS: usize = 10_000;

/// Which of a game's two due dates (see [`crate::store::Store::set_deadline`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DueDate {
    /// The game's own: forfeit clocks, the computer's steps, round recordings.
    Own,
    /// Its match-confirmation date.
    Match,
}

/// Due dates that could not be written are kept for the housekeeping task up to this many;
/// past it, Redis has been away for long enough that this instance sends its clients
/// elsewhere, and the sweep of its lease starts the clocks that matter again.
pub const UNWRITTEN_DATES_MAX: usize = 65_536;

/// A presence decrement that could not reach the store, retried by the housekeeping task.
#[derive(Clone, Debug)]
pub struct PendingLeave {
    pub game: GameId,
    pub player: PlayerId,
    pub role: Role,
    pub why: AwayReason,
    /// The lease's registration it belongs to ([`App::lease_epoch`]): once the lease lapsed,
    /// was swept and registered anew, the entry it would decrement is gone, and the same
    /// player's newer connection may hold the field now.
    pub epoch: u64,
}

pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub hub: Arc<Hub>,
    /// The configured instance id, for logs and the welcome message.
    pub instance: String,
    /// This process's lease: instance id plus a per-start nonce, so a restarted instance
    /// never inherits its previous life's presence entries.
    pub lease: String,
    /// Cancelled when the instance shuts down.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them (the accept loop does not).
    pub connections: TaskTracker,
    /// Connection caps: the instance's, and per client address.
    pub admission: Arc<Admission>,
    /// Local connections waiting for a quick match, with their player.
    pub match_queue: DashMap<ConnId, PlayerId>,
    pub trusted_proxies: crate::trusted_proxies::TrustedProxies,
    /// Presence decrements to retry.
    pub pending_leaves: Mutex<Vec<PendingLeave>>,
    /// Due dates the store did not take (Redis did not answer), the earliest per game and
    /// kind, written again by the housekeeping task: a player who left while Redis stalled
    /// would otherwise be away with no clock, and the game would wait for them for ever.
    pub unwritten_dates: Mutex<std::collections::HashMap<(GameId, DueDate), u64>>,
    /// How many times this instance's lease was registered anew after being swept: presence
    /// decrements deferred under an earlier registration are void.
    pub lease_epoch: AtomicU64,
    /// True while this instance cannot reach Redis (for longer than `REDIS_LOST_MS`): its
    /// connections are closed with 1012 and new ones refused. Set by [`crate::watchdog`].
    pub redis_lost: tokio::sync::watch::Sender<bool>,
    pub move_counters: crate::telemetry::MoveCounters,
    /// Computer steps this instance scheduled, for its timer task
    /// ([`crate::operations::computer::run`]), which takes the receiving end at start.
    pub computer_timers: tokio::sync::mpsc::Sender<(GameId, u64)>,
    pub computer_timers_rx: Mutex<Option<tokio::sync::mpsc::Receiver<(GameId, u64)>>>,
    /// The store's address salt, once read (see [`crate::operations::profiles::address_hash`]).
    pub address_salt: tokio::sync::OnceCell<String>,
    /// `/readyz`'s probes of Redis, on a budget (see [`crate::readiness`]).
    pub readiness: crate::readiness::Readiness,
    /// The leaderboard's top rows, kept while the board does not change.
    pub board_top: crate::operations::profiles::BoardTop,
    next_conn: AtomicU64,
    ip_fallback: Mutex<std::collections::HashMap<(&'static str, IpAddr), LocalLimiter>>,
}

impl App {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        instance: String,
        lease: String,
        shutdown: CancellationToken,
    ) -> App {
        let hub = Arc::new(Hub::new(
            store.keys().clone(),
            &lease,
            config.presence_interval,
        ));
        let admission = Arc::new(Admission::new(
            crate::admission::connection_cap(
                config.max_connections,
                if config.metrics_addr.is_some() {
                    crate::admission::METRICS_MAX_OPEN
                } else {
                    0
                },
            ),
            config.ip_pending_max,
            config.ip_ws_max,
        ));
        let (computer_timers, computer_timers_rx) =
            tokio::sync::mpsc::channel(crate::operations::computer::MAX_TIMERS);
        App {
            computer_timers,
            computer_timers_rx: Mutex::new(Some(computer_timers_rx)),
            admission,
            trusted_proxies: config.trusted_proxies(),
            config,
            store,
            hub,
            instance,
            lease,
            shutdown,
            connections: TaskTracker::new(),
            match_queue: DashMap::new(),
            pending_leaves: Mutex::new(Vec::new()),
            unwritten_dates: Mutex::new(std::collections::HashMap::new()),
            lease_epoch: AtomicU64::new(0),
            redis_lost: tokio::sync::watch::Sender::new(false),
            move_counters: crate::telemetry::MoveCounters::new(),
            address_salt: tokio::sync::OnceCell::new(),
            readiness: crate::readiness::Readiness::default(),
            board_top: Default::default(),
            next_conn: AtomicU64::new(1),
            ip_fallback: Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub fn is_redis_lost(&self) -> bool {
        *self.redis_lost.borrow()
    }

    /// Records whether Redis counts as lost, and says whether that changed. Every connection
    /// waits on this flag, so it notifies them only on a change: the watchdog confirms it
    /// several times a second, and waking every connection for each confirmation made each
    /// instance stop serving for milliseconds at a time (3–8 ms at 2,000 connections, twice a
    /// second), which set the tail of move latency.
    pub fn set_redis_lost(&self, lost: bool) -> bool {
        set_if_changed(&self.redis_lost, lost)
    }

    pub fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    pub fn presence_entry<'a>(&'a self, player: &'a PlayerId, role: Role) -> PresenceEntry<'a> {
        PresenceEntry {
            lease: &self.lease,
            player,
            role,
        }
    }

    /// Checks a per-IP budget (`scope` names it) in the store. While the store is
    /// unreachable the check falls back to this instance's own limiter: it fails open to a
    /// per-instance limit, since refusing every connection would also refuse the players who
    /// only want to see that the game is unavailable. `Err` holds the wait in ms. IPv6
    /// clients are counted by their /64.
    pub async fn limit_ip(&self, scope: &'static str, ip: IpAddr, rule: Rule) -> Result<(), u64> {
        let ip = budget_key(ip);
        let key = self.store.keys().rate(scope, &ip.to_string());
        match self.store.rate(&key, rule).await {
            Ok(Decision::Allow { .. }) => Ok(()),
            Ok(Decision::Deny { retry_after_us }) => Err(Decision::retry_after_ms(retry_after_us)),
            Err(e) => {
                if !matches!(e, StoreError::Unavailable(_)) {
                    tracing::error!(error = %e, scope, "rate limit check failed");
                }
                metrics::counter!("rate_limit_fallback_total", "rule" => scope).increment(1);
                let mut map = self.ip_fallback.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() >= FALLBACK_IPS {
                    map.clear();
                }
                map.entry((scope, ip))
                    .or_insert_with(|| LocalLimiter::new(rule))
                    .check()
                    .map_err(|d| d.as_millis() as u64 + 1)
            }
        }
    }

    pub fn defer_leave(&self, leave: PendingLeave) {
        self.pending_leaves
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(leave);
    }
}

/// Wall-clock milliseconds since the epoch. Deadlines written with it are compared against
/// Redis's clock: instances and Redis are assumed to agree within well under a second.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// Sets a watched value and notifies its receivers only if it changed; says whether it did.
fn set_if_changed<T: PartialEq>(flag: &tokio::sync::watch::Sender<T>, value: T) -> bool {
    flag.send_if_modified(|current| {
        if *current == value {
            false
        } else {
            *current = value;
            true
        }
    })
}

/// An instance named `i` on a memory store of its own, for the unit tests of what runs on one.
#[cfg(test)]
pub(crate) fn on_memory_store(config: Config) -> (Arc<crate::store::memory::MemoryStore>, App) {
    use crate::store::{Keys, StoreLimits, memory::MemoryStore};
    let store = Arc::new(MemoryStore::new(Keys::new("t:"), StoreLimits::default()));
    let app = App::new(
        config,
        store.clone(),
        "i".into(),
        "i-1".into(),
        CancellationToken::new(),
    );
    (store, app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_set_to_what_it_holds_wakes_nobody() {
        let flag = tokio::sync::watch::Sender::new(false);
        let mut waiter = flag.subscribe();
        assert!(!set_if_changed(&flag, false));
        assert!(
            !waiter.has_changed().unwrap(),
            "confirming false woke the waiter"
        );
        assert!(set_if_changed(&flag, true));
        assert!(waiter.has_changed().unwrap());
        assert!(*waiter.borrow_and_update());
        assert!(!set_if_changed(&flag, true));
        assert!(
            !waiter.has_changed().unwrap(),
            "confirming true woke the waiter"
        );
        assert!(set_if_changed(&flag, false));
        assert!(waiter.has_changed().unwrap());
    }
}
