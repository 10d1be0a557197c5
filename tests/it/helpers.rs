//! Test harness: a real `redis-server` on a free port (killed on drop), server instances
//! started through the library's `run` on pre-bound listeners (each with its own shutdown
//! token) or as real processes, and a WebSocket client that never waits without a timeout.
//!
//! Logs stay silent unless `TEST_LOG` is set.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};
use tictactoe::config::Config;
use tictactoe::protocol::ServerMsg;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tictactoe::telemetry::init_logs(tictactoe::config::LogFormat::Text);
        }
    });
}

/// A port nobody listens on right now, for a server the test starts. Taken below the
/// kernel's ephemeral range (32768 and up), where the tests' own client sockets would
/// otherwise race the server for it.
pub fn free_port() -> u16 {
    loop {
        let p = 20_000 + (uuid::Uuid::new_v4().as_u64_pair().0 % 12_000) as u16;
        if StdListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ttt-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A throwaway redis-server. Append-only persistence is on, so a restart keeps every
/// acknowledged write, as in production.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = TempDir::new("redis");
        let mut r = RedisServer {
            port: free_port(),
            child: None,
            dir,
        };
        // A server whose port was taken meanwhile exits at once: try another port.
        let mut attempts = 0;
        while !r.try_spawn() {
            attempts += 1;
            assert!(attempts < 5, "redis-server would not start");
            r.port = free_port();
        }
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn spawn(&mut self) {
        assert!(
            self.try_spawn(),
            "redis-server did not start on port {}",
            self.port
        );
    }

    /// Starts the server; false if it exited at once (its port was taken).
    fn try_spawn(&mut self) -> bool {
        let log = self.dir.0.join("redis.log");
        let child = Command::new(redis_server_bin())
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
            ])
            .arg(&self.dir.0)
            .arg("--logfile")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server could not be started: is it installed? (scripts/test.sh installs it)",
            );
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        loop {
            if redis_answers(&self.url()) {
                return true;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                self.child = None;
                return false;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("redis-server did not start on port {}:\n{log}", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server as an operator would (SIGTERM: it finishes its AOF).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("redis url")
    }

    pub fn sync_conn(&self) -> redis::Connection {
        self.client().get_connection().expect("redis connection")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether a Redis at `url` answers PING.
fn redis_answers(url: &str) -> bool {
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

pub fn redis_server_bin() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into())
}

/// Settings for test instances: short clocks, a random key prefix (so that whatever a test
/// writes is its own), and generous rate limits unless a test sets its own.
pub fn test_config(redis: Option<&RedisServer>) -> Config {
    Config {
        redis_url: redis.map(RedisServer::url),
        key_prefix: format!("t{}:", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        web_dir: crate::topology::repo_path("web"),
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
        redis_timeout: Duration::from_millis(1000),
        lease_ttl: Duration::from_millis(1500),
        sweep_interval: Duration::from_millis(200),
        shutdown_grace: Duration::from_millis(3000),
        ..Config::default()
    }
}

/// A server instance running in this process through `tictactoe::run`.
pub struct Instance {
    pub addr: SocketAddr,
    pub config: Config,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Instance {
    pub async fn start(config: Config) -> Instance {
        init_logs();
        let listener = tictactoe::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
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

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until /readyz says ready (Redis answers and pub/sub works).
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok((200, _)) = http_get(self.addr, "/readyz").await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "instance {} never became ready",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Graceful shutdown, waiting for `run` to return.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(WAIT, t)
                .await
                .expect("instance stops in time")
                .expect("instance task");
        }
    }

    /// Stops without any cleanup, as if the process died: the task is dropped mid-flight.
    pub fn kill(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    pub async fn connect(&self) -> Ws {
        Ws::connect(&self.ws_url()).await
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

/// A minimal HTTP/1.1 GET: status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, path, &[]).await
}

pub async fn http_request(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = TcpStream::connect(addr).await?;
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("http request timed out")))
}

/// A test WebSocket client speaking the protocol.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_req: u64,
    /// Messages received while waiting for something else, oldest first.
    backlog: std::collections::VecDeque<ServerMsg>,
    pub token: Option<String>,
    pub player: Option<String>,
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        let (stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("websocket connect");
        Ws {
            stream,
            next_req: 1,
            backlog: Default::default(),
            token: None,
            player: None,
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    /// The next server message (from the backlog first).
    pub async fn recv(&mut self) -> ServerMsg {
        if let Some(m) = self.backlog.pop_front() {
            return m;
        }
        self.recv_wire().await
    }

    async fn recv_wire(&mut self) -> ServerMsg {
        loop {
            let frame = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("timed out waiting for a message")
                .expect("connection closed while waiting for a message")
                .expect("websocket error");
            match frame {
                Message::Text(t) => {
                    return serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("server sent a non-protocol message {t}: {e}"));
                }
                Message::Close(c) => panic!("connection closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// Waits for the first message matching `pred`, keeping the others for later `recv`s.
    pub async fn recv_until(&mut self, mut pred: impl FnMut(&ServerMsg) -> bool) -> ServerMsg {
        if let Some(i) = self.backlog.iter().position(&mut pred) {
            return self.backlog.remove(i).expect("index");
        }
        loop {
            let m = self.recv_wire().await;
            if pred(&m) {
                return m;
            }
            self.backlog.push_back(m);
        }
    }

    /// Sends a request with a fresh `req` and returns the reply carrying it.
    pub async fn request(&mut self, mut v: Value) -> ServerMsg {
        let req = self.next_req;
        self.next_req += 1;
        v["req"] = json!(req);
        self.send(v).await;
        self.recv_until(|m| reply_req(m) == Some(req)).await
    }

    pub async fn hello(&mut self, name: &str) -> ServerMsg {
        let mut v = json!({"type": "hello", "name": name});
        if let Some(t) = &self.token {
            v["token"] = json!(t);
        }
        let reply = self.request(v).await;
        match &reply {
            ServerMsg::Welcome { token, player, .. } => {
                if let Some(t) = token {
                    self.token = Some(t.clone());
                }
                self.player = Some(player.to_string());
            }
            other => panic!("expected welcome, got {other:?}"),
        }
        reply
    }

    /// Sends `v` again (same move id and all) while the answer is `unavailable`, as a client
    /// does while Redis comes back; returns the first other answer.
    pub async fn request_until_available(&mut self, v: Value) -> ServerMsg {
        let deadline = Instant::now() + WAIT;
        loop {
            let reply = self.request(v.clone()).await;
            if !matches!(
                reply,
                ServerMsg::Error {
                    code: tictactoe::protocol::ErrorCode::Unavailable,
                    ..
                }
            ) {
                return reply;
            }
            assert!(
                Instant::now() < deadline,
                "still unavailable after {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a game and returns its id (this client sits as X).
    pub async fn create(&mut self) -> String {
        match self.request(json!({"type": "create"})).await {
            ServerMsg::Snapshot { game, .. } => game.to_string(),
            other => panic!("expected snapshot, got {other:?}"),
        }
    }

    pub async fn join(&mut self, game: &str) -> ServerMsg {
        self.request(json!({"type": "join", "game": game})).await
    }

    pub async fn play(&mut self, game: &str, cell: i64) -> ServerMsg {
        self.request(json!({"type": "move", "game": game, "cell": cell}))
            .await
    }

    /// Waits for the versioned event `version` of `game`.
    pub async fn event(&mut self, game: &str, version: u64) -> ServerMsg {
        self.recv_until(|m| {
            m.game_version()
                .is_some_and(|(g, v)| g.as_str() == game && v == version)
        })
        .await
    }

    /// Waits for the connection to be closed by the server and returns the close frame.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        loop {
            match tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("timed out waiting for close")
            {
                Some(Ok(Message::Close(c))) => return c,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }

    /// Messages that arrive within `d` (for asserting that nothing else arrives).
    pub async fn drain_for(&mut self, d: Duration) -> Vec<ServerMsg> {
        let mut out: Vec<ServerMsg> = self.backlog.drain(..).collect();
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, self.stream.next()).await
        {
            if let Message::Text(t) = frame {
                out.push(serde_json::from_str(t.as_str()).expect("protocol message"));
            }
        }
        out
    }
}

/// Says hello as "ann" on `x` and "bob" on `o`; ann creates a game and bob takes O.
pub async fn seat_pair(mut x: Ws, mut o: Ws) -> (Ws, Ws, String) {
    x.hello("ann").await;
    o.hello("bob").await;
    let game = x.create().await;
    o.join(&game).await;
    (x, o, game)
}

/// The request id a reply echoes.
pub fn reply_req(m: &ServerMsg) -> Option<u64> {
    m.reply_req()
}

/// The error code of a reply, panicking if it is not an error.
pub fn error_code(m: &ServerMsg) -> tictactoe::protocol::ErrorCode {
    match m {
        ServerMsg::Error { code, .. } => *code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// The version an ack reports.
pub fn ack_version(m: &ServerMsg) -> u64 {
    match m {
        ServerMsg::Ack { info, .. } => info.version.expect("ack with a version"),
        other => panic!("expected an ack, got {other:?}"),
    }
}

/// Polls `f` until it returns `Some`, up to [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A server instance as a real process of the built binary, for what only processes can
/// show: `kill -9`, SIGTERM, and the binary's own start-up.
pub struct ServerProcess {
    pub addr: SocketAddr,
    pub instance: String,
    child: Option<Child>,
    log: PathBuf,
    _dir: TempDir,
}

/// The environment a process needs to behave like [`test_config`].
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
        ("REDIS_TIMEOUT_MS", c.redis_timeout.as_millis().to_string()),
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
    if !c.redis_cluster_urls.is_empty() {
        env.push(("REDIS_CLUSTER_URLS", c.redis_cluster_urls.join(",")));
    }
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

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok((200, _)) = http_get(self.addr, "/readyz").await {
                return;
            }
            if Instant::now() > deadline {
                panic!("{} never became ready:\n{}", self.instance, self.log());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
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
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
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
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
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

/// Connects with extra handshake headers; `Err` carries the HTTP status of a refusal.
pub async fn try_connect(url: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().expect("request");
    for (k, v) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes())
                .expect("header name"),
            v.parse().expect("header value"),
        );
    }
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect timed out")
    {
        Ok((stream, _)) => Ok(Ws {
            stream,
            next_req: 1,
            backlog: Default::default(),
            token: None,
            player: None,
        }),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("connect failed: {e}"),
    }
}

/// A rate-limited error's `retry_after_ms`, panicking on anything else.
pub fn retry_after(m: &ServerMsg) -> u64 {
    match m {
        ServerMsg::Error {
            code: tictactoe::protocol::ErrorCode::RateLimited,
            retry_after_ms: Some(ms),
            ..
        } => *ms,
        other => panic!("expected rate_limited, got {other:?}"),
    }
}

impl Ws {
    /// `hello` with this client's token and the games (with last versions) it was in.
    pub async fn hello_resume(&mut self, name: &str, games: &[(&str, u64)]) -> ServerMsg {
        let resume: Vec<Value> = games
            .iter()
            .map(|(g, v)| json!({"game": g, "version": v}))
            .collect();
        let v = json!({"type": "hello", "name": name, "token": self.token, "resume": resume});
        let reply = self.request(v).await;
        if let ServerMsg::Welcome {
            token: Some(t),
            player,
            ..
        } = &reply
        {
            self.token = Some(t.clone());
            self.player = Some(player.to_string());
        }
        reply
    }
}

/// A local Redis Cluster of three masters (no replicas) on free ports, killed on drop.
/// `cluster-require-full-coverage no`: while one master is down, the other shards' games go on.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    /// Each node's cluster bus port (by default port + 10000, which may not exist).
    bus_ports: Vec<u16>,
    children: Vec<Option<Child>>,
    dir: TempDir,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let dir = TempDir::new("cluster");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut c = RedisCluster {
            children: ports.iter().map(|_| None).collect(),
            bus_ports: (0..3).map(|_| free_port()).collect(),
            ports,
            dir,
        };
        for i in 0..3 {
            // A node whose port was taken meanwhile exits at once: try fresh ports.
            let mut attempts = 0;
            while !c.try_spawn(i) {
                attempts += 1;
                assert!(attempts < 5, "cluster node {i} would not start");
                c.ports[i] = free_port();
                c.bus_ports[i] = free_port();
            }
        }
        let nodes: Vec<String> = c.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli (installed with redis-server) creates the cluster");
        assert!(
            out.status.success(),
            "cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        c.wait_ok();
        c
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.0.join(format!("node{i}"))
    }

    fn spawn(&mut self, i: usize) {
        assert!(
            self.try_spawn(i),
            "cluster node {} did not start",
            self.ports[i]
        );
    }

    /// Starts node `i`; false if it exited at once (its port was taken).
    fn try_spawn(&mut self, i: usize) -> bool {
        let dir = self.node_dir(i);
        std::fs::create_dir_all(&dir).expect("node dir");
        let port = self.ports[i];
        let child = Command::new(redis_server_bin())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-port", &self.bus_ports[i].to_string()])
            .args(["--cluster-node-timeout", "1000"])
            .args(["--cluster-require-full-coverage", "no"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        self.children[i] = Some(child);
        let deadline = Instant::now() + WAIT;
        let url = format!("redis://127.0.0.1:{port}/");
        loop {
            if redis_answers(&url) {
                return true;
            }
            if let Some(c) = self.children[i].as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                self.children[i] = None;
                return false;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
                panic!("cluster node {port} did not start:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every node reports the cluster as healthy.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + WAIT;
        'wait: loop {
            assert!(
                Instant::now() < deadline,
                "the cluster never became healthy"
            );
            for port in &self.ports {
                let ok = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                    .and_then(|c| c.get_connection())
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                    .is_ok_and(|info| info.contains("cluster_state:ok"));
                if !ok {
                    std::thread::sleep(Duration::from_millis(50));
                    continue 'wait;
                }
            }
            return;
        }
    }

    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect()
    }

    /// The node (index) serving the slot of `key`.
    pub fn node_of(&self, key: &str) -> usize {
        let mut c = redis::Client::open(self.urls()[0].as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut c)
            .unwrap();
        let slots: Vec<(u16, u16, (String, u16))> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query::<Vec<redis::Value>>(&mut c)
            .unwrap()
            .into_iter()
            .filter_map(|v| {
                let redis::Value::Array(parts) = v else {
                    return None;
                };
                let start: u16 = redis::from_redis_value(parts[0].clone()).ok()?;
                let end: u16 = redis::from_redis_value(parts[1].clone()).ok()?;
                let redis::Value::Array(node) = &parts[2] else {
                    return None;
                };
                let port: u16 = redis::from_redis_value(node[1].clone()).ok()?;
                Some((start, end, (String::new(), port)))
            })
            .collect();
        let port = slots
            .iter()
            .find(|(s, e, _)| (*s..=*e).contains(&slot))
            .map(|(_, _, (_, p))| *p)
            .expect("slot is served");
        self.ports.iter().position(|p| *p == port).unwrap()
    }

    pub fn conn(&self, node: usize) -> redis::Connection {
        redis::Client::open(self.urls()[node].as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Restarts one master the way an operator would (SIGTERM, then start it again with its
    /// data and cluster config); waits until the cluster is healthy again.
    pub fn restart_node(&mut self, i: usize) {
        self.stop_node(i);
        self.spawn(i);
        self.wait_ok();
    }

    pub fn stop_node(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    pub fn start_node(&mut self, i: usize) {
        self.spawn(i);
        self.wait_ok();
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().filter_map(Option::take) {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Where the tests keep their state: one Redis, or a Redis Cluster.
pub enum Backend {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl Backend {
    pub fn single() -> Backend {
        Backend::Single(RedisServer::start())
    }

    pub fn cluster() -> Backend {
        Backend::Cluster(RedisCluster::start())
    }

    /// [`test_config`] pointed at this backend.
    pub fn config(&self) -> Config {
        match self {
            Backend::Single(r) => test_config(Some(r)),
            Backend::Cluster(c) => Config {
                redis_cluster_urls: c.urls(),
                ..test_config(None)
            },
        }
    }

    /// A connection to the node holding `key` (any node for a single Redis).
    pub fn conn_for(&self, key: &str) -> redis::Connection {
        match self {
            Backend::Single(r) => r.sync_conn(),
            Backend::Cluster(c) => c.conn(c.node_of(key)),
        }
    }
}

impl RedisCluster {
    fn node_id(&self, node: usize) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.conn(node))
            .unwrap()
    }

    /// Moves the slot of `key` (and its keys) from its owner to another master, the way
    /// `redis-cli --cluster reshard` does. Returns the new owner.
    pub fn migrate_slot_of(&self, key: &str) -> usize {
        let from = self.node_of(key);
        let to = (from + 1) % self.ports.len();
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.conn(from))
            .unwrap();
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("IMPORTING")
            .arg(&from_id)
            .query(&mut self.conn(to))
            .unwrap();
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("MIGRATING")
            .arg(&to_id)
            .query(&mut self.conn(from))
            .unwrap();
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query(&mut self.conn(from))
                .unwrap();
            if keys.is_empty() {
                break;
            }
            let _: () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.ports[to])
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query(&mut self.conn(from))
                .unwrap();
        }
        for node in 0..self.ports.len() {
            let _: () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&to_id)
                .query(&mut self.conn(node))
                .unwrap();
        }
        to
    }
}
