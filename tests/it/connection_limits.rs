//! Connection exhaustion (issue 13, point 1): sockets that never send a request, or drip one
//! byte at a time, from one address must neither lock out a client at another address nor
//! outlive the header deadline; a full instance answers 503 instead of failing `accept`.
//!
//! Two addresses on one machine: the attacker connects from 127.0.0.2, the real client
//! from 127.0.0.1 (the whole of 127.0.0.0/8 is loopback on Linux).

use crate::hardening::raw_request;
use crate::support::client::{Ws, try_connect};
use crate::support::http::http_get;
use crate::support::instances::{Instance, test_config};
use crate::support::processes::server_command;
use crate::support::redis::RedisServer;
use crate::support::{TempDir, WAIT, eventually, free_port};
use futures_util::future::join_all;
use serde_json::json;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use tictactoe_protocol::ServerMsg;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const ATTACKER: &str = "127.0.0.2";

/// A TCP connection to `server` from the local address `from`.
async fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    tokio::time::timeout(WAIT, socket.connect(server))
        .await
        .expect("connect timed out")
        .expect("connect")
}

/// Waits until the server closes `stream` (end of stream or reset), reading away whatever it
/// answered; `None` if it is still open after `within`. While waiting, sends one byte of a
/// request every `drip` (if given), as a slow-loris client does.
async fn closed_within(
    mut stream: TcpStream,
    within: Duration,
    drip: Option<Duration>,
) -> Option<Instant> {
    let request = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    let mut next = 0;
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let tick = tokio::time::sleep(drip.unwrap_or(within));
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return None,
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => return Some(Instant::now()),
                Ok(_) => {}
            },
            _ = tick, if drip.is_some() => {
                let byte = request[next % request.len()];
                next += 1;
                if stream.write_all(&[byte]).await.is_err() {
                    return Some(Instant::now());
                }
            }
        }
    }
}

/// A client at 127.0.0.1 loads the page's health check and plays a WebSocket round trip.
async fn real_client_gets_through(addr: SocketAddr) {
    let (status, body) = http_get(addr, "/healthz").await.expect("healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    let mut ws = Ws::connect(&format!("ws://{addr}/ws")).await;
    ws.hello("real").await;
    assert!(matches!(
        ws.request(json!({"type":"ping"})).await,
        ServerMsg::Pong { .. }
    ));
}

#[tokio::test]
async fn silent_and_dripping_sockets_cannot_lock_out_another_address_and_end_at_the_header_deadline()
 {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.header_read_timeout = Duration::from_millis(1000);
    let deadline = config.header_read_timeout;
    let a = Instance::start(config).await;
    let opened = Instant::now();
    let mut silent = Vec::new();
    let mut dripping = Vec::new();
    for _ in 0..150 {
        silent.push(connect_from(ATTACKER, a.addr).await);
        dripping.push(connect_from(ATTACKER, a.addr).await);
    }
    let watch = |s, drip| closed_within(s, WAIT, drip);
    let silent = tokio::spawn(join_all(silent.into_iter().map(|s| watch(s, None))));
    let dripping = tokio::spawn(join_all(
        dripping
            .into_iter()
            .map(|s| watch(s, Some(Duration::from_millis(100)))),
    ));

    real_client_gets_through(a.addr).await;

    // Dripping bytes does not extend the deadline: it covers the whole request head.
    for (kind, ends) in [("silent", silent.await), ("dripping", dripping.await)] {
        let ends = ends.unwrap();
        let open = ends.iter().filter(|e| e.is_none()).count();
        assert_eq!(open, 0, "{open} {kind} sockets still open after {WAIT:?}");
        let last = ends.iter().flatten().max().unwrap().duration_since(opened);
        assert!(
            last < deadline + Duration::from_secs(3),
            "{kind} sockets lasted {last:?} with a {deadline:?} deadline"
        );
    }
    // And the instance serves on.
    real_client_gets_through(a.addr).await;
}

#[tokio::test]
async fn a_full_instance_answers_503_and_serves_again_when_connections_close() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.max_connections = 30;
    let a = Instance::start(config).await;
    let mut held = Vec::new();
    for _ in 0..30 {
        held.push(connect_from(ATTACKER, a.addr).await);
    }
    // Connections are accepted in arrival order: these come after the thirty. A full
    // instance is alive (liveness must not restart it) but not ready, and refuses players.
    let (status, _, body) = raw_request(a.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("a response, not a hang or a reset");
    assert_eq!(
        (status, body.trim()),
        (200, "ok"),
        "liveness of a full instance"
    );
    let (status, _, body) = raw_request(a.addr, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("a response, not a hang or a reset");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"full\":true"), "{body}");
    let (status, _, body) = raw_request(a.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("a response, not a hang or a reset");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("full"), "{body}");
    assert_eq!(try_connect(&a.ws_url(), &[]).await.err(), Some(503));
    // The health lane has a share per address: an attacker holding it open cannot keep a
    // prober at another address from its answer.
    let mut lane = Vec::new();
    for _ in 0..4 {
        lane.push(connect_from(ATTACKER, a.addr).await);
    }
    let (status, _, _) = raw_request(a.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("a response");
    assert_eq!(status, 200);
    drop(lane);
    drop(held);
    eventually("a free slot", || async {
        matches!(http_get(a.addr, "/healthz").await, Ok((200, _))).then_some(())
    })
    .await;
    real_client_gets_through(a.addr).await;
}

#[tokio::test]
async fn an_ipv4_load_balancer_on_an_ipv6_listener_is_trusted_and_its_clients_counted_apart() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.trusted_proxies = vec!["127.0.0.1".into()];
    config.ip_ws_max = 2;
    let a = Instance::start_on("[::]:0".parse().unwrap(), config).await;
    let url = format!("ws://127.0.0.1:{}/ws", a.addr.port());
    // Through the proxy (an IPv4 peer, seen on this socket as ::ffff:127.0.0.1): three
    // clients, each within its own address's cap.
    let mut held = Vec::new();
    for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        let ws = try_connect(&url, &[("x-forwarded-for", client)])
            .await
            .unwrap_or_else(|status| panic!("{client} refused with {status}"));
        held.push(ws);
    }
    // One client's cap holds, written either way.
    held.push(
        try_connect(&url, &[("x-forwarded-for", "198.51.100.1")])
            .await
            .unwrap(),
    );
    assert_eq!(
        try_connect(&url, &[("x-forwarded-for", "::ffff:198.51.100.1")])
            .await
            .err(),
        Some(429)
    );
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_websockets() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.ip_ws_max = 3;
    let a = Instance::start(config).await;
    let mut mine = Vec::new();
    for _ in 0..3 {
        let stream = connect_from(ATTACKER, a.addr).await;
        let (ws, _) = tokio_tungstenite::client_async(a.ws_url(), stream)
            .await
            .expect("within the cap");
        mine.push(ws);
    }
    let stream = connect_from(ATTACKER, a.addr).await;
    match tokio_tungstenite::client_async(a.ws_url(), stream).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    // Another address is not affected.
    real_client_gets_through(a.addr).await;
    // A closed WebSocket gives its place back.
    let mut first = mine.remove(0);
    first.close(None).await.unwrap();
    eventually("the freed place", || async {
        let stream = connect_from(ATTACKER, a.addr).await;
        tokio_tungstenite::client_async(a.ws_url(), stream)
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}

/// The server binary under a low open-file limit, killed on drop.
struct LimitedProcess {
    addr: SocketAddr,
    child: Child,
    _dir: TempDir,
}

impl LimitedProcess {
    fn start(config: &tictactoe::config::Config, open_files: u32) -> LimitedProcess {
        let dir = TempDir::new("limited");
        let log = std::fs::File::create(dir.0.join("server.log")).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = server_command("/bin/sh", config)
            .arg("-c")
            .arg(format!(
                "ulimit -n {open_files} && exec '{}'",
                env!("CARGO_BIN_EXE_tictactoe")
            ))
            .env("LISTEN_ADDR", addr.to_string())
            .env("INSTANCE_ID", "limited")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the server binary");
        LimitedProcess {
            addr,
            child,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.0.join("server.log")).unwrap_or_default()
    }
}

impl Drop for LimitedProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn silent_sockets_on_the_metrics_port_cannot_take_the_players_descriptors() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    let defaults = tictactoe::config::Config::default();
    config.ip_pending_max = defaults.ip_pending_max;
    config.max_connections = defaults.max_connections;
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    config.metrics_addr = Some(metrics);
    let p = LimitedProcess::start(&config, 300);
    eventually("the limited instance ready", || async {
        matches!(http_get(p.addr, "/readyz").await, Ok((200, _))).then_some(())
    })
    .await;
    // More silent sockets on the metrics port than the process has descriptors.
    let mut silent = Vec::new();
    for _ in 0..400 {
        silent.push(connect_from(ATTACKER, metrics).await);
    }
    real_client_gets_through(p.addr).await;
    let (status, _) = http_get(p.addr, "/readyz").await.expect("readyz answers");
    assert_eq!(status, 200, "{}", p.log());
    // A scraper at another address still gets its metrics.
    let (status, text) = http_get(metrics, "/metrics").await.expect("metrics answer");
    assert_eq!(status, 200, "{text}");
    drop(silent);
    assert!(
        !p.log().contains("accept failed"),
        "accept ran out of file descriptors:\n{}",
        p.log()
    );
}

#[tokio::test]
async fn under_a_low_open_file_limit_silent_sockets_from_one_address_cannot_lock_out_another() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    // The documented defaults for the caps; only the deadline is shortened.
    let defaults = tictactoe::config::Config::default();
    config.ip_pending_max = defaults.ip_pending_max;
    config.max_connections = defaults.max_connections;
    config.header_read_timeout = Duration::from_millis(1500);
    let p = LimitedProcess::start(&config, 300);
    eventually("the limited instance ready", || async {
        matches!(http_get(p.addr, "/readyz").await, Ok((200, _))).then_some(())
    })
    .await;
    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(connect_from(ATTACKER, p.addr).await);
    }
    let ends = tokio::spawn(join_all(
        silent.into_iter().map(|s| closed_within(s, WAIT, None)),
    ));
    real_client_gets_through(p.addr).await;
    let ends = ends.await.unwrap();
    let open = ends.iter().filter(|e| e.is_none()).count();
    assert_eq!(open, 0, "{open} sockets still open:\n{}", p.log());
    let last = ends.iter().flatten().max().unwrap().duration_since(opened);
    assert!(
        last < Duration::from_millis(1500) + Duration::from_secs(3),
        "{last:?}"
    );
    real_client_gets_through(p.addr).await;
    assert!(
        !p.log().contains("accept failed"),
        "accept ran out of file descriptors:\n{}",
        p.log()
    );
}
