//! What the measured moves cost: CPU time of each instance, of Redis and of this load
//! generator, the commands Redis ran and the round trips the instances made to it. Each is
//! read once when the measurement window opens and once when it closes; the report divides
//! the differences by the moves accepted in between.

use super::cpu::{ClockTicks, Proc};
use super::kernel::{Counters, PerfCount};
use super::metrics::{self, InstanceCounters};
use super::redis_info::{self, CommandStats, RedisProbe};
use super::report::{CommandReport, Cpu, InstanceReport, Kernel, RedisReport, Report};
use futures_util::future::join_all;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One Redis server: its URL for `INFO`, its pid for CPU time (either may be missing).
struct RedisTarget {
    url: Option<String>,
    probe: Option<RedisProbe>,
    pid: Option<u32>,
}

/// Where to read each figure, found once before the run.
pub struct Probes {
    clock: ClockTicks,
    /// Per URL: the instance's pid (`--server-pids`).
    instance_pids: Vec<Option<u32>>,
    /// Per URL: its metrics page.
    metrics_urls: Vec<Option<String>>,
    redis: Vec<RedisTarget>,
    counting: Counting,
}

/// Every counter at one instant.
pub struct Snapshot {
    loadgen_ticks: Option<u64>,
    instance_ticks: Vec<Option<u64>>,
    redis_ticks: Vec<Option<u64>>,
    commands: Vec<Option<CommandStats>>,
    counters: Vec<Option<InstanceCounters>>,
    /// System calls and context switches: this process, each instance, each Redis.
    loadgen_kernel: Option<Counters>,
    instance_kernel: Vec<Option<Counters>>,
    redis_kernel: Vec<Option<Counters>>,
    /// At the window's end: every system call over the window, by perf, per process.
    loadgen_syscalls: Option<u64>,
    instance_syscalls: Vec<Option<u64>>,
    redis_syscalls: Vec<Option<u64>>,
}

/// perf counting every process's system calls while the window is open.
#[derive(Default)]
struct Counting {
    loadgen: Option<PerfCount>,
    instances: Vec<Option<PerfCount>>,
    redis: Vec<Option<PerfCount>>,
}

/// What the flags say about the processes to watch.
pub struct Targets<'a> {
    pub urls: &'a [String],
    pub server_pids: &'a [u32],
    pub metrics_urls: &'a [String],
    pub redis_urls: &'a [String],
    pub redis_pids: &'a [u32],
}

impl Probes {
    /// Connects to each Redis and finds the pids not given. What cannot be found is warned
    /// about and left out of the report, never fatal: a run without its cost figures is still
    /// a run.
    pub async fn discover(t: Targets<'_>) -> Probes {
        let clock = ClockTicks::detect();
        let instance_pids = (0..t.urls.len())
            .map(|i| t.server_pids.get(i).copied())
            .collect();
        let metrics_urls = (0..t.urls.len())
            .map(|i| match t.metrics_urls.get(i) {
                Some(m) => Some(m.clone()),
                None => {
                    let derived = metrics::metrics_url_for(&t.urls[i]);
                    if derived.is_none() {
                        eprintln!(
                            "warning: no metrics URL for {}: give --metrics-urls",
                            t.urls[i]
                        );
                    }
                    derived
                }
            })
            .collect();
        let count = t.redis_urls.len().max(t.redis_pids.len());
        let mut redis = Vec::with_capacity(count);
        for i in 0..count {
            let url = t.redis_urls.get(i).cloned();
            let mut probe = None;
            if let Some(u) = &url {
                match RedisProbe::connect(u).await {
                    Ok(p) => probe = Some(p),
                    Err(e) => eprintln!("warning: Redis {u}: {e}; no commands per move from it"),
                }
            }
            let mut pid = t.redis_pids.get(i).copied();
            if pid.is_none()
                && let Some(p) = probe.as_mut()
            {
                pid = local_redis_pid(p).await;
            }
            redis.push(RedisTarget { url, probe, pid });
        }
        Probes {
            clock,
            instance_pids,
            metrics_urls,
            redis,
            counting: Counting::default(),
        }
    }

    /// Reads every counter as the window opens: the network reads (metrics pages, `INFO`,
    /// together) first, the `/proc` reads, which take microseconds, last, right at the edge.
    pub async fn at_window_start(&mut self) -> Snapshot {
        let (counters, commands) = self.network().await;
        let perf = |pid: Option<u32>| pid.and_then(PerfCount::start);
        self.counting = Counting {
            loadgen: perf(Some(std::process::id())),
            instances: self.instance_pids.iter().map(|p| perf(*p)).collect(),
            redis: self.redis.iter().map(|r| perf(r.pid)).collect(),
        };
        Snapshot {
            counters,
            commands,
            ..self.cpu()
        }
    }

    /// The same as the window closes, in the opposite order.
    pub async fn at_window_end(&mut self) -> Snapshot {
        let cpu = self.cpu();
        let counting = std::mem::take(&mut self.counting);
        let stop = |p: Option<PerfCount>| p.and_then(PerfCount::stop);
        let (counters, commands) = self.network().await;
        Snapshot {
            counters,
            commands,
            loadgen_syscalls: stop(counting.loadgen),
            instance_syscalls: counting.instances.into_iter().map(stop).collect(),
            redis_syscalls: counting.redis.into_iter().map(stop).collect(),
            ..cpu
        }
    }

    async fn network(&mut self) -> (Vec<Option<InstanceCounters>>, Vec<Option<CommandStats>>) {
        let scrapes = self.metrics_urls.iter().map(|u| async move {
            let url = u.as_ref()?;
            match metrics::fetch(url).await {
                Ok(page) => Some(InstanceCounters::from_page(&page)),
                Err(e) => {
                    eprintln!("warning: metrics {e}");
                    None
                }
            }
        });
        let infos = self.redis.iter_mut().map(|r| async move {
            match r.probe.as_mut() {
                Some(p) => p.commandstats().await,
                None => None,
            }
        });
        tokio::join!(join_all(scrapes), join_all(infos))
    }

    fn cpu(&self) -> Snapshot {
        let ticks = |pid: &Option<u32>| pid.and_then(|p| Proc::Pid(p).cpu_ticks());
        let kernel = |pid: &Option<u32>| pid.and_then(|p| Counters::read(Some(p)));
        Snapshot {
            loadgen_ticks: Proc::Myself.cpu_ticks(),
            instance_ticks: self.instance_pids.iter().map(ticks).collect(),
            redis_ticks: self.redis.iter().map(|r| ticks(&r.pid)).collect(),
            commands: Vec::new(),
            counters: Vec::new(),
            loadgen_kernel: Counters::read(None),
            instance_kernel: self.instance_pids.iter().map(kernel).collect(),
            redis_kernel: self.redis.iter().map(|r| kernel(&r.pid)).collect(),
            loadgen_syscalls: None,
            instance_syscalls: Vec::new(),
            redis_syscalls: Vec::new(),
        }
    }

    /// Fills the report's cost figures from the snapshots around a window of `window`, in
    /// which `report.moves` moves were accepted.
    pub fn fill(&self, report: &mut Report, before: &Snapshot, after: &Snapshot, window: Duration) {
        let moves = report.moves;
        let cpu = |b: Option<u64>, a: Option<u64>| -> Option<Cpu> {
            let ticks = a?.checked_sub(b?)?;
            Some(Cpu::new(self.clock.to_duration(ticks), window, moves))
        };
        let at = |v: &Vec<Option<u64>>, i: usize| v.get(i).copied().flatten();
        let kat = |v: &Vec<Option<Counters>>, i: usize| v.get(i).copied().flatten();
        let kernel = |b: Option<Counters>, a: Option<Counters>, syscalls: Option<u64>| {
            per_move_kernel(b?.since(&a?), syscalls, moves)
        };

        report.loadgen_cpu = cpu(before.loadgen_ticks, after.loadgen_ticks).map(|mut c| {
            c.kernel = kernel(
                before.loadgen_kernel,
                after.loadgen_kernel,
                after.loadgen_syscalls,
            );
            c
        });
        let mut instances_kernel: Option<Kernel> = None;

        let mut counted_pids = BTreeSet::new();
        let mut instances_secs = None::<f64>;
        let mut round_trips = 0.0;
        let mut accepted = 0.0;
        let mut by_op: BTreeMap<String, f64> = BTreeMap::new();
        for (i, inst) in report.instances.iter_mut().enumerate() {
            inst.metrics_url = self.metrics_urls.get(i).cloned().flatten();
            inst.cpu =
                cpu(at(&before.instance_ticks, i), at(&after.instance_ticks, i)).map(|mut c| {
                    c.kernel = kernel(
                        kat(&before.instance_kernel, i),
                        kat(&after.instance_kernel, i),
                        at(&after.instance_syscalls, i),
                    );
                    c
                });
            // One process behind two URLs (instances in one test process) counts once.
            if let (Some(c), Some(pid)) = (&inst.cpu, inst.pid)
                && counted_pids.insert(pid)
            {
                *instances_secs.get_or_insert(0.0) += c.secs;
                if let Some(k) = &c.kernel {
                    match instances_kernel.as_mut() {
                        Some(sum) => sum.add(k),
                        None => instances_kernel = Some(k.clone()),
                    }
                }
            }
            let delta = match (before.counters.get(i), after.counters.get(i)) {
                (Some(Some(b)), Some(Some(a))) => a.delta(b),
                _ => continue,
            };
            fill_round_trips(inst, &delta);
            round_trips += delta.total_round_trips();
            accepted += delta.accepted_moves;
            for (op, n) in &delta.round_trips {
                *by_op.entry(op.clone()).or_default() += n;
            }
        }
        report.instances_cpu_us_per_move = instances_secs.and_then(|s| per_move_us(s, moves));
        report.instances_kernel = instances_kernel;
        let mut redis_kernel: Option<Kernel> = None;
        if accepted > 0.0 {
            report.redis_round_trips_per_move = Some(round_trips / accepted);
            report.redis_round_trips_by_op = by_op
                .into_iter()
                .map(|(op, n)| (op, n / accepted))
                .collect();
        }

        let mut redis_secs = None::<f64>;
        let mut all_commands: BTreeMap<String, redis_info::CommandCount> = BTreeMap::new();
        let mut any_commands = false;
        report.redis = self
            .redis
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let c = cpu(at(&before.redis_ticks, i), at(&after.redis_ticks, i)).map(|mut c| {
                    c.kernel = kernel(
                        kat(&before.redis_kernel, i),
                        kat(&after.redis_kernel, i),
                        at(&after.redis_syscalls, i),
                    );
                    c
                });
                if let Some(c) = &c {
                    *redis_secs.get_or_insert(0.0) += c.secs;
                    if let Some(k) = &c.kernel {
                        match redis_kernel.as_mut() {
                            Some(sum) => sum.add(k),
                            None => redis_kernel = Some(k.clone()),
                        }
                    }
                }
                let commands = match (before.commands.get(i), after.commands.get(i)) {
                    (Some(Some(b)), Some(Some(a))) => {
                        any_commands = true;
                        let d = redis_info::without_own_info(redis_info::delta(b, a));
                        for (name, count) in &d {
                            let sum = all_commands.entry(name.clone()).or_default();
                            sum.calls += count.calls;
                            sum.usec += count.usec;
                        }
                        Some(d.values().map(|c| c.calls).sum())
                    }
                    _ => None,
                };
                RedisReport {
                    url: r.url.clone(),
                    pid: r.pid,
                    cpu: c,
                    commands,
                }
            })
            .collect();
        report.redis_cpu_us_per_move = redis_secs.and_then(|s| per_move_us(s, moves));
        report.redis_kernel = redis_kernel;
        if any_commands {
            let total: u64 = all_commands.values().map(|c| c.calls).sum();
            report.redis_commands_per_move = (moves > 0).then(|| total as f64 / moves as f64);
            let mut list: Vec<CommandReport> = all_commands
                .into_iter()
                .map(|(name, c)| CommandReport {
                    name,
                    calls: c.calls,
                    per_move: (moves > 0).then(|| c.calls as f64 / moves as f64),
                    usec_per_call: c.usec as f64 / c.calls.max(1) as f64,
                })
                .collect();
            list.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.name.cmp(&b.name)));
            report.redis_commands = list;
        }
    }
}

fn fill_round_trips(inst: &mut InstanceReport, delta: &InstanceCounters) {
    let trips = delta.total_round_trips();
    inst.accepted_moves = Some(delta.accepted_moves as u64);
    inst.redis_round_trips = Some(trips as u64);
    inst.round_trips_per_move = (delta.accepted_moves > 0.0).then(|| trips / delta.accepted_moves);
}

/// A window's kernel counts per move (none without moves).
fn per_move_kernel(d: Counters, syscalls: Option<u64>, moves: u64) -> Option<Kernel> {
    let per = |n: u64| n as f64 / moves as f64;
    (moves > 0).then(|| Kernel {
        syscalls_per_move: syscalls.map(per),
        rw_calls_per_move: d.rw_calls.map(per),
        voluntary_per_move: per(d.voluntary),
        involuntary_per_move: per(d.involuntary),
    })
}

fn per_move_us(secs: f64, moves: u64) -> Option<f64> {
    (moves > 0).then(|| secs * 1e6 / moves as f64)
}

/// Redis's own pid, if it is a process on this machine: a Redis elsewhere (another host, a
/// container) reports a pid that means nothing here, or something else entirely.
async fn local_redis_pid(probe: &mut RedisProbe) -> Option<u32> {
    let Some(pid) = probe.process_id().await else {
        eprintln!("warning: Redis {}: no process_id in INFO server", probe.url);
        return None;
    };
    match Proc::Pid(pid).name() {
        Some(name) if name.starts_with("redis") => Some(pid),
        other => {
            eprintln!(
                "warning: Redis {} says it is pid {pid}, but here that is {}: no Redis CPU \
                 (give --redis-pids)",
                probe.url,
                other.map_or_else(|| "no process".to_string(), |n| format!("{n:?}"))
            );
            None
        }
    }
}
