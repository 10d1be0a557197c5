//! Server instances in this process: `tictactoe::run` on a pre-bound listener, each with its
//! own shutdown token, and the settings every test instance starts from.

use super::backend::Backend;
use super::client::{Endpoint, Ws};
use super::http::http_get;
use super::redis::RedisServer;
use super::{eventually, repo_path};
use std::net::SocketAddr;
use std::sync::Once;
use std::time::Duration;
use tictactoe::config::Config;
use tokio_util::sync::CancellationToken;

/// Logs stay silent unless `TEST_LOG` is set.
fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tictactoe::telemetry::init_logs(tictactoe::config::LogFormat::Text);
        }
    });
}

/// Settings for test instances: short clocks, a random key prefix (so that whatever a test
/// writes is its own), and generous rate limits unless a test sets its own.
pub fn test_config(redis: Option<&RedisServer>) -> Config {
    Config {
        redis_url: redis.map(RedisServer::url),
        key_prefix: format!("t{}:", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        web_dir: repo_path("web"),
        move_rate: 1000.0,
        move_burst: 1000,
        chat_rate: 1000.0,
        chat_burst: 1000,
        msg_rate: 10_000.0,
        msg_burst: 10_000,
        ip_conn_rate: 10_000.0,
        ip_conn_burst: 10_000,
        ip_session_rate: 10_000.0,
        ip_session_burst: 10_000,
        ip_pending_max: 10_000,
        ip_ws_max: 10_000,
        create_rate: 10_000.0,
        create_burst: 10_000,
        ip_create_rate: 10_000.0,
        ip_create_burst: 10_000,
        spectate_rate: 10_000.0,
        spectate_burst: 10_000,
        ip_spectate_rate: 10_000.0,
        ip_spectate_burst: 10_000,
        lobby_per_address: 0,
        redis_timeout: Duration::from_millis(1000),
        redis_lost: Duration::from_millis(3000),
        lease_ttl: Duration::from_millis(1500),
        sweep_interval: Duration::from_millis(200),
        shutdown_grace: Duration::from_millis(3000),
        ..Config::default()
    }
}

/// Two instances against one fresh Redis.
pub async fn two_instances() -> (RedisServer, Instance, Instance) {
    let redis = RedisServer::start();
    let config = test_config(Some(&redis));
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config).await;
    (redis, a, b)
}

/// Two instances against `backend`.
pub async fn two_instances_on(backend: &Backend) -> (Instance, Instance) {
    let config = backend.config();
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config).await;
    (a, b)
}

/// A server instance running in this process through `tictactoe::run`.
pub struct Instance {
    pub addr: SocketAddr,
    pub config: Config,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Instance {
    /// Starts an instance and waits until it is ready.
    pub async fn start(config: Config) -> Instance {
        Instance::start_on("127.0.0.1:0".parse().unwrap(), config).await
    }

    /// Starts an instance listening on `addr` (port 0: any free one).
    pub async fn start_on(addr: SocketAddr, config: Config) -> Instance {
        init_logs();
        let listener = tictactoe::bind(addr).expect("bind");
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let cfg = config.clone();
        let task = tokio::spawn(async move {
            tictactoe::run(listener, cfg, token)
                .await
                .expect("server run");
        });
        let inst = Instance {
            addr,
            config,
            shutdown,
            task: Some(task),
        };
        inst.wait_ready().await;
        inst
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Waits until /readyz says ready (Redis answers and pub/sub works).
    pub async fn wait_ready(&self) {
        let addr = self.addr;
        eventually(&format!("instance {addr} to become ready"), || async move {
            matches!(http_get(addr, "/readyz").await, Ok((200, _))).then_some(())
        })
        .await;
    }

    pub async fn connect(&self) -> Ws {
        Ws::connect(&self.ws_url()).await
    }
}

impl Endpoint for Instance {
    fn ws_url(&self) -> String {
        Instance::ws_url(self)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
