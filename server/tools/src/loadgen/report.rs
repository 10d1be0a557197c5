//! What a run measured: one struct, printed for people (stable lines to paste into
//! `docs/benchmarks.md`) or as one JSON object for scripts.

pub use super::schedule::Arrivals;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Play: connections pair into games and play, each move a think time after the last (closed
/// loop); open: the same games, moving on a schedule that offers a fixed rate (open loop);
/// idle: they say hello and then only keep the connection alive (memory and capacity).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Play,
    Open,
    Idle,
    /// Play at human pace through the load balancer while faults are injected, recording
    /// everything, then check the guarantees (module `audit`).
    Audit,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Play => "play",
            Mode::Open => "open",
            Mode::Idle => "idle",
            Mode::Audit => "audit",
        }
    }

    /// Whether connections play games (closed or open loop).
    pub fn plays(self) -> bool {
        matches!(self, Mode::Play | Mode::Open)
    }
}

/// Move-to-opponent latency in milliseconds: from just before a player sends its move (in
/// open mode: from the time the move was due) to the moment the opponent receives the
/// `moved` event of that version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// CPU time of one process (user + system, every thread) over the measurement window, and
/// what it asked of the kernel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cpu {
    pub secs: f64,
    /// `secs` per second of window: 1.0 is one core kept busy.
    pub cores: f64,
    /// µs of CPU per move accepted in the window (none without moves).
    pub us_per_move: Option<f64>,
    /// System calls and context switches per move accepted in the window.
    pub kernel: Option<Kernel>,
}

/// System calls and context switches of one process (or several, summed) per accepted move.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Kernel {
    /// Every system call (`perf stat -e raw_syscalls:sys_enter`); none where perf could not
    /// count.
    pub syscalls_per_move: Option<f64>,
    /// Read- and write-like calls only (`/proc/<pid>/io` `syscr` + `syscw`).
    pub rw_calls_per_move: Option<f64>,
    /// Context switches summed over the process's threads (`/proc/<pid>/task/*/status`).
    pub voluntary_per_move: f64,
    pub involuntary_per_move: f64,
}

impl Kernel {
    /// Adds another process's figures (an instance's to the other instances').
    pub fn add(&mut self, other: &Kernel) {
        let sum = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.syscalls_per_move = sum(self.syscalls_per_move, other.syscalls_per_move);
        self.rw_calls_per_move = sum(self.rw_calls_per_move, other.rw_calls_per_move);
        self.voluntary_per_move += other.voluntary_per_move;
        self.involuntary_per_move += other.involuntary_per_move;
    }

    fn text(&self) -> String {
        let calls = match (self.syscalls_per_move, self.rw_calls_per_move) {
            (Some(all), Some(rw)) => format!("{all:.2} system calls ({rw:.2} read/write)"),
            (Some(all), None) => format!("{all:.2} system calls"),
            (None, Some(rw)) => format!("{rw:.2} read/write calls (/proc io; no perf)"),
            (None, None) => "system calls unknown".into(),
        };
        format!(
            "{calls}, {:.2} + {:.2} context switches (voluntary + involuntary) per move",
            self.voluntary_per_move, self.involuntary_per_move
        )
    }
}

impl Cpu {
    pub fn new(used: Duration, window: Duration, moves: u64) -> Cpu {
        let secs = used.as_secs_f64();
        let window = window.as_secs_f64();
        Cpu {
            secs,
            cores: if window > 0.0 { secs / window } else { 0.0 },
            us_per_move: (moves > 0).then(|| secs * 1e6 / moves as f64),
            kernel: None,
        }
    }
}

/// One Redis server over the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RedisReport {
    /// `--redis-urls`: where `INFO` was read (none when only a pid was given).
    pub url: Option<String>,
    /// `--redis-pids`, or the `process_id` of `INFO server` if that process is local.
    pub pid: Option<u32>,
    pub cpu: Option<Cpu>,
    /// Commands run in the window (`INFO commandstats` calls, inside scripts included).
    pub commands: Option<u64>,
}

/// One Redis command over the window, all Redis servers together.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandReport {
    /// As `INFO commandstats` names it, lower case (`evalsha`, `client|setname`).
    pub name: String,
    pub calls: u64,
    pub per_move: Option<f64>,
    pub usec_per_call: f64,
}

/// One server, as the connections sent to one URL saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceReport {
    pub url: String,
    /// Instance names the server gave in `welcome` (one, unless a balancer sits behind the
    /// URL).
    pub names: Vec<String>,
    /// Connections whose WebSocket handshake succeeded.
    pub connections: u64,
    pub failed: u64,
    pub pid: Option<u32>,
    /// Resident memory before the first connection.
    pub rss_before_kib: Option<u64>,
    /// Resident memory once every connection was up (and, in play mode, every game seated).
    pub rss_after_kib: Option<u64>,
    /// Resident memory when the measurement ended.
    pub rss_end_kib: Option<u64>,
    /// (after − before) / connections.
    pub kib_per_connection: Option<f64>,
    /// CPU of `pid` over the window, per move accepted by all instances.
    pub cpu: Option<Cpu>,
    /// Where the instance's Prometheus metrics were read.
    pub metrics_url: Option<String>,
    /// Moves this instance accepted in the window, by its own `moves_total` counter.
    pub accepted_moves: Option<u64>,
    /// Redis calls it made in the window (`redis_command_seconds_count`, every operation):
    /// each is one round trip.
    pub redis_round_trips: Option<u64>,
    /// redis_round_trips / accepted_moves.
    pub round_trips_per_move: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    pub mode: Mode,
    pub urls: Vec<String>,
    pub think_ms: u64,
    /// Open mode: moves per second offered, over all games.
    pub rate: Option<f64>,
    /// Open mode: how each game's moves are spaced.
    pub arrivals: Option<Arrivals>,
    pub connections_requested: usize,
    pub connections_established: u64,
    pub connections_failed: u64,
    /// Games planned (play mode): half the connections.
    pub games_planned: u64,
    /// Games in which both players were seated.
    pub games_started: u64,
    /// Started games whose players were welcomed by two different instances.
    pub games_cross_instance: u64,
    /// Length of the measurement window, which opens once every connection is up (and
    /// every game started) and so excludes the ramp-up.
    pub measured_secs: f64,
    /// Stopped early (Ctrl-C) or never reached the measurement window.
    pub interrupted: bool,
    /// Moves acknowledged by the server within the window.
    pub moves: u64,
    pub moves_per_sec: f64,
    /// Rounds finished (win or draw) within the window.
    pub rounds: u64,
    pub latency: Latency,
    /// `error` replies by code, over the whole run.
    pub errors: BTreeMap<String, u64>,
    /// Connect failures, closes and timeouts by kind, over the whole run.
    pub transport_errors: BTreeMap<String, u64>,
    pub instances: Vec<InstanceReport>,
    /// The instances' CPU per accepted move, summed over every instance with a pid.
    pub instances_cpu_us_per_move: Option<f64>,
    /// The instances' system calls and context switches per accepted move, summed.
    pub instances_kernel: Option<Kernel>,
    /// Redis's CPU per accepted move, summed over every Redis with a known pid.
    pub redis_cpu_us_per_move: Option<f64>,
    /// Redis's system calls and context switches per accepted move, summed.
    pub redis_kernel: Option<Kernel>,
    /// This load generator's own CPU.
    pub loadgen_cpu: Option<Cpu>,
    /// Redis commands per accepted move, all Redis servers together (`INFO commandstats`,
    /// which counts the commands inside scripts as well as the `EVALSHA` itself; the load
    /// generator's own `INFO` left out, anybody else's included).
    pub redis_commands_per_move: Option<f64>,
    /// The same per command, most calls first.
    pub redis_commands: Vec<CommandReport>,
    /// Redis round trips the instances made per move they accepted, by their own metrics
    /// (every operation: moves, rematches, lobby, sessions, clocks).
    pub redis_round_trips_per_move: Option<f64>,
    /// The same by operation.
    pub redis_round_trips_by_op: BTreeMap<String, f64>,
    pub redis: Vec<RedisReport>,
}

fn counts(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn kib(v: Option<u64>) -> String {
    v.map_or_else(|| "?".into(), |v| v.to_string())
}

/// How many commands and operations the one-line lists show (the JSON has them all).
const LIST_TOP: usize = 8;

fn cpu_text(c: &Cpu) -> String {
    let cpu = match c.us_per_move {
        Some(us) => format!("CPU {:.3} cores, {us:.1} µs per move", c.cores),
        None => format!("CPU {:.3} cores", c.cores),
    };
    match &c.kernel {
        Some(k) => format!("{cpu}; {}", k.text()),
        None => cpu,
    }
}

impl Report {
    /// The human-readable report: one `label  value` line per fact, in a fixed order.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |label: &str, value: String| {
            let _ = writeln!(out, "{label:<18}{value}");
        };
        line("mode", self.mode.as_str().into());
        line("urls", self.urls.join(", "));
        line(
            "connections",
            format!(
                "{} requested, {} established, {} failed",
                self.connections_requested, self.connections_established, self.connections_failed
            ),
        );
        if self.mode.plays() {
            line(
                "games",
                format!(
                    "{} planned, {} started, {} across instances",
                    self.games_planned, self.games_started, self.games_cross_instance
                ),
            );
        }
        if self.mode == Mode::Play {
            line("think time", format!("{} ms", self.think_ms));
        }
        if let (Mode::Open, Some(rate)) = (self.mode, self.rate) {
            let arrivals = self.arrivals.unwrap_or_default().as_str();
            line("offered", format!("{rate:.1} moves/s, {arrivals} arrivals"));
        }
        line(
            "measured",
            format!(
                "{:.3} s{}",
                self.measured_secs,
                if self.interrupted {
                    " (interrupted)"
                } else {
                    ""
                }
            ),
        );
        if self.mode.plays() {
            line(
                "moves",
                format!(
                    "{} accepted, {:.1} moves/s, {} rounds",
                    self.moves, self.moves_per_sec, self.rounds
                ),
            );
            let l = &self.latency;
            line(
                "latency ms",
                format!(
                    "p50 {:.3}, p90 {:.3}, p99 {:.3}, max {:.3} ({} samples)",
                    l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.samples
                ),
            );
        }
        line("errors", counts(&self.errors));
        line("transport errors", counts(&self.transport_errors));
        self.render_cost(&mut line);
        for (i, inst) in self.instances.iter().enumerate() {
            let names = if inst.names.is_empty() {
                String::new()
            } else {
                format!(" ({})", inst.names.join(", "))
            };
            let mut value = format!(
                "{}{names}: {} connections, {} failed",
                inst.url, inst.connections, inst.failed
            );
            if let Some(pid) = inst.pid {
                let _ = write!(
                    value,
                    "; pid {pid} RSS {} -> {} KiB (end {} KiB)",
                    kib(inst.rss_before_kib),
                    kib(inst.rss_after_kib),
                    kib(inst.rss_end_kib)
                );
                match inst.kib_per_connection {
                    Some(k) => {
                        let _ = write!(value, ", {k:.1} KiB per connection");
                    }
                    None => value.push_str(", KiB per connection unknown"),
                }
            }
            if let Some(c) = &inst.cpu {
                let _ = write!(value, "; {}", cpu_text(c));
            }
            if let (Some(trips), Some(moves)) = (inst.redis_round_trips, inst.accepted_moves) {
                let _ = write!(
                    value,
                    "; {trips} Redis round trips for {moves} accepted moves"
                );
                if let Some(r) = inst.round_trips_per_move {
                    let _ = write!(value, " ({r:.3} per move)");
                }
            }
            line(&format!("instance {}", i + 1), value);
        }
        out
    }

    /// The cost lines: each only when its figures were measured.
    fn render_cost(&self, line: &mut impl FnMut(&str, String)) {
        let us = |label: &str, v: Option<f64>| v.map(|v| format!("{label} {v:.1} µs"));
        let per_move: Vec<String> = [
            us("instances", self.instances_cpu_us_per_move),
            us("redis", self.redis_cpu_us_per_move),
            us(
                "loadgen",
                self.loadgen_cpu.as_ref().and_then(|c| c.us_per_move),
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !per_move.is_empty() {
            line("cpu per move", per_move.join(", "));
        }
        if let Some(k) = &self.instances_kernel {
            line("kernel instances", k.text());
        }
        if let Some(k) = &self.redis_kernel {
            line("kernel redis", k.text());
        }
        if let Some(c) = &self.loadgen_cpu {
            line("loadgen", cpu_text(c));
        }
        for (i, r) in self.redis.iter().enumerate() {
            let mut value = r.url.clone().unwrap_or_else(|| "(no URL)".into());
            if let Some(pid) = r.pid {
                let _ = write!(value, " pid {pid}");
            }
            if let Some(c) = &r.cpu {
                let _ = write!(value, ": {}", cpu_text(c));
            }
            if let Some(n) = r.commands {
                let _ = write!(value, "; {n} commands");
            }
            line(&format!("redis {}", i + 1), value);
        }
        if let Some(n) = self.redis_commands_per_move {
            let top: Vec<String> = self
                .redis_commands
                .iter()
                .take(LIST_TOP)
                .map(|c| {
                    format!(
                        "{} {:.2} ({:.1} µs)",
                        c.name,
                        c.per_move.unwrap_or(0.0),
                        c.usec_per_call
                    )
                })
                .collect();
            line(
                "redis commands",
                format!("{n:.2} per move: {}", top.join(", ")),
            );
        }
        if let Some(n) = self.redis_round_trips_per_move {
            let mut ops: Vec<(&String, &f64)> = self.redis_round_trips_by_op.iter().collect();
            ops.sort_by(|a, b| b.1.total_cmp(a.1).then_with(|| a.0.cmp(b.0)));
            let top: Vec<String> = ops
                .iter()
                .take(LIST_TOP)
                .map(|(op, v)| format!("{op} {v:.3}"))
                .collect();
            line(
                "redis round trips",
                format!("{n:.3} per move: {}", top.join(", ")),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            mode: Mode::Play,
            urls: vec![
                "ws://127.0.0.1:8080/ws".into(),
                "ws://127.0.0.1:8081/ws".into(),
            ],
            think_ms: 0,
            connections_requested: 4,
            connections_established: 4,
            connections_failed: 0,
            games_planned: 2,
            games_started: 2,
            games_cross_instance: 2,
            measured_secs: 2.0,
            interrupted: false,
            moves: 1000,
            moves_per_sec: 500.0,
            rounds: 120,
            latency: Latency {
                samples: 990,
                p50_ms: 0.5,
                p90_ms: 0.75,
                p99_ms: 1.25,
                max_ms: 3.0,
            },
            errors: BTreeMap::from([("not_your_turn".into(), 2)]),
            transport_errors: BTreeMap::new(),
            instances: vec![
                InstanceReport {
                    url: "ws://127.0.0.1:8080/ws".into(),
                    names: vec!["ttt-1".into()],
                    connections: 2,
                    failed: 0,
                    pid: Some(42),
                    rss_before_kib: Some(10_000),
                    rss_after_kib: Some(10_030),
                    rss_end_kib: Some(10_100),
                    kib_per_connection: Some(15.0),
                    ..InstanceReport::default()
                },
                InstanceReport {
                    url: "ws://127.0.0.1:8081/ws".into(),
                    connections: 2,
                    ..InstanceReport::default()
                },
            ],
            ..Report::default()
        }
    }

    /// The sample with every cost figure measured.
    fn costed() -> Report {
        let mut r = sample();
        let window = Duration::from_secs(2);
        r.loadgen_cpu = Some(Cpu::new(Duration::from_millis(50), window, r.moves));
        r.instances_cpu_us_per_move = Some(120.0);
        r.redis_cpu_us_per_move = Some(60.0);
        r.redis_commands_per_move = Some(2.5);
        r.redis_commands = vec![
            CommandReport {
                name: "pexpire".into(),
                calls: 1500,
                per_move: Some(1.5),
                usec_per_call: 0.75,
            },
            CommandReport {
                name: "evalsha".into(),
                calls: 1000,
                per_move: Some(1.0),
                usec_per_call: 44.5,
            },
        ];
        r.redis_round_trips_per_move = Some(1.25);
        r.redis_round_trips_by_op =
            BTreeMap::from([("lobby".into(), 0.25), ("transition".into(), 1.0)]);
        r.redis = vec![RedisReport {
            url: Some("redis://127.0.0.1:16379".into()),
            pid: Some(7),
            cpu: Some(Cpu::new(Duration::from_millis(60), window, r.moves)),
            commands: Some(2500),
        }];
        let i = &mut r.instances[0];
        i.cpu = Some(Cpu::new(Duration::from_millis(120), window, 1000));
        i.metrics_url = Some("http://127.0.0.1:8080/metrics".into());
        i.accepted_moves = Some(500);
        i.redis_round_trips = Some(625);
        i.round_trips_per_move = Some(1.25);
        r
    }

    #[test]
    fn the_human_report_is_stable() {
        let expected = "\
mode              play
urls              ws://127.0.0.1:8080/ws, ws://127.0.0.1:8081/ws
connections       4 requested, 4 established, 0 failed
games             2 planned, 2 started, 2 across instances
think time        0 ms
measured          2.000 s
moves             1000 accepted, 500.0 moves/s, 120 rounds
latency ms        p50 0.500, p90 0.750, p99 1.250, max 3.000 (990 samples)
errors            not_your_turn 2
transport errors  none
instance 1        ws://127.0.0.1:8080/ws (ttt-1): 2 connections, 0 failed; pid 42 RSS 10000 -> 10030 KiB (end 10100 KiB), 15.0 KiB per connection
instance 2        ws://127.0.0.1:8081/ws: 2 connections, 0 failed
";
        assert_eq!(sample().render(), expected);
    }

    #[test]
    fn cost_lines_appear_once_measured() {
        let text = costed().render();
        let expected = "\
cpu per move      instances 120.0 µs, redis 60.0 µs, loadgen 50.0 µs
loadgen           CPU 0.025 cores, 50.0 µs per move
redis 1           redis://127.0.0.1:16379 pid 7: CPU 0.030 cores, 60.0 µs per move; 2500 commands
redis commands    2.50 per move: pexpire 1.50 (0.8 µs), evalsha 1.00 (44.5 µs)
redis round trips 1.250 per move: transition 1.000, lobby 0.250
instance 1        ws://127.0.0.1:8080/ws (ttt-1): 2 connections, 0 failed; pid 42 RSS 10000 -> 10030 KiB (end 10100 KiB), 15.0 KiB per connection; CPU 0.060 cores, 120.0 µs per move; 625 Redis round trips for 500 accepted moves (1.250 per move)
";
        assert!(text.contains(expected), "{text}");
        assert!(!sample().render().contains("cpu per move"));
    }

    #[test]
    fn kernel_counts_are_reported_per_process_and_summed() {
        let mut r = costed();
        let instance = Kernel {
            syscalls_per_move: Some(7.5),
            rw_calls_per_move: Some(4.25),
            voluntary_per_move: 2.0,
            involuntary_per_move: 0.125,
        };
        let mut both = instance.clone();
        both.add(&instance);
        assert_eq!(both.syscalls_per_move, Some(15.0));
        assert_eq!(both.voluntary_per_move, 4.0);
        // Without perf on one side, the sum of all calls is unknown, not understated.
        both.add(&Kernel {
            syscalls_per_move: None,
            ..instance.clone()
        });
        assert_eq!(both.syscalls_per_move, None);
        assert_eq!(both.rw_calls_per_move, Some(12.75));
        r.instances_kernel = Some(instance.clone());
        r.redis_kernel = Some(Kernel {
            syscalls_per_move: None,
            rw_calls_per_move: Some(2.5),
            voluntary_per_move: 1.0,
            involuntary_per_move: 0.0,
        });
        r.instances[0].cpu.as_mut().unwrap().kernel = Some(instance);
        let text = r.render();
        assert!(
            text.contains(
                "kernel instances  7.50 system calls (4.25 read/write), 2.00 + 0.12 context \
                 switches (voluntary + involuntary) per move\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "kernel redis      2.50 read/write calls (/proc io; no perf), 1.00 + 0.00"
            ),
            "{text}"
        );
        assert!(
            text.contains("120.0 µs per move; 7.50 system calls"),
            "{text}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["instances_kernel"]["syscalls_per_move"], 7.5);
        assert_eq!(
            json["instances"][0]["cpu"]["kernel"]["voluntary_per_move"],
            2.0
        );
    }

    #[test]
    fn open_mode_reports_the_offered_rate_instead_of_think_time() {
        let mut r = sample();
        r.mode = Mode::Open;
        r.rate = Some(5000.0);
        r.arrivals = Some(Arrivals::Poisson);
        let text = r.render();
        assert!(text.contains("offered           5000.0 moves/s, poisson arrivals\n"));
        assert!(!text.contains("think time"));
        assert!(text.contains("latency ms"));
    }

    #[test]
    fn idle_reports_leave_out_games_and_latency() {
        let mut r = sample();
        r.mode = Mode::Idle;
        r.interrupted = true;
        let text = r.render();
        assert!(!text.contains("games"));
        assert!(!text.contains("latency"));
        assert!(text.contains("measured          2.000 s (interrupted)\n"));
    }

    #[test]
    fn the_json_report_round_trips() {
        let r = costed();
        let json = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["latency"]["p99_ms"], 1.25);
        assert_eq!(v["errors"]["not_your_turn"], 2);
        assert_eq!(v["instances"][0]["kib_per_connection"], 15.0);
        assert_eq!(v["instances"][0]["cpu"]["us_per_move"], 120.0);
        assert_eq!(v["redis"][0]["cpu"]["us_per_move"], 60.0);
        assert_eq!(v["loadgen_cpu"]["us_per_move"], 50.0);
        assert_eq!(v["redis_commands"][0]["name"], "pexpire");
        assert_eq!(v["redis_round_trips_by_op"]["transition"], 1.0);
        // A report from before these fields existed still reads.
        let old: Report = serde_json::from_str(r#"{"mode":"play","moves":3}"#).unwrap();
        assert_eq!((old.moves, old.redis_commands_per_move), (3, None));
    }
}
