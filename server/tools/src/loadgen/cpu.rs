//! CPU time of a process, from `/proc/<pid>/stat`: what a server, Redis or the load
//! generator itself spent over the measurement window, to divide by the moves it carried.

use std::time::Duration;

/// Linux reports `utime`/`stime` in clock ticks (`USER_HZ`), not in the kernel's own tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockTicks(u64);

impl ClockTicks {
    /// The rate from `getconf CLK_TCK` (read once: `sysconf` without a `libc` dependency).
    /// If that fails, 100: `USER_HZ` is part of the kernel's ABI and 100 on every
    /// architecture Linux runs this on, but the warning says the figures rest on it.
    pub fn detect() -> ClockTicks {
        let out = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .filter(|o| o.status.success());
        match out.and_then(|o| parse_clk_tck(&String::from_utf8_lossy(&o.stdout))) {
            Some(t) => t,
            None => {
                eprintln!(
                    "warning: `getconf CLK_TCK` failed; assuming 100 clock ticks per second \
                     for CPU times"
                );
                ClockTicks(100)
            }
        }
    }

    pub fn to_duration(self, ticks: u64) -> Duration {
        Duration::from_secs_f64(ticks as f64 / self.0 as f64)
    }
}

fn parse_clk_tck(text: &str) -> Option<ClockTicks> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|t| (1..=1_000_000).contains(t))
        .map(ClockTicks)
}

/// Where to read a process's CPU time: `/proc/self/stat` or `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proc {
    Myself,
    Pid(u32),
}

impl Proc {
    fn stat_path(self) -> String {
        match self {
            Proc::Myself => "/proc/self/stat".into(),
            Proc::Pid(pid) => format!("/proc/{pid}/stat"),
        }
    }

    /// utime + stime of every thread of the process so far, in clock ticks; `None` if the
    /// process is gone (or not visible from here).
    pub fn cpu_ticks(self) -> Option<u64> {
        let stat = std::fs::read_to_string(self.stat_path()).ok()?;
        parse_stat(&stat).map(|s| s.utime + s.stime)
    }

    /// The process's command name (`comm`), to check that a pid is what we think it is.
    pub fn name(self) -> Option<String> {
        let stat = std::fs::read_to_string(self.stat_path()).ok()?;
        parse_stat(&stat).map(|s| s.comm.to_string())
    }
}

/// The fields of `/proc/<pid>/stat` this tool reads.
#[derive(Debug, PartialEq, Eq)]
pub struct Stat<'a> {
    pub comm: &'a str,
    pub utime: u64,
    pub stime: u64,
}

/// Parses `pid (comm) state ppid ...`. The command name may hold spaces and parentheses of
/// its own, so it ends at the *last* `)`; `utime` and `stime` are fields 14 and 15 of the
/// line, the 12th and 13th after the name.
pub fn parse_stat(line: &str) -> Option<Stat<'_>> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line.get(open + 1..close)?;
    let mut rest = line.get(close + 1..)?.split_ascii_whitespace().skip(11);
    let utime = rest.next()?.parse().ok()?;
    let stime = rest.next()?.parse().ok()?;
    Some(Stat { comm, utime, stime })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_whatever_the_command_name() {
        let plain = "4242 (redis-server) S 1 4242 4242 0 -1 4194560 1460 0 0 0 \
                     1234 567 0 0 20 0 5 0 1000 1000 100 18446744073709551615";
        assert_eq!(
            parse_stat(plain),
            Some(Stat {
                comm: "redis-server",
                utime: 1234,
                stime: 567
            })
        );
        // A name can be anything up to 15 bytes, including ") S 1 (".
        let tricky = "77 (a) b (c) S 1) R 1 77 77 0 -1 4194304 10 0 0 0 9 4 0 0 20 0 1 0 5";
        assert_eq!(
            parse_stat(tricky),
            Some(Stat {
                comm: "a) b (c) S 1",
                utime: 9,
                stime: 4
            })
        );
        assert_eq!(parse_stat("1 (x) S 1 2 3"), None);
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("1 x) S"), None);
    }

    #[test]
    fn the_clock_tick_rate_is_a_positive_number() {
        assert_eq!(parse_clk_tck("100\n"), Some(ClockTicks(100)));
        assert_eq!(parse_clk_tck("0"), None);
        assert_eq!(parse_clk_tck("undefined"), None);
        assert!(ClockTicks::detect().0 > 0);
        assert_eq!(
            ClockTicks(100).to_duration(250),
            Duration::from_millis(2500)
        );
    }

    #[test]
    fn this_process_can_read_its_own_cpu_time() {
        assert!(Proc::Myself.cpu_ticks().is_some());
        let me = Proc::Pid(std::process::id());
        assert!(me.cpu_ticks().is_some());
        assert!(me.name().is_some_and(|n| !n.is_empty()));
        assert_eq!(Proc::Pid(u32::MAX).cpu_ticks(), None);
    }
}
