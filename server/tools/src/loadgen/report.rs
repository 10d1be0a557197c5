//! What a run measured: one struct, printed for people (stable lines to paste into
//! `docs/benchmarks.md`) or as one JSON object for scripts.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Play: connections pair into games and play; idle: they say hello and then only keep the
/// connection alive (memory and capacity).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Play,
    Idle,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Play => "play",
            Mode::Idle => "idle",
        }
    }
}

/// Move-to-opponent latency in milliseconds: from just before a player sends its move to
/// the moment the opponent receives the `moved` event of that version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One server, as the connections sent to one URL saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub mode: Mode,
    pub urls: Vec<String>,
    pub think_ms: u64,
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
        if self.mode == Mode::Play {
            line(
                "games",
                format!(
                    "{} planned, {} started, {} across instances",
                    self.games_planned, self.games_started, self.games_cross_instance
                ),
            );
            line("think time", format!("{} ms", self.think_ms));
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
        if self.mode == Mode::Play {
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
            line(&format!("instance {}", i + 1), value);
        }
        out
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
                },
                InstanceReport {
                    url: "ws://127.0.0.1:8081/ws".into(),
                    connections: 2,
                    ..InstanceReport::default()
                },
            ],
        }
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
        let r = sample();
        let json = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["latency"]["p99_ms"], 1.25);
        assert_eq!(v["errors"]["not_your_turn"], 2);
        assert_eq!(v["instances"][0]["kib_per_connection"], 15.0);
    }
}
