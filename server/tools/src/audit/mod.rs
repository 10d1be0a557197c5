//! `tictactoe loadgen --mode audit`: the audited load of the chaos run. Pairs of players
//! play through the load balancer at human pace while faults are injected, every client
//! recording what the server acknowledged and every event it received; at the end the
//! game logs and chat histories are read from Redis and the [`checker`](crate::checker)
//! judges the run.
//!
//! The fault injector (`scripts/chaos.sh`) kills and stops processes itself, and tells this
//! process through a control file ([`control`]) when each fault begins and ends, so that
//! fault windows are timed on the clients' own clock. The network faults live here: the
//! TCP proxies ([`proxy`]) in front of an instance's Redis link or of an instance, and the
//! reconnect storm, which drops clients of this process.
//!
//! - [`player`]: one audited player, reconnecting and resuming as the page does.
//! - [`store`]: what Redis holds of the audited games at the end.

pub mod control;
mod player;
pub mod proxy;
pub mod store;

use crate::checker::history::{FaultWindow, History, StoredGame};
use crate::checker::outage::{self, KindOutage};
use crate::checker::{self, Findings, Required, Settings};
use crate::loadgen::conn::{self, Failure};
use crate::loadgen::{LoadgenArgs, parse_duration};
use clap::Args;
use control::{Command, ProxyMode};
use proxy::{FaultProxy, LinkState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tictactoe_protocol::ErrorCode;
use tictactoe_rules::Mark;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Games set up at once.
const SET_UP_AT_ONCE: usize = 32;
/// Attempts to set a game up before it is left out.
const SET_UP_ATTEMPTS: u32 = 5;
/// Players still playing this long after the end are abandoned.
const HANG_UP: Duration = Duration::from_secs(15);
/// How often progress goes to stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

#[derive(Args, Clone, Debug, Default)]
pub struct AuditArgs {
    /// Audit: where Redis is read at the end: redis://HOST:PORT, sentinel://HOST:PORT,.../MASTER
    /// or cluster://HOST:PORT,... (required in audit mode).
    #[arg(long, value_name = "SOURCE", value_parser = parse_source)]
    pub audit_redis: Option<store::Source>,
    /// Audit: the servers' KEY_PREFIX.
    #[arg(long, default_value = "ttt:")]
    pub key_prefix: String,
    /// Audit: the control file the fault injector appends to; the load waits for its
    /// `start` line. Without it the load starts at once and nothing is injected.
    #[arg(long)]
    pub control: Option<PathBuf>,
    /// Audit: a file created once every game is set up (the faults may begin).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Audit: TCP proxies to start, NAME:LISTEN_PORT:UPSTREAM_PORT (127.0.0.1), changed by
    /// `proxy NAME freeze|degrade|normal` lines of the control file.
    #[arg(long = "proxy", value_delimiter = ',', value_parser = parse_proxy)]
    pub proxies: Vec<ProxySpec>,
    /// Audit: delay a degraded link adds to each chunk, each way.
    #[arg(long, default_value = "40ms", value_parser = parse_duration)]
    pub degrade_delay: Duration,
    /// Audit: share of chunks a degraded link "loses" (each costs one more 200 ms RTO).
    #[arg(long, default_value_t = 0.05)]
    pub degrade_loss: f64,
    /// Audit: a game with no progress for longer than this is stuck.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub stuck_after: Duration,
    /// Audit: X sends a chat line at the end of every Nth round (0: never).
    #[arg(long, default_value_t = 3)]
    pub chat_every: u32,
    /// Audit: acknowledged moves (and sessions) must survive: REDIS_WAIT_REPLICAS is set, or
    /// one Redis with appendfsync always.
    #[arg(long)]
    pub durable_moves: bool,
    /// Audit: acknowledged chat lines must survive (one Redis with appendfsync always).
    #[arg(long)]
    pub durable_chat: bool,
    /// Audit: the deployment's CHAT_KEPT.
    #[arg(long, default_value_t = 100)]
    pub chat_kept: usize,
    /// Audit: wait this long after the load stops before reading Redis.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Audit: write the whole recorded history and the stored games here, as JSON.
    #[arg(long)]
    pub history_out: Option<PathBuf>,
    /// Audit: judge a history written by --history-out again (no load, no Redis), with
    /// this run's --stuck-after, --chat-kept and --durable-* settings.
    #[arg(long, value_name = "FILE")]
    pub recheck: Option<PathBuf>,
}

/// What --history-out writes and --recheck reads.
#[derive(Serialize, Deserialize)]
struct Dump {
    history: History,
    stored: BTreeMap<String, StoredGame>,
    #[serde(default)]
    settings: Option<Settings>,
}

/// Judges a kept history again.
fn recheck(a: &AuditArgs, path: &std::path::Path) -> anyhow::Result<AuditReport> {
    let dump: Dump = serde_json::from_slice(&std::fs::read(path)?)?;
    let settings = Settings {
        stuck_after_ms: a.stuck_after.as_millis() as u64,
        chat_kept: a.chat_kept,
        // Histories written before the settings were kept: chaos.sh's FORFEIT_GRACE_MS.
        forfeit_grace_ms: dump.settings.map_or(10_000, |s| s.forfeit_grace_ms),
        ..Settings::default()
    };
    let required = Required {
        durable_moves: a.durable_moves,
        durable_chat: a.durable_chat,
    };
    let findings = checker::check(&dump.history, &dump.stored, &settings);
    let mut faults = BTreeMap::new();
    for f in &dump.history.faults {
        *faults.entry(f.kind.clone()).or_default() += 1;
    }
    Ok(AuditReport {
        moves_acked: findings.moves_acked,
        violations: findings
            .violations(required)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        outage: outage::by_kind(&dump.history),
        faults,
        findings,
        required,
        ..AuditReport::default()
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySpec {
    pub name: String,
    pub listen: u16,
    pub upstream: u16,
}

fn parse_proxy(s: &str) -> Result<ProxySpec, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [name, listen, upstream] = parts.as_slice() else {
        return Err(format!("{s:?}: expected NAME:LISTEN_PORT:UPSTREAM_PORT"));
    };
    let port = |p: &str| p.parse::<u16>().map_err(|e| format!("{s:?}: {e}"));
    Ok(ProxySpec {
        name: name.to_string(),
        listen: port(listen)?,
        upstream: port(upstream)?,
    })
}

fn parse_source(s: &str) -> Result<store::Source, String> {
    s.parse()
}

/// Counts every player adds to as it goes.
#[derive(Default)]
pub struct Counts {
    pub acks: AtomicU64,
    pub reconnects: AtomicU64,
    pub storm_drops: AtomicU64,
    pub sessions_lost: AtomicU64,
    /// Joins sent again after a connection found itself out of its game.
    pub rejoins: AtomicU64,
    /// The deployment's forfeit grace, as the `welcome`s say (every instance says the same).
    pub forfeit_grace_ms: AtomicU64,
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub transport: Mutex<BTreeMap<String, u64>>,
}

/// What every player shares.
pub struct Shared {
    pub url: String,
    pub addr: SocketAddr,
    /// The run's clock: every recorded time is milliseconds since this.
    pub clock: Instant,
    pub stop: CancellationToken,
    /// Bumped by each reconnect storm; the players it picks drop their connection.
    pub storm: watch::Sender<u64>,
    pub think: Duration,
    pub chat_every: u32,
    pub seed: u64,
    pub counts: Counts,
}

impl Shared {
    pub fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.clock).as_millis() as u64
    }

    fn count_error(&self, code: ErrorCode) {
        let name = serde_json::to_value(code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{code:?}"));
        let mut e = self.counts.errors.lock().unwrap_or_else(|p| p.into_inner());
        *e.entry(name).or_default() += 1;
    }

    fn count_failure(&self, f: &Failure) {
        match f {
            Failure::Transport(kind) => {
                let mut t = self
                    .counts
                    .transport
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                *t.entry(kind.clone()).or_default() += 1;
            }
            Failure::Server(code) => self.count_error(*code),
            Failure::Stopped => {}
        }
    }
}

/// What an audited run found, for people and scripts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    pub seed: u64,
    pub connections: usize,
    pub think_ms: u64,
    pub games_set_up: u64,
    pub games_not_set_up: u64,
    pub load_secs: f64,
    pub moves_acked: u64,
    pub reconnects: u64,
    pub storm_drops: u64,
    pub sessions_lost: u64,
    pub rejoins: u64,
    pub errors: BTreeMap<String, u64>,
    pub transport_errors: BTreeMap<String, u64>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    pub findings: Findings,
    /// Which findings had to be 0 beyond those that always must.
    pub required: Required,
    /// The findings that break a guarantee (empty: the run passed).
    pub violations: BTreeMap<String, u64>,
    pub outage: Vec<KindOutage>,
}

impl AuditReport {
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "audit: seed {}, {} connections ({} games set up, {} not), think {} ms, load {:.0} s",
            self.seed,
            self.connections,
            self.games_set_up,
            self.games_not_set_up,
            self.think_ms,
            self.load_secs
        );
        let _ = writeln!(
            out,
            "  {} moves acknowledged, {} reconnects, {} clients dropped by storms, {} joins again \
             after a failed restore, {} sessions lost",
            self.moves_acked, self.reconnects, self.storm_drops, self.rejoins, self.sessions_lost
        );
        let list = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "  errors: {}", list(&self.errors));
        let _ = writeln!(out, "  transport: {}", list(&self.transport_errors));
        let _ = writeln!(out, "faults injected: {}", list(&self.faults));
        let _ = writeln!(out, "checker:");
        out.push_str(&self.findings.render(self.required));
        let _ = writeln!(
            out,
            "longest time players could not move, by fault (per fault and game):"
        );
        let _ = writeln!(
            out,
            "  {:<22} {:>6} {:>8} {:>9} {:>9} {:>9}",
            "kind", "faults", "samples", "p50 ms", "p99 ms", "max ms"
        );
        for o in &self.outage {
            let _ = writeln!(
                out,
                "  {:<22} {:>6} {:>8} {:>9} {:>9} {:>9}",
                o.kind, o.faults, o.samples, o.p50_ms, o.p99_ms, o.max_ms
            );
        }
        if self.violations.is_empty() {
            let _ = writeln!(out, "PASS: every guarantee held");
        } else {
            let _ = writeln!(out, "FAIL: {}", list(&self.violations));
        }
        out
    }
}

/// Runs the audited load to its end and judges it.
pub async fn run(args: LoadgenArgs, stop: CancellationToken) -> anyhow::Result<AuditReport> {
    let a = &args.audit;
    if let Some(path) = &a.recheck {
        return recheck(a, path);
    }
    let source = a
        .audit_redis
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--mode audit needs --audit-redis"))?;
    let url = args
        .urls
        .first()
        .map(|u| u.trim().to_string())
        .ok_or_else(|| anyhow::anyhow!("--urls: give the load balancer's WebSocket URL"))?;
    let target = conn::resolve(&url).await;
    let addr = target.addr.map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let seed = args.seed.unwrap_or(1);

    let mut proxies = BTreeMap::new();
    for (i, p) in a.proxies.iter().enumerate() {
        let proxy = FaultProxy::start(
            &p.name,
            SocketAddr::from(([127, 0, 0, 1], p.listen)),
            SocketAddr::from(([127, 0, 0, 1], p.upstream)),
            seed ^ (i as u64 + 1),
        )
        .await
        .map_err(|e| anyhow::anyhow!("proxy {}: {e}", p.name))?;
        proxies.insert(p.name.clone(), proxy);
    }
    let (tx, mut commands) = mpsc::channel(64);
    if let Some(path) = &a.control {
        tokio::spawn(control::follow(path.clone(), tx));
        eprintln!("audit: waiting for `start` in {}", path.display());
    } else {
        drop(tx);
    }

    let shared = Arc::new(Shared {
        url,
        addr,
        clock: Instant::now(),
        stop: stop.child_token(),
        storm: watch::channel(0).0,
        think: Duration::from_millis(args.think_ms),
        chat_every: a.chat_every,
        seed,
        counts: Counts::default(),
    });
    let mut faults: Vec<FaultWindow> = Vec::new();
    let mut injector = Injector {
        shared: &shared,
        proxies: &proxies,
        degraded: LinkState::Degraded {
            delay: a.degrade_delay,
            loss: a.degrade_loss,
        },
        faults: &mut faults,
    };
    if a.control.is_some() {
        loop {
            tokio::select! {
                _ = stop.cancelled() => anyhow::bail!("interrupted before start"),
                c = commands.recv() => match c {
                    Some(Command::Start) => break,
                    Some(other) => injector.apply(other),
                    None => anyhow::bail!("the control file's reader stopped"),
                },
            }
        }
    }

    // Set-up, some games at once, each retried a few times.
    let games = args.connections / 2;
    let gate = Arc::new(Semaphore::new(SET_UP_AT_ONCE));
    let mut set_ups = JoinSet::new();
    for g in 0..games {
        let (sh, gate) = (shared.clone(), gate.clone());
        set_ups.spawn(async move {
            let _permit = gate.acquire().await.ok()?;
            for attempt in 0..SET_UP_ATTEMPTS {
                match player::set_up_game(&sh, g).await {
                    Ok(pair) => return Some(pair),
                    Err(f) => {
                        sh.count_failure(&f);
                        tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                    }
                }
                if sh.stop.is_cancelled() {
                    break;
                }
            }
            None
        });
    }
    let mut players = JoinSet::new();
    let mut set_up = 0u64;
    while let Some(r) = set_ups.join_next().await {
        if let Ok(Some(((x, xw), (o, ow)))) = r {
            set_up += 1;
            players.spawn(x.play(shared.clone(), xw));
            players.spawn(o.play(shared.clone(), ow));
        }
    }
    if !args.quiet {
        eprintln!(
            "audit: {set_up} of {games} games set up at {} ms; load for {:?}",
            shared.ms(Instant::now()),
            args.duration
        );
    }
    if let Some(path) = &a.ready_file {
        std::fs::write(path, format!("{set_up}\n"))?;
    }

    let started = Instant::now();
    let end = started + args.duration;
    let mut tick = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(end) => break,
            Some(c) = commands.recv() => injector.apply(c),
            _ = tick.tick() => if !args.quiet {
                let c = &shared.counts;
                eprintln!(
                    "audit: [{:5.0}s] {} moves acknowledged, {} reconnects",
                    started.elapsed().as_secs_f64(),
                    c.acks.load(Relaxed),
                    c.reconnects.load(Relaxed)
                );
            },
        }
    }
    // Whatever was said last (an `end` racing the deadline) still counts.
    while let Ok(c) = commands.try_recv() {
        injector.apply(c);
    }
    let end_ms = shared.ms(Instant::now());
    let load_secs = started.elapsed().as_secs_f64();
    shared.stop.cancel();
    let mut history = History {
        start_epoch_ms: epoch_ms().saturating_sub(end_ms),
        end_ms,
        players: Vec::new(),
        faults,
    };
    let collect = async {
        while let Some(r) = players.join_next().await {
            if let Ok(h) = r {
                history.players.push(h);
            }
        }
    };
    if tokio::time::timeout(HANG_UP, collect).await.is_err() {
        players.abort_all();
        anyhow::bail!("players did not stop within {HANG_UP:?}");
    }
    // By game, X first: the games' ids come out in order, once each.
    history
        .players
        .sort_by(|a, b| (&a.game, a.mark == Mark::O).cmp(&(&b.game, b.mark == Mark::O)));
    drop(proxies);

    tokio::time::sleep(a.settle).await;
    let game_ids: Vec<String> = {
        let mut g: Vec<String> = history.players.iter().map(|p| p.game.clone()).collect();
        g.dedup();
        g
    };
    let stored = store::read_games(&source, &a.key_prefix, &game_ids).await?;
    let settings = Settings {
        stuck_after_ms: a.stuck_after.as_millis() as u64,
        forfeit_grace_ms: shared.counts.forfeit_grace_ms.load(Relaxed),
        chat_kept: a.chat_kept,
        ..Settings::default()
    };
    let findings = checker::check(&history, &stored, &settings);
    let required = Required {
        durable_moves: a.durable_moves,
        durable_chat: a.durable_chat,
    };
    let c = &shared.counts;
    let sessions_lost = c.sessions_lost.load(Relaxed);
    let mut violations: BTreeMap<String, u64> = findings
        .violations(required)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if a.durable_moves && sessions_lost > 0 {
        violations.insert("sessions_lost".into(), sessions_lost);
    }
    let mut fault_counts = BTreeMap::new();
    for f in &history.faults {
        *fault_counts.entry(f.kind.clone()).or_default() += 1;
    }
    let report = AuditReport {
        seed,
        connections: args.connections,
        think_ms: args.think_ms,
        games_set_up: set_up,
        games_not_set_up: games as u64 - set_up,
        load_secs,
        moves_acked: c.acks.load(Relaxed),
        reconnects: c.reconnects.load(Relaxed),
        storm_drops: c.storm_drops.load(Relaxed),
        sessions_lost,
        rejoins: c.rejoins.load(Relaxed),
        errors: c.errors.lock().map(|e| e.clone()).unwrap_or_default(),
        transport_errors: c.transport.lock().map(|t| t.clone()).unwrap_or_default(),
        faults: fault_counts,
        outage: outage::by_kind(&history),
        findings,
        required,
        violations,
    };
    if let Some(path) = &a.history_out {
        let dump = Dump {
            history,
            stored,
            settings: Some(settings),
        };
        std::fs::write(path, serde_json::to_vec(&dump)?)?;
    }
    Ok(report)
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Applies the control file's commands: proxies, storms, fault windows.
struct Injector<'a> {
    shared: &'a Shared,
    proxies: &'a BTreeMap<String, FaultProxy>,
    degraded: LinkState,
    faults: &'a mut Vec<FaultWindow>,
}

impl Injector<'_> {
    fn apply(&mut self, c: Command) {
        let now = self.shared.ms(Instant::now());
        match c {
            Command::Start => {}
            Command::Begin { kind, target, cut } => self.faults.push(FaultWindow {
                kind,
                target,
                start_ms: now,
                end_ms: None,
                cut,
            }),
            Command::End { kind, target } => {
                if let Some(w) = self
                    .faults
                    .iter_mut()
                    .rev()
                    .find(|w| w.end_ms.is_none() && w.kind == kind && w.target == target)
                {
                    w.end_ms = Some(now);
                } else {
                    eprintln!("control: `end {kind}` without its `begin`");
                }
            }
            Command::Proxy { name, to } => match self.proxies.get(&name) {
                Some(p) => p.set(match to {
                    ProxyMode::Freeze => LinkState::Frozen,
                    ProxyMode::Degrade => self.degraded,
                    ProxyMode::Normal => LinkState::Normal,
                }),
                None => eprintln!("control: no proxy named {name}"),
            },
            Command::Storm => {
                self.shared.storm.send_modify(|g| *g += 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_flags_parse() {
        let a = LoadgenArgs::try_parse_from([
            "--urls",
            "ws://127.0.0.1:1/ws",
            "--mode",
            "audit",
            "--audit-redis",
            "sentinel://127.0.0.1:2,127.0.0.1:3/ttt",
            "--proxy",
            "redis-1:21000:6379,path-3:21001:8083",
            "--degrade-delay",
            "25ms",
            "--stuck-after",
            "45s",
            "--durable-moves",
        ])
        .unwrap();
        assert_eq!(a.audit.proxies.len(), 2);
        assert_eq!(
            a.audit.proxies[1],
            ProxySpec {
                name: "path-3".into(),
                listen: 21001,
                upstream: 8083
            }
        );
        assert_eq!(a.audit.degrade_delay, Duration::from_millis(25));
        assert_eq!(a.audit.stuck_after, Duration::from_secs(45));
        assert!(a.audit.durable_moves && !a.audit.durable_chat);
        assert!(matches!(
            a.audit.audit_redis,
            Some(store::Source::Sentinel { .. })
        ));
        assert!(parse_proxy("a:1").is_err());
        assert!(parse_proxy("a:1:x").is_err());
    }
}
