//! Health, readiness, metrics, logs, the monitor, and slow clients.

use crate::support::WAIT;
use crate::support::client::{ack_version, error_code};
use crate::support::http::http_get;
use crate::support::instances::{Instance, test_config};
use crate::support::processes::ServerProcess;
use crate::support::redis::{RedisServer, command_calls};
use serde_json::json;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tictactoe_protocol::{ServerMsg, close};

#[tokio::test]
async fn health_and_readiness_tell_alive_from_ready() {
    let mut redis = RedisServer::start();
    let a = Instance::start(test_config(Some(&redis))).await;
    let (status, body) = http_get(a.addr, "/healthz").await.unwrap();
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = http_get(a.addr, "/readyz").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], true);
    assert!(v["pubsub"].as_str().unwrap().starts_with("ok"));
    redis.stop();
    let (status, body) = http_get(a.addr, "/readyz").await.unwrap();
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    // Alive all the same.
    assert_eq!(http_get(a.addr, "/healthz").await.unwrap().0, 200);
    redis.restart();
    a.wait_ready().await;
}

/// `/readyz` is public, and each fresh verdict costs Redis a PING and a pub/sub echo: a flood
/// of it costs Redis only the readiness budget's probes, not two commands a request, and
/// every request is still answered with the verdict.
#[tokio::test]
async fn a_flood_of_readiness_checks_costs_redis_only_the_probe_budget() {
    use tictactoe::readiness::{PROBE_BURST, PROBES_PER_SECOND};
    const CLIENTS: usize = 8;
    const EACH: usize = 100;
    let redis = RedisServer::start();
    let config = test_config(Some(&redis));
    let bus_ping_every = config.redis_probe_every();
    let a = Instance::start(config).await;
    a.wait_ready().await;
    let pings = || command_calls(&mut redis.sync_conn(), "ping");
    let before = pings();
    let started = Instant::now();
    let addr = a.addr;
    let ready = futures_util::future::join_all((0..CLIENTS).map(|_| async move {
        let mut ready = 0;
        for _ in 0..EACH {
            if let Ok((200, body)) = http_get(addr, "/readyz").await
                && body.contains("\"ready\":true")
            {
                ready += 1;
            }
        }
        ready
    }))
    .await;
    let elapsed = started.elapsed();
    let probes = pings() - before;
    eprintln!("readyz flood: {probes} PINGs in {elapsed:?}");
    assert_eq!(
        ready.iter().sum::<usize>(),
        CLIENTS * EACH,
        "every check answered ready"
    );
    // The budget, plus the instance's own pub/sub ping (one every REDIS_LOST_MS / 6).
    let secs = elapsed.as_secs_f64();
    let bound = f64::from(PROBE_BURST)
        + PROBES_PER_SECOND * secs
        + secs / bus_ping_every.as_secs_f64()
        + 2.0;
    assert!(
        probes as f64 <= bound,
        "{probes} PINGs for {} checks in {elapsed:?}: more than the budget's {bound:.0}",
        CLIENTS * EACH
    );
}

#[tokio::test]
async fn metrics_count_what_operators_watch() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.move_burst = 1;
    config.move_rate = 0.01;
    config.hello_timeout = Duration::from_millis(200);
    let a = Instance::start(config).await;
    let mut silent = a.connect().await;
    assert_eq!(
        silent.closed().await.map(|f| u16::from(f.code)),
        Some(close::POLICY)
    );
    let mut x = a.connect().await;
    x.hello("ann").await;
    let mut o = a.connect().await;
    o.hello("bob").await;
    let game = x.create().await;
    o.join(&game).await;
    ack_version(&x.play(&game, 4).await);
    error_code(&o.play(&game, 4).await);
    error_code(&x.play(&game, 0).await);
    a.wait_ready().await; // a probe round trip for the lag histogram
    let (status, text) = http_get(a.addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    for name in [
        "connections ",
        "games_local ",
        "pubsub_subscriptions ",
        "moves_total{result=\"accepted\"}",
        "moves_total{result=\"celloccupied\"}",
        "rate_limited_total{rule=\"moves\"}",
        "redis_command_seconds_bucket{op=\"transition\"",
        "pubsub_lag_seconds_bucket",
        "joins_total{role=\"o\"}",
        "connections_closed_total{code=\"1008\",reason=\"no hello\"} 1",
    ] {
        assert!(text.contains(name), "missing {name} in:\n{text}");
    }
}

/// An instance whose WEB_DIR holds no page says so at start, and still serves WebSockets;
/// one with the page says nothing of it.
#[tokio::test]
async fn a_web_dir_without_the_page_is_named_in_the_log() {
    let mut config = test_config(None);
    config.web_dir = std::env::temp_dir().join(format!("ttt-no-page-{}", uuid::Uuid::new_v4()));
    let p = ServerProcess::start(&config, "nopage");
    p.wait_ready().await;
    let (status, _) = http_get(p.addr, "/")
        .await
        .expect("the page's address answers");
    assert_eq!(status, 404);
    let mut x = p.connect().await;
    x.hello("ann").await;
    assert!(
        p.log().contains("WEB_DIR has no index.html"),
        "nothing in the log says why the page is missing:\n{}",
        p.log()
    );
    let q = ServerProcess::start(&test_config(None), "page");
    q.wait_ready().await;
    let (status, _) = http_get(q.addr, "/").await.expect("the page answers");
    assert_eq!(status, 200);
    assert!(!q.log().contains("WEB_DIR"), "{}", q.log());
}

#[tokio::test]
async fn json_logs_carry_the_instance_and_player() {
    let redis = RedisServer::start();
    let config = test_config(Some(&redis));
    let p = ServerProcess::start_with_env(
        &config,
        "jsonlog",
        &[("LOG_FORMAT", "json"), ("RUST_LOG", "debug")],
    );
    p.wait_ready().await;
    let mut x = p.connect().await;
    x.hello("ann").await;
    x.create().await;
    x.close().await;
    let log = p.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let joined = lines
        .iter()
        .find(|l| l["fields"]["message"] == "joined")
        .expect("a join was logged");
    assert_eq!(joined["span"]["instance"], "jsonlog");
    assert!(joined["span"]["player"].as_str().unwrap().starts_with("p-"));
    assert!(joined["fields"]["game"].is_string());
}

#[tokio::test]
async fn the_monitor_prints_moves_boards_and_chat() {
    let redis = RedisServer::start();
    let config = test_config(Some(&redis));
    let a = Instance::start(config.clone()).await;
    let mut monitor = Command::new(env!("CARGO_BIN_EXE_tictactoe"))
        .args([
            "monitor",
            "--redis-url",
            &redis.url(),
            "--key-prefix",
            &config.key_prefix,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the monitor");
    // It says on stderr when it is watching.
    let mut err = monitor.stderr.take().unwrap();
    let mut seen = String::new();
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 256];
    while !seen.contains("watching") {
        let n = err.read(&mut buf).unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        assert!(
            Instant::now() < deadline && n > 0,
            "monitor never started: {seen}"
        );
    }
    let mut x = a.connect().await;
    x.hello("ann").await;
    let mut o = a.connect().await;
    o.hello("bob").await;
    let game = x.create().await;
    o.join(&game).await;
    ack_version(&x.play(&game, 4).await);
    x.request(json!({"type":"chat","game":game,"text":"gg <3"}))
        .await;
    // Its output up to the chat line, the last event: read on a thread, as the pipe blocks.
    let stdout = BufReader::new(monitor.stdout.take().unwrap());
    let (lines, mut printed) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = String::new();
    let chat_printed = tokio::time::timeout(WAIT, async {
        while !out.contains("chat [X] ann: gg <3") {
            let Some(line) = printed.recv().await else {
                return false;
            };
            out.push_str(&line);
            out.push('\n');
        }
        true
    })
    .await;
    assert!(
        matches!(chat_printed, Ok(true)),
        "the monitor never printed the chat line:\n{out}"
    );
    let _ = monitor.kill();
    let _ = monitor.wait();
    assert!(
        out.contains(&format!("{game} v3 X plays 4 (center)")),
        "{out}"
    );
    assert!(out.contains("    . X ."), "{out}");
    assert!(out.contains("bob (O) to move"), "{out}");
    assert!(out.contains("chat [X] ann: gg <3"), "{out}");
}

#[tokio::test]
async fn a_client_that_does_not_read_is_closed_and_slows_nobody() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.outbound_queue = 128;
    let a = Instance::start(config).await;
    let mut x = a.connect().await;
    x.hello("ann").await;
    let game = x.create().await;
    // A spectator that reads, and one that never reads, with a tiny receive window.
    let mut fast = a.connect().await;
    fast.hello("fast").await;
    fast.join(&game).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let stream = socket.connect(a.addr).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(a.ws_url(), stream)
        .await
        .unwrap();
    use futures_util::SinkExt;
    slow.send(json!({"type":"hello","name":"slow"}).to_string().into())
        .await
        .unwrap();
    slow.send(
        json!({"type":"join","game":game,"spectate":true})
            .to_string()
            .into(),
    )
    .await
    .unwrap();
    // The non-reader is in once the others see a spectator.
    fast.recv_until(
        |m| matches!(m, ServerMsg::Presence { presence, .. } if presence.spectators == 1),
    )
    .await;
    // More than the non-reader's socket buffers, its WebSocket write buffer (64 KiB) and its
    // queue can hold: about 350 KB of chat lines. The producer keeps reading its own socket
    // while it sends, or it would be a slow consumer itself.
    let token = x.token.clone();
    x.close().await;
    let (producer, _) = tokio_tungstenite::connect_async(a.ws_url()).await.unwrap();
    let (mut tx, mut rx) = futures_util::StreamExt::split(producer);
    let drain =
        tokio::spawn(
            async move { while futures_util::StreamExt::next(&mut rx).await.is_some() {} },
        );
    tx.send(json!({"type":"hello","token":token}).to_string().into())
        .await
        .unwrap();
    tx.send(json!({"type":"join","game":game}).to_string().into())
        .await
        .unwrap();
    let text = "z".repeat(250);
    let started = Instant::now();
    for _ in 0..1000 {
        tx.send(
            json!({"type":"chat","game":game,"text":text})
                .to_string()
                .into(),
        )
        .await
        .unwrap();
    }
    // The reader gets every line.
    let mut lines = 0;
    while lines < 1000 {
        match fast.recv().await {
            ServerMsg::Chat { .. } => lines += 1,
            ServerMsg::Error { code, message, .. } => panic!("after {lines}: {code:?} {message}"),
            _ => {}
        }
    }
    let elapsed = started.elapsed();
    // The non-reader is closed with 4001, once its queue overflowed.
    use futures_util::StreamExt;
    let code = loop {
        match tokio::time::timeout(WAIT, slow.next())
            .await
            .expect("slow client closed")
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f)))) => {
                break Some(u16::from(f.code));
            }
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    assert_eq!(code, Some(close::SLOW_CONSUMER));
    assert!(elapsed < WAIT, "the reader was not held up");
    drain.abort();
}
