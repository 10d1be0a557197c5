//! What a process asked of the kernel over the measurement window: system calls and context
//! switches, which, unlike CPU time, barely move with the machine's speed.
//!
//! Two sources. `/proc/<pid>/io` (`syscr`, `syscw`: the read- and write-like calls only) and
//! every thread's `voluntary_ctxt_switches` / `nonvoluntary_ctxt_switches` in
//! `/proc/<pid>/task/*/status` are always there for a process of ours. Every system call is
//! counted only by `perf stat -e raw_syscalls:sys_enter` (Debian's `linux-perf`, run as root),
//! started on each process when the window opens and stopped when it closes; without it
//! the report says so and gives the read/write calls alone.

use std::io::Read;
use std::process::{Child, Command, Stdio};

/// Counters of one process at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// `syscr + syscw` of `/proc/<pid>/io` (none if it cannot be read).
    pub rw_calls: Option<u64>,
    pub voluntary: u64,
    pub involuntary: u64,
}

impl Counters {
    /// The counters of `pid` (this process: `None`) now; `None` if it is gone.
    pub fn read(pid: Option<u32>) -> Option<Counters> {
        let base = match pid {
            Some(p) => format!("/proc/{p}"),
            None => "/proc/self".into(),
        };
        let mut counters = Counters {
            rw_calls: std::fs::read_to_string(format!("{base}/io"))
                .ok()
                .and_then(|io| parse_io(&io)),
            ..Counters::default()
        };
        let mut threads = 0;
        for task in std::fs::read_dir(format!("{base}/task")).ok()?.flatten() {
            let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
                // A thread that ended between the listing and the read.
                continue;
            };
            if let Some((v, n)) = parse_switches(&status) {
                counters.voluntary += v;
                counters.involuntary += n;
                threads += 1;
            }
        }
        (threads > 0).then_some(counters)
    }

    /// What happened between `self` and the later `after`. Switches of threads that ended
    /// in between are lost with them, so a difference is never negative.
    pub fn since(&self, after: &Counters) -> Counters {
        Counters {
            rw_calls: after
                .rw_calls
                .zip(self.rw_calls)
                .map(|(a, b)| a.saturating_sub(b)),
            voluntary: after.voluntary.saturating_sub(self.voluntary),
            involuntary: after.involuntary.saturating_sub(self.involuntary),
        }
    }
}

/// `syscr + syscw` from the text of `/proc/<pid>/io`.
fn parse_io(text: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    };
    Some(field("syscr:")? + field("syscw:")?)
}

/// (voluntary, involuntary) context switches from the text of a thread's `status`.
fn parse_switches(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    };
    Some((
        field("voluntary_ctxt_switches:")?,
        field("nonvoluntary_ctxt_switches:")?,
    ))
}

/// `perf stat` counting every system call of one process, from start to [`PerfCount::stop`].
pub struct PerfCount {
    child: Child,
}

impl PerfCount {
    /// Starts counting for `pid`; `None` when perf is missing or refuses (not root, no
    /// tracepoints): the caller then reports the read/write calls only.
    pub fn start(pid: u32) -> Option<PerfCount> {
        let child = Command::new("perf")
            .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p"])
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        Some(PerfCount { child })
    }

    /// Stops counting (SIGINT, as perf expects) and returns the count.
    pub fn stop(mut self) -> Option<u64> {
        let stopped = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let mut err = String::new();
        self.child.stderr.take()?.read_to_string(&mut err).ok()?;
        let _ = self.child.wait();
        parse_perf(&err)
    }
}

impl Drop for PerfCount {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The count of `perf stat -x,` output (`count,unit,event,...`); `None` if perf could not
/// count (`<not supported>`, `<not counted>`) or printed an error instead.
fn parse_perf(text: &str) -> Option<u64> {
    text.lines()
        .filter(|l| l.contains("raw_syscalls:sys_enter"))
        .find_map(|l| l.split(',').next()?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_io_gives_the_read_and_write_calls() {
        let io = "rchar: 1\nwchar: 2\nsyscr: 300\nsyscw: 45\nread_bytes: 0\n";
        assert_eq!(parse_io(io), Some(345));
        assert_eq!(parse_io("rchar: 1\n"), None);
    }

    #[test]
    fn a_thread_status_gives_both_kinds_of_switches() {
        let status = "Name:\ttictactoe\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t120\n\
                      nonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(parse_switches(status), Some((120, 7)));
        assert_eq!(parse_switches("Name:\tx\n"), None);
    }

    #[test]
    fn perf_csv_gives_the_count_or_nothing() {
        assert_eq!(
            parse_perf("123456,,raw_syscalls:sys_enter,10000000,100.00,,\n"),
            Some(123_456)
        );
        assert_eq!(
            parse_perf("<not supported>,,raw_syscalls:sys_enter,0,100.00,,\n"),
            None
        );
        assert_eq!(parse_perf("Error: No permission\n"), None);
    }

    #[test]
    fn this_process_can_count_itself_and_differences_never_go_negative() {
        let before = Counters::read(None).expect("own counters");
        let _ = std::fs::read_to_string("/proc/self/status");
        let after = Counters::read(Some(std::process::id())).expect("by pid");
        let d = before.since(&after);
        assert!(d.rw_calls.is_none_or(|n| n >= 1), "{d:?}");
        let later = Counters::default().since(&Counters::default());
        assert_eq!(later.voluntary, 0);
        assert_eq!(Counters::read(Some(u32::MAX)), None);
    }
}
