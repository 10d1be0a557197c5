//! `tictactoe loadgen`: drives instances with many WebSocket clients and measures them.
//!
//! - **play**: connections pair into games, the two players of a game on different instances,
//!   and play random legal moves (round after round, through rematches). Measured: moves
//!   acknowledged per second, and move-to-opponent latency, from just before a player sends
//!   its move to the moment its opponent receives the `moved` event (both clients live in
//!   this process, so one clock serves both ends).
//! - **open**: the same games, but moves come on a schedule instead of a think time after
//!   the last one (an open loop): `--rate` moves per second offered by all games together,
//!   each game a `rate / games` share, spaced evenly from a random phase or as a Poisson
//!   process (`--arrivals`). A move is due at its scheduled time whether or not the player
//!   can make it then: if its turn has not come yet (the opponent's previous move has not
//!   reached it, or the round is being restarted), it waits and is sent the moment it can,
//!   and its latency is measured from the time it was due, not from when it was sent. So a
//!   server that falls behind shows it in the latencies instead of slowing the load down
//!   (no coordinated omission). A closed loop at thousands of connections only measures
//!   saturation; this asks "at 5,000 moves/s, how fast is a move?".
//! - **idle**: connections say hello and stay open, answering the server's pings: how much
//!   memory a connection costs a server, and how many it holds.
//!
//! The measurement window opens once every connection is up (and every game started), so
//! the ramp-up is excluded, and lasts `--duration`. A run stops by itself, or at Ctrl-C, and
//! always ends with the report.
//!
//! Besides speed, the report gives what the window's moves cost (module `cost`): CPU µs per
//! accepted move of each instance (`--server-pids`), of Redis (`--redis-pids`, or the pid
//! Redis gives in `INFO server` when it runs on this machine) and of this process, from
//! utime + stime in `/proc/<pid>/stat`; Redis commands per move from `INFO commandstats`
//! (`--redis-urls`: every node of a cluster); and Redis round trips per move from each
//! instance's own metrics (`redis_command_seconds_count` over `moves_total{result="accepted"}`),
//! read from `/metrics` on the host and port of its WebSocket URL unless `--metrics-urls`
//! says where. With several load generators against the same Redis, each divides Redis's
//! figures by its own moves only: run one generator when measuring Redis.
//!
//! One process holds at most as many sockets as its open-file limit allows (20,000 on the
//! benchmark machines): run several load generators for more connections than that.

pub(crate) mod conn;
mod cost;
mod cpu;
mod idle;
mod kernel;
mod metrics;
pub(crate) mod plan;
mod play;
mod redis_info;
mod report;
mod schedule;
mod stats;

pub(crate) use plan::Rng;
pub use plan::parse_duration;
pub use report::{
    Arrivals, CommandReport, Cpu, InstanceReport, Latency, Mode, RedisReport, Report,
};

use clap::{Args, Parser};
use conn::{Failure, Target, Ws};
use plan::Slot;
use stats::Stats;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// WebSocket handshakes in flight at once, whatever the ramp: two servers' listen backlogs
/// (4096 each) never see more than this many connections waiting.
const MAX_HANDSHAKES: usize = 512;
/// A game in which nothing happens for this long (plus the think time) is given up as
/// stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often progress goes to stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

#[derive(Args, Clone, Debug)]
pub struct LoadgenArgs {
    /// WebSocket URLs of the instances, comma separated. Play mode seats the two players of
    /// each game on different URLs.
    #[arg(long, value_delimiter = ',', required = true)]
    pub urls: Vec<String>,
    /// Connections to open (play mode pairs them into games; an odd one out is left out).
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Length of the measurement, which starts once every connection is up: 30s, 500ms, 2m,
    /// or a bare number of seconds.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Mean delay before each move (and, in play mode, before asking for a rematch), in
    /// milliseconds, drawn uniformly from half to one and a half times this (0: move as soon
    /// as it is our turn).
    #[arg(long, default_value_t = 100)]
    pub think_ms: u64,
    /// Open at most this many connections per second (`--ramp` alone: 1000/s), so bursts
    /// of handshakes do not overflow the servers' listen backlogs. Without it, connections
    /// open as fast as 512 concurrent handshakes allow.
    #[arg(long, num_args = 0..=1, default_missing_value = "1000", value_name = "PER_SEC")]
    pub ramp: Option<u32>,
    /// Local addresses to bind client sockets to, round-robin (e.g. 127.0.0.1,127.0.0.2):
    /// each gives another ~28,000 ephemeral ports.
    #[arg(long, value_delimiter = ',')]
    pub source_ips: Vec<IpAddr>,
    /// play: pairs of connections play games through rematches, each move a think time after
    /// the last (closed loop); open: the same games offering --rate moves/s on a schedule
    /// (open loop); idle: connections say hello and stay open (server memory per connection).
    #[arg(long, value_enum, default_value = "play")]
    pub mode: Mode,
    /// Open mode: moves per second offered by all games together (required there).
    #[arg(long, value_name = "MOVES_PER_SEC")]
    pub rate: Option<f64>,
    /// Open mode: a game's moves evenly spaced (from a random phase per game) or as a
    /// Poisson process.
    #[arg(long, value_enum, default_value = "even")]
    pub arrivals: Arrivals,
    /// Process ids of the servers, in the order of --urls: their resident memory before and
    /// after the connections, and their CPU per move over the window.
    #[arg(long, value_delimiter = ',')]
    pub server_pids: Vec<u32>,
    /// Prometheus pages of the servers, in the order of --urls, for their Redis round trips
    /// per move [default: http://HOST:PORT/metrics of each WebSocket URL].
    #[arg(long, value_delimiter = ',')]
    pub metrics_urls: Vec<String>,
    /// Redis URLs (every node of a cluster), for the commands run per move
    /// (INFO commandstats) and, when Redis runs on this machine, its pid.
    #[arg(long, value_delimiter = ',')]
    pub redis_urls: Vec<String>,
    /// Process ids of the Redis servers, in the order of --redis-urls, for their CPU per move
    /// [default: the process_id each reports in INFO server, if it is a local process].
    #[arg(long, value_delimiter = ',')]
    pub redis_pids: Vec<u32>,
    /// Print the report as one JSON object on stdout (the human report goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Seed for the move choices [default: from the clock; 1 in audit mode].
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub audit: crate::audit::AuditArgs,
}

#[derive(Parser)]
#[command(name = "loadgen", no_binary_name = true)]
struct Standalone {
    #[command(flatten)]
    args: LoadgenArgs,
}

impl LoadgenArgs {
    /// Parses the subcommand's flags alone (without the program and subcommand names), as
    /// tests and scripts build runs.
    pub fn try_parse_from<I, T>(flags: I) -> Result<LoadgenArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Standalone::try_parse_from(flags).map(|s| s.args)
    }
}

/// Spaces connection attempts `interval` apart, from any task, without a lock.
struct Pacer {
    start: Instant,
    interval_nanos: u64,
    next: AtomicU64,
}

impl Pacer {
    fn new(rate: Option<u32>) -> Pacer {
        Pacer {
            start: Instant::now(),
            interval_nanos: plan::pace_interval_nanos(rate.unwrap_or(0)),
            next: AtomicU64::new(0),
        }
    }

    async fn wait(&self) {
        if self.interval_nanos > 0 {
            let slot = self.next.fetch_add(self.interval_nanos, Relaxed);
            tokio::time::sleep_until(self.start + Duration::from_nanos(slot)).await;
        }
    }
}

/// Open mode's offer: `rate` moves per second shared by `games` games.
#[derive(Clone, Copy, Debug)]
struct OpenLoop {
    rate: f64,
    games: usize,
    arrivals: Arrivals,
}

/// What every connection task shares.
struct Ctx {
    targets: Vec<Target>,
    sources: Vec<IpAddr>,
    /// Cancelled at the end of the window, or by the caller (Ctrl-C).
    stop: CancellationToken,
    /// Closed loop: the mean wait before each move (zero in open mode).
    think: Duration,
    /// Open loop: moves come on a schedule instead.
    open: Option<OpenLoop>,
    seed: u64,
    pacer: Pacer,
    handshakes: Semaphore,
    stats: Stats,
}

impl Ctx {
    /// Records a failure, unless the run is ending: what breaks while we hang up is ours.
    fn fail(&self, f: &Failure) {
        if self.stop.is_cancelled() {
            return;
        }
        match f {
            Failure::Transport(kind) => self.stats.transport(kind),
            Failure::Server(code) => self.stats.error_code(*code),
            Failure::Stopped => {}
        }
    }

    /// Opens the connection of `slot`, paced, and counts it for its URL. The caller records
    /// the failure's kind.
    async fn open(&self, slot: Slot) -> Result<Ws, Failure> {
        let target = &self.targets[slot.url];
        let attempt = async {
            let addr = target
                .addr
                .as_ref()
                .map_err(|_| Failure::transport("bad_url"))?;
            self.pacer.wait().await;
            let _permit = self
                .handshakes
                .acquire()
                .await
                .map_err(|_| Failure::Stopped)?;
            let source = slot.source.and_then(|i| self.sources.get(i).copied());
            conn::connect(&target.url, *addr, source).await
        };
        let result = self.stoppable(attempt).await;
        let counts = &self.stats.per_url[slot.url];
        match &result {
            Ok(_) => counts.established.fetch_add(1, Relaxed),
            Err(Failure::Stopped) => 0,
            Err(_) => counts.failed.fetch_add(1, Relaxed),
        };
        result
    }

    /// Runs `f` unless the run stops first.
    async fn stoppable<T>(
        &self,
        f: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => Err(Failure::Stopped),
            r = f => r,
        }
    }

    fn instance_seen(&self, url: usize, name: &str) {
        let mut names = self.stats.per_url[url]
            .names
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !names.contains(name) {
            names.insert(name.to_string());
        }
    }
}

/// Marks a task's set-up as over exactly once, however the task ends.
struct Settle<'a> {
    stats: &'a Stats,
    done: bool,
}

impl<'a> Settle<'a> {
    fn new(stats: &'a Stats) -> Self {
        Settle { stats, done: false }
    }

    fn done(&mut self) {
        if !self.done {
            self.done = true;
            self.stats.settle();
        }
    }
}

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        self.done();
    }
}

/// The binary's entry: runs until the duration is over, Ctrl-C or SIGTERM, then prints the
/// report.
pub async fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    // Each connection is a file descriptor: use what the hard limit allows.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("warning: could not raise the open-file limit: {e}");
    }
    let stop = CancellationToken::new();
    tokio::spawn(on_signal(stop.clone()));
    let json = args.json;
    if args.mode == Mode::Audit {
        let report = crate::audit::run(args, stop).await?;
        if json {
            eprint!("{}", report.render());
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{}", report.render());
        }
        anyhow::ensure!(
            report.violations.is_empty(),
            "the audit found violations: {:?}",
            report.violations
        );
        return Ok(());
    }
    let report = run_with(args, stop).await?;
    if json {
        eprint!("{}", report.render());
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

/// The first signal ends the run early (the report still comes); a second one quits.
async fn on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    for n in 0.. {
        tokio::select! {
            r = tokio::signal::ctrl_c() => if r.is_err() { return },
            _ = term.recv() => {}
        }
        if n > 0 {
            std::process::exit(130);
        }
        eprintln!("interrupted: closing connections, then the report (again to quit at once)");
        stop.cancel();
    }
}

/// Runs a load test and returns its report. Cancelling `stop` ends it early (the report
/// says so). Unreachable or malformed URLs are counted as failed connections, not errors.
pub async fn run_with(args: LoadgenArgs, stop: CancellationToken) -> anyhow::Result<Report> {
    let urls: Vec<String> = args
        .urls
        .iter()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    anyhow::ensure!(!urls.is_empty(), "--urls: give at least one WebSocket URL");
    let mut targets = Vec::with_capacity(urls.len());
    for url in &urls {
        let target = conn::resolve(url).await;
        if let Err(e) = &target.addr {
            eprintln!("warning: {url}: {e}; its connections will all fail");
        }
        targets.push(target);
    }
    if args.server_pids.len() > urls.len() {
        eprintln!("warning: more --server-pids than --urls; the extra ones are ignored");
    }
    if args.metrics_urls.len() > urls.len() {
        eprintln!("warning: more --metrics-urls than --urls; the extra ones are ignored");
    }
    match (args.mode, args.rate) {
        (Mode::Open, None) => anyhow::bail!("--mode open needs --rate MOVES_PER_SEC"),
        (Mode::Open, Some(r)) => {
            anyhow::ensure!(r.is_finite() && r > 0.0, "--rate must be above zero")
        }
        (_, Some(_)) => anyhow::bail!("--rate applies to --mode open only"),
        (_, None) => {}
    }
    if let Some(limit) = stats::open_files_limit()
        && args.connections as u64 + 64 > limit
    {
        eprintln!(
            "warning: {} connections but this process may open only {limit} files \
             (ulimit -n): expect too_many_open_files; run several load generators",
            args.connections
        );
    }
    let pids: Vec<Option<u32>> = (0..urls.len())
        .map(|i| args.server_pids.get(i).copied())
        .collect();
    let sample = |pids: &[Option<u32>]| -> Vec<Option<u64>> {
        pids.iter().map(|p| p.and_then(stats::rss_kib)).collect()
    };
    let mut probes = cost::Probes::discover(cost::Targets {
        urls: &urls,
        server_pids: &args.server_pids,
        metrics_urls: &args.metrics_urls,
        redis_urls: &args.redis_urls,
        redis_pids: &args.redis_pids,
    })
    .await;
    let rss_before = sample(&pids);

    let (games, idle) = if args.mode.plays() {
        let games = plan::play_plan(args.connections, urls.len(), args.source_ips.len());
        (games, Vec::new())
    } else {
        let idle = plan::idle_plan(args.connections, urls.len(), args.source_ips.len());
        (Vec::new(), idle)
    };
    if args.mode.plays() && args.connections % 2 == 1 {
        eprintln!("warning: odd connection count: one connection is left out");
    }
    let to_settle = games.len() + idle.len();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let ctx = Arc::new(Ctx {
        targets,
        sources: args.source_ips.clone(),
        stop: stop.child_token(),
        think: match args.mode {
            Mode::Open => Duration::ZERO,
            _ => Duration::from_millis(args.think_ms),
        },
        open: args.rate.map(|rate| OpenLoop {
            rate,
            games: games.len(),
            arrivals: args.arrivals,
        }),
        seed,
        pacer: Pacer::new(args.ramp),
        handshakes: Semaphore::new(MAX_HANDSHAKES),
        stats: Stats::new(urls.len(), to_settle),
    });

    let mut tasks = JoinSet::new();
    for (i, g) in games.iter().enumerate() {
        tasks.spawn(play::game(ctx.clone(), i, *g));
    }
    for (i, slot) in idle.iter().enumerate() {
        tasks.spawn(idle::connection(ctx.clone(), i, *slot));
    }

    let progress = Progress {
        ctx: &ctx,
        quiet: args.quiet,
        total: to_settle,
        mode: args.mode,
    };
    let started = Instant::now();
    let mut tick = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut acks_then = 0;
    let all_up = to_settle == 0
        || loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break false,
                _ = ctx.stats.all_settled.notified() => break true,
                _ = tick.tick() => acks_then = progress.print(started, acks_then, false),
            }
        };

    let mut rss_after = vec![None; urls.len()];
    let mut rss_end = vec![None; urls.len()];
    let mut measured = Duration::ZERO;
    let mut interrupted = !all_up;
    let mut snapshots = None;
    if all_up {
        rss_after = sample(&pids);
        if !args.quiet {
            eprintln!(
                "[{:6.1}s] all set up ({} established, {} failed); measuring for {:?}",
                started.elapsed().as_secs_f64(),
                progress.established(),
                progress.failed(),
                args.duration
            );
        }
        let before = probes.at_window_start().await;
        ctx.stats.set_measuring(true);
        let window = Instant::now();
        let end = window + args.duration;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    interrupted = true;
                    break;
                }
                _ = tokio::time::sleep_until(end) => break,
                _ = tick.tick() => acks_then = progress.print(started, acks_then, true),
            }
        }
        ctx.stats.set_measuring(false);
        measured = window.elapsed();
        let after = probes.at_window_end().await;
        snapshots = Some((before, after));
        rss_end = sample(&pids);
    }

    // Every task hangs up on its own when told; the deadline covers a server that never
    // answers our close.
    ctx.stop.cancel();
    let hang_up = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(conn::CLOSE_TIMEOUT * 2, hang_up)
        .await
        .is_err()
    {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }

    let s = &ctx.stats;
    let instances: Vec<InstanceReport> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let u = &s.per_url[i];
            let connections = u.established.load(Relaxed);
            let kib_per_connection = match (rss_before[i], rss_after[i]) {
                (Some(b), Some(a)) if connections > 0 => {
                    Some((a as f64 - b as f64) / connections as f64)
                }
                _ => None,
            };
            InstanceReport {
                url: url.clone(),
                names: u
                    .names
                    .lock()
                    .map(|n| n.iter().cloned().collect())
                    .unwrap_or_default(),
                connections,
                failed: u.failed.load(Relaxed),
                pid: pids[i],
                rss_before_kib: rss_before[i],
                rss_after_kib: rss_after[i],
                rss_end_kib: rss_end[i],
                kib_per_connection,
                ..InstanceReport::default()
            }
        })
        .collect();
    let secs = measured.as_secs_f64();
    let mut report = Report {
        mode: args.mode,
        urls,
        think_ms: match args.mode {
            Mode::Open => 0,
            _ => args.think_ms,
        },
        rate: args.rate,
        arrivals: (args.mode == Mode::Open).then_some(args.arrivals),
        connections_requested: args.connections,
        connections_established: instances.iter().map(|i| i.connections).sum(),
        connections_failed: instances.iter().map(|i| i.failed).sum(),
        games_planned: games.len() as u64,
        games_started: s.games_started.load(Relaxed),
        games_cross_instance: s.games_cross.load(Relaxed),
        measured_secs: secs,
        interrupted,
        moves: s.moves(),
        moves_per_sec: if secs > 0.0 {
            s.moves() as f64 / secs
        } else {
            0.0
        },
        rounds: s.rounds(),
        latency: s.latency_summary(),
        errors: s.errors(),
        transport_errors: s.transport_errors(),
        instances,
        ..Report::default()
    };
    if let Some((before, after)) = &snapshots {
        probes.fill(&mut report, before, after, measured);
    }
    Ok(report)
}

/// Progress lines on stderr while the run goes on.
struct Progress<'a> {
    ctx: &'a Ctx,
    quiet: bool,
    total: usize,
    mode: Mode,
}

impl Progress<'_> {
    fn established(&self) -> u64 {
        let urls = &self.ctx.stats.per_url;
        urls.iter().map(|u| u.established.load(Relaxed)).sum()
    }

    fn failed(&self) -> u64 {
        let urls = &self.ctx.stats.per_url;
        urls.iter().map(|u| u.failed.load(Relaxed)).sum()
    }

    /// Prints one line and returns the ack count, to compute the next line's rate.
    fn print(&self, started: Instant, acks_then: u64, measuring: bool) -> u64 {
        let s = &self.ctx.stats;
        let acks = s.acks_total.load(Relaxed);
        if self.quiet {
            return acks;
        }
        let phase = if measuring { "measuring" } else { "ramp" };
        let rest = match self.mode {
            Mode::Play | Mode::Open => format!(
                "games set up, {:.0} moves/s",
                (acks - acks_then) as f64 / PROGRESS_EVERY.as_secs_f64()
            ),
            Mode::Idle | Mode::Audit => "connections set up".into(),
        };
        eprintln!(
            "[{:6.1}s] {phase}: {} established, {} failed, {}/{} {rest}",
            started.elapsed().as_secs_f64(),
            self.established(),
            self.failed(),
            s.settled(),
            self.total,
        );
        acks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_with_their_units_and_lists() {
        let a = LoadgenArgs::try_parse_from([
            "--urls",
            "ws://127.0.0.1:8080/ws,ws://127.0.0.1:8081/ws",
            "--connections",
            "200",
            "--duration",
            "30s",
            "--think-ms",
            "0",
            "--source-ips",
            "127.0.0.1,127.0.0.2",
            "--server-pids",
            "12,34",
            "--redis-urls",
            "redis://127.0.0.1:6379",
            "--redis-pids",
            "56",
            "--metrics-urls",
            "http://127.0.0.1:9100/metrics,http://127.0.0.1:9101/metrics",
            "--mode",
            "idle",
            "--json",
        ])
        .unwrap();
        assert_eq!(a.urls.len(), 2);
        assert_eq!(a.connections, 200);
        assert_eq!(a.duration, Duration::from_secs(30));
        assert_eq!(a.think_ms, 0);
        assert_eq!(a.source_ips.len(), 2);
        assert_eq!(a.server_pids, [12, 34]);
        assert_eq!(a.redis_urls, ["redis://127.0.0.1:6379"]);
        assert_eq!(a.redis_pids, [56]);
        assert_eq!(a.metrics_urls.len(), 2);
        assert_eq!(a.mode, Mode::Idle);
        assert!(a.json);
        assert_eq!(a.ramp, None);

        let a = LoadgenArgs::try_parse_from(["--urls", "ws://h/ws", "--ramp"]).unwrap();
        assert_eq!(a.ramp, Some(1000));
        assert_eq!(a.mode, Mode::Play);
        assert_eq!(a.duration, Duration::from_secs(10));
        let a = LoadgenArgs::try_parse_from(["--urls", "ws://h/ws", "--ramp", "250"]).unwrap();
        assert_eq!(a.ramp, Some(250));
        assert_eq!((a.rate, a.arrivals), (None, Arrivals::Even));

        let a = LoadgenArgs::try_parse_from([
            "--urls",
            "ws://h/ws",
            "--mode",
            "open",
            "--rate",
            "5000",
            "--arrivals",
            "poisson",
        ])
        .unwrap();
        assert_eq!(a.mode, Mode::Open);
        assert_eq!((a.rate, a.arrivals), (Some(5000.0), Arrivals::Poisson));

        assert!(LoadgenArgs::try_parse_from(["--connections", "2"]).is_err());
        assert!(LoadgenArgs::try_parse_from(["--urls", "u", "--duration", "soon"]).is_err());
        assert!(LoadgenArgs::try_parse_from(["--urls", "u", "--source-ips", "localhost"]).is_err());
    }

    #[tokio::test]
    async fn a_rate_goes_with_open_mode_and_open_mode_with_a_rate() {
        for flags in [
            &["--mode", "open"][..],
            &["--mode", "open", "--rate", "0"],
            &["--rate", "100"],
            &["--mode", "idle", "--rate", "100"],
        ] {
            let mut all = vec!["--urls", "ws://127.0.0.1:1/ws", "--quiet"];
            all.extend_from_slice(flags);
            let args = LoadgenArgs::try_parse_from(all).unwrap();
            let run = run_with(args, CancellationToken::new()).await;
            assert!(run.is_err(), "{flags:?}");
        }
    }

    #[tokio::test]
    async fn unreachable_servers_are_counted_not_fatal() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let args = LoadgenArgs::try_parse_from([
            "--urls",
            &format!("ws://127.0.0.1:{port}/ws,http://nope/"),
            "--connections",
            "6",
            "--duration",
            "100ms",
            "--quiet",
        ])
        .unwrap();
        let r = run_with(args, CancellationToken::new()).await.unwrap();
        assert_eq!(r.connections_established, 0);
        assert_eq!(r.connections_failed, 6);
        assert_eq!(r.games_started, 0);
        assert_eq!(r.transport_errors.get("connect_refused"), Some(&3));
        assert_eq!(r.transport_errors.get("bad_url"), Some(&3));
        assert_eq!(r.instances[0].failed, 3);
    }
}
