//! Counters every connection task writes into, and what the run reads from `/proc`.
//!
//! One shared set rather than one per task: a histogram at 3 significant figures is about
//! 100 KiB, too much to keep per game at tens of thousands of games, and the locks here are
//! held for a few instructions.

use super::report::Latency;
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;
use tictactoe_protocol::ErrorCode;
use tokio::sync::Notify;

/// Latencies above this (an hour, in µs) are clamped rather than dropped.
const LATENCY_MAX_US: u64 = 3_600_000_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking task must not take the report down with it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
pub struct UrlStats {
    pub established: AtomicU64,
    pub failed: AtomicU64,
    pub names: Mutex<BTreeSet<String>>,
}

pub struct Stats {
    measuring: AtomicBool,
    /// Acks within the measurement window.
    moves: AtomicU64,
    /// Acks at any time, for the progress lines.
    pub acks_total: AtomicU64,
    rounds: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    transport: Mutex<BTreeMap<String, u64>>,
    pub per_url: Vec<UrlStats>,
    pub games_started: AtomicU64,
    pub games_cross: AtomicU64,
    /// Connections (idle) or games (play) whose set-up is over, successfully or not.
    settled: AtomicUsize,
    to_settle: usize,
    pub all_settled: Notify,
}

impl Stats {
    pub fn new(urls: usize, to_settle: usize) -> Stats {
        Stats {
            measuring: AtomicBool::new(false),
            moves: AtomicU64::new(0),
            acks_total: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            latency: Mutex::new(
                Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("constant bounds"),
            ),
            errors: Mutex::default(),
            transport: Mutex::default(),
            per_url: (0..urls).map(|_| UrlStats::default()).collect(),
            games_started: AtomicU64::new(0),
            games_cross: AtomicU64::new(0),
            settled: AtomicUsize::new(0),
            to_settle,
            all_settled: Notify::new(),
        }
    }

    pub fn set_measuring(&self, on: bool) {
        self.measuring.store(on, Relaxed);
    }

    pub fn measuring(&self) -> bool {
        self.measuring.load(Relaxed)
    }

    pub fn settle(&self) {
        if self.settled.fetch_add(1, Relaxed) + 1 == self.to_settle {
            self.all_settled.notify_one();
        }
    }

    pub fn settled(&self) -> usize {
        self.settled.load(Relaxed)
    }

    pub fn ack(&self) {
        self.acks_total.fetch_add(1, Relaxed);
        if self.measuring() {
            self.moves.fetch_add(1, Relaxed);
        }
    }

    pub fn round_finished(&self) {
        if self.measuring() {
            self.rounds.fetch_add(1, Relaxed);
        }
    }

    pub fn latency(&self, d: Duration) {
        if self.measuring() {
            let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            lock(&self.latency).saturating_record(us.max(1));
        }
    }

    pub fn error_code(&self, code: ErrorCode) {
        let name = match serde_json::to_value(code) {
            Ok(serde_json::Value::String(s)) => s,
            _ => format!("{code:?}"),
        };
        *lock(&self.errors).entry(name).or_default() += 1;
    }

    pub fn transport(&self, kind: &str) {
        let mut map = lock(&self.transport);
        match map.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                map.insert(kind.to_string(), 1);
            }
        }
    }

    pub fn moves(&self) -> u64 {
        self.moves.load(Relaxed)
    }

    pub fn rounds(&self) -> u64 {
        self.rounds.load(Relaxed)
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        lock(&self.errors).clone()
    }

    pub fn transport_errors(&self) -> BTreeMap<String, u64> {
        lock(&self.transport).clone()
    }

    pub fn latency_summary(&self) -> Latency {
        let h = lock(&self.latency);
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            samples: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// Resident memory of a process in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The soft limit on open files of this process: one socket per connection counts against it.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files(&limits)
}

fn parse_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let status = "Name:\ttictactoe\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 20000                files     \n";
        assert_eq!(parse_open_files(limits), Some(1024));
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }

    #[test]
    fn only_the_measurement_window_counts_moves_and_latency() {
        let s = Stats::new(1, 1);
        s.ack();
        s.latency(Duration::from_millis(5));
        assert_eq!((s.moves(), s.latency_summary().samples), (0, 0));
        s.set_measuring(true);
        for ms in [1, 2, 3, 4, 100] {
            s.ack();
            s.latency(Duration::from_millis(ms));
        }
        s.set_measuring(false);
        s.ack();
        let l = s.latency_summary();
        assert_eq!((s.moves(), l.samples), (5, 5));
        assert!(l.p50_ms <= l.p90_ms && l.p90_ms <= l.p99_ms && l.p99_ms <= l.max_ms);
        assert!((l.max_ms - 100.0).abs() < 0.1, "{l:?}");
        assert_eq!(s.acks_total.load(Relaxed), 7);
    }

    #[test]
    fn errors_are_counted_by_their_wire_code() {
        let s = Stats::new(1, 1);
        s.error_code(ErrorCode::NotYourTurn);
        s.error_code(ErrorCode::NotYourTurn);
        s.transport("closed_4001");
        assert_eq!(s.errors(), BTreeMap::from([("not_your_turn".into(), 2)]));
        assert_eq!(
            s.transport_errors(),
            BTreeMap::from([("closed_4001".into(), 1)])
        );
    }
}
