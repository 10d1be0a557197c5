//! Server instances as real processes of the built binary, for what only processes can show:
//! `kill -9`, SIGTERM, the binary's own start-up and its log.

use super::client::{Endpoint, Ws};
use super::http::http_get;
use super::{POLL, TempDir, WAIT, free_port};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tictactoe::config::Config;

/// A server instance as a real process of the built binary, for what only processes can
/// show: `kill -9`, SIGTERM, and the binary's own start-up.
pub struct ServerProcess {
    pub addr: SocketAddr,
    pub instance: String,
    child: Option<Child>,
    log: PathBuf,
    _dir: TempDir,
}

/// A command that runs `program` with `c`'s settings and nothing else from the shell's
/// environment: a developer's exported IDLE_TIMEOUT_MS or GAME_TTL_SECS must not change what
/// the tests test. Only RUST_LOG passes through (it changes what is logged, nothing else).
pub fn server_command(program: &str, c: &Config) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().envs(c.to_env()).env(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    );
    cmd
}

/// Instances `names` of the built binary with `config`, each ready.
pub async fn ready_processes(config: &Config, names: &[&str]) -> Vec<ServerProcess> {
    let procs: Vec<ServerProcess> = names
        .iter()
        .map(|name| ServerProcess::start(config, name))
        .collect();
    for p in &procs {
        p.wait_ready().await;
    }
    procs
}

impl ServerProcess {
    pub fn start(config: &Config, instance: &str) -> ServerProcess {
        Self::start_with_env(config, instance, &[])
    }

    pub fn start_with_env(config: &Config, instance: &str, env: &[(&str, &str)]) -> ServerProcess {
        let dir = TempDir::new("server");
        let log = dir.0.join("server.log");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let out = std::fs::File::create(&log).expect("log file");
        let child = server_command(env!("CARGO_BIN_EXE_tictactoe"), config)
            .env("LISTEN_ADDR", addr.to_string())
            .env("INSTANCE_ID", instance)
            .envs(env.iter().copied())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("start the server binary");
        ServerProcess {
            addr,
            instance: instance.to_string(),
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub async fn connect(&self) -> Ws {
        Ws::connect(&self.ws_url()).await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until /readyz says ready; the process's log is in the panic if it never is.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok((200, _)) = http_get(self.addr, "/readyz").await {
                return;
            }
            if Instant::now() > deadline {
                panic!("{} never became ready:\n{}", self.instance, self.log());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until /readyz answers 503 with one of `reasons` in its body, and returns the
    /// body; the process's log is in the panic if it never does.
    pub async fn wait_unready_for(&self, reasons: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok((503, body)) = http_get(self.addr, "/readyz").await
                && reasons.iter().any(|r| body.contains(r))
            {
                return body;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} never said it was unready for {reasons:?}:\n{}",
                    self.instance,
                    self.log()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGKILL: the process dies without any cleanup.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM: a graceful shutdown starts.
    pub fn sigterm(&self) {
        self.signal("-TERM");
    }

    /// SIGSTOP: the process stalls (as under a scheduling hiccup or heavy swapping) with its
    /// connections open, until [`Self::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: a paused process goes on.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Signals the process by its own pid. Nothing once the process is gone: `kill 0` would
    /// signal the whole process group, this test binary included.
    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    /// Waits for the process to exit by itself; returns whether it exited successfully.
    pub async fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return status.success();
                }
            } else {
                return false;
            }
            if Instant::now() > deadline {
                panic!("{} did not exit in time:\n{}", self.instance, self.log());
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Endpoint for ServerProcess {
    fn ws_url(&self) -> String {
        ServerProcess::ws_url(self)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("TEST_LOG").is_some() {
            eprintln!("--- log of {} ---\n{}", self.instance, self.log());
        }
        self.kill9();
    }
}
