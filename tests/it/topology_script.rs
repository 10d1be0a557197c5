//! `scripts/topology.sh` run as an operator runs it: it starts the layout asked for, prints
//! where everything is, and stops everything it started on SIGTERM. Here the Sentinel layout
//! (the same as `docker-compose.sentinel.yml`), whose primary the test kills by the pid the
//! script printed: the instances must find the promoted replica by themselves.

use crate::support::client::Ws;
use crate::support::http::http_get;
use crate::support::{PORTS_END, WAIT, repo_path};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tictactoe_protocol::{ErrorCode, ServerMsg};

/// The script's process, stopped with SIGTERM (its own clean-up) on drop.
struct Script {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Script {
    fn start(env: &[(&str, &str)]) -> Script {
        let mut child = Command::new("bash")
            .arg(repo_path("scripts/topology.sh"))
            // Only what the script needs to find its tools: a setting exported in the shell
            // that runs the tests must not reach the instances it starts.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TTT_BIN", env!("CARGO_BIN_EXE_tictactoe"))
            // Ports of its own: the suite's other servers take theirs below PORTS_END.
            .env("TTT_PORT_MIN", PORTS_END.to_string())
            .env("TTT_PORT_SPAN", (32_000 - PORTS_END).to_string())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash runs scripts/topology.sh");
        let (tx, lines) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Script {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads the script's output until a line containing `marker` (bounded).
    fn wait_for_line(&mut self, marker: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.seen.iter().any(|l| l.contains(marker)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "no line with {marker:?} within {within:?}:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The first word after `label` on the line that starts (after spaces) with it.
    fn field(&self, label: &str, word: usize) -> String {
        self.seen
            .iter()
            .find_map(|l| {
                let rest = l.trim_start().strip_prefix(label)?;
                rest.split_whitespace().nth(word).map(str::to_string)
            })
            .unwrap_or_else(|| panic!("no {label} line in:\n{}", self.seen.join("\n")))
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Says hello and creates a game through `url`, retrying while the answer is `unavailable`;
/// returns how long that took.
async fn play_through(url: &str) -> Duration {
    let started = Instant::now();
    let deadline = started + WAIT * 2;
    loop {
        let mut ws = Ws::connect(url).await;
        let hello = ws.request(json!({"type": "hello", "name": "ann"})).await;
        if matches!(hello, ServerMsg::Welcome { .. }) {
            let created = ws.request(json!({"type": "create"})).await;
            if matches!(created, ServerMsg::Snapshot { .. }) {
                return started.elapsed();
            }
            assert!(
                matches!(
                    created,
                    ServerMsg::Error {
                        code: ErrorCode::Unavailable,
                        ..
                    }
                ),
                "{created:?}"
            );
        } else {
            assert!(
                matches!(
                    hello,
                    ServerMsg::Error {
                        code: ErrorCode::Unavailable,
                        ..
                    }
                ),
                "{hello:?}"
            );
        }
        assert!(Instant::now() < deadline, "still unavailable through {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_topology_script_starts_the_sentinel_layout_which_survives_a_failover() {
    let mut script = Script::start(&[("REDIS_LAYOUT", "sentinel"), ("INSTANCES", "2")]);
    script.wait_for_line("Ctrl-C stops everything", WAIT * 4);
    let lb = script.field("open", 0);
    let lb_addr: SocketAddr = lb
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("the load balancer's address");
    let (status, body) = http_get(lb_addr, "/readyz").await.expect("readyz");
    assert_eq!(status, 200, "{body}");
    let ws_url = format!("ws://{lb_addr}/ws");
    play_through(&ws_url).await;

    // The primary, killed by the pid the script printed.
    let primary_pid: u32 = script.field("redis ", 2).parse().expect("a pid");
    assert!(primary_pid > 1, "a process of the script's, not a group");
    let status = Command::new("kill")
        .args(["-KILL", &primary_pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -9 {primary_pid}");
    let recovered = play_through(&ws_url).await;
    eprintln!(
        "topology.sh sentinel layout: playing again {recovered:?} after kill -9 of the primary"
    );
}
