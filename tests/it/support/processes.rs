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

/// The environment a process needs to behave like [`test_config`](super::instances::test_config).
pub fn config_env(c: &Config) -> Vec<(String, String)> {
    let mut env = vec![
        ("KEY_PREFIX", c.key_prefix.clone()),
        ("WEB_DIR", c.web_dir.display().to_string()),
        ("MOVE_RATE", c.move_rate.to_string()),
        ("MOVE_BURST", c.move_burst.to_string()),
        ("CHAT_RATE", c.chat_rate.to_string()),
        ("CHAT_BURST", c.chat_burst.to_string()),
        ("MSG_RATE", c.msg_rate.to_string()),
        ("MSG_BURST", c.msg_burst.to_string()),
        ("IP_CONN_RATE", c.ip_conn_rate.to_string()),
        ("IP_CONN_BURST", c.ip_conn_burst.to_string()),
        ("IP_SESSION_RATE", c.ip_session_rate.to_string()),
        ("IP_SESSION_BURST", c.ip_session_burst.to_string()),
        ("IP_PENDING_MAX", c.ip_pending_max.to_string()),
        ("IP_WS_MAX", c.ip_ws_max.to_string()),
        ("MAX_CONNECTIONS", c.max_connections.to_string()),
        (
            "HEADER_READ_TIMEOUT_MS",
            c.header_read_timeout.as_millis().to_string(),
        ),
        ("CREATE_RATE", c.create_rate.to_string()),
        ("CREATE_BURST", c.create_burst.to_string()),
        ("IP_CREATE_RATE", c.ip_create_rate.to_string()),
        ("IP_CREATE_BURST", c.ip_create_burst.to_string()),
        ("MAX_WAITING_GAMES", c.max_waiting_games.to_string()),
        ("LOBBY_PER_PLAYER", c.lobby_per_player.to_string()),
        ("LOBBY_PER_ADDRESS", c.lobby_per_address.to_string()),
        ("SPECTATE_RATE", c.spectate_rate.to_string()),
        ("SPECTATE_BURST", c.spectate_burst.to_string()),
        ("IP_SPECTATE_RATE", c.ip_spectate_rate.to_string()),
        ("IP_SPECTATE_BURST", c.ip_spectate_burst.to_string()),
        (
            "PRESENCE_INTERVAL_MS",
            c.presence_interval.as_millis().to_string(),
        ),
        ("MAX_GAMES_PER_CONN", c.max_games_per_conn.to_string()),
        ("MAX_RESUME", c.max_resume.to_string()),
        ("REDIS_TIMEOUT_MS", c.redis_timeout.as_millis().to_string()),
        ("REDIS_LOST_MS", c.redis_lost.as_millis().to_string()),
        ("LEASE_TTL_MS", c.lease_ttl.as_millis().to_string()),
        (
            "SWEEP_INTERVAL_MS",
            c.sweep_interval.as_millis().to_string(),
        ),
        (
            "SHUTDOWN_GRACE_MS",
            c.shutdown_grace.as_millis().to_string(),
        ),
        ("FORFEIT_GRACE_MS", c.forfeit_grace.as_millis().to_string()),
        ("MATCH_CONFIRM_MS", c.match_confirm.as_millis().to_string()),
        ("TRUSTED_PROXIES", c.trusted_proxies.join(",")),
    ];
    if let Some(url) = &c.redis_url {
        env.push(("REDIS_URL", url.clone()));
    }
    if let Some(addr) = c.metrics_addr {
        env.push(("METRICS_ADDR", addr.to_string()));
    }
    if !c.redis_cluster_urls.is_empty() {
        env.push(("REDIS_CLUSTER_URLS", c.redis_cluster_urls.join(",")));
    }
    if !c.redis_sentinels.is_empty() {
        env.push(("REDIS_SENTINELS", c.redis_sentinels.join(",")));
    }
    if let Some(master) = &c.redis_sentinel_master {
        env.push(("REDIS_SENTINEL_MASTER", master.clone()));
    }
    env.push(("REDIS_WAIT_REPLICAS", c.redis_wait_replicas.to_string()));
    env.push((
        "REDIS_WAIT_TIMEOUT_MS",
        c.redis_wait_timeout.as_millis().to_string(),
    ));
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
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
        let child = Command::new(env!("CARGO_BIN_EXE_tictactoe"))
            .envs(config_env(config))
            .env("LISTEN_ADDR", addr.to_string())
            .env("INSTANCE_ID", instance)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
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

    /// SIGKILL: the process dies without any cleanup.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM: a graceful shutdown starts. Nothing once the process is gone: `kill 0` would
    /// signal the whole process group, this test binary included.
    pub fn sigterm(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
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
