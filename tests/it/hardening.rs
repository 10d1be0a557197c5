//! What an attacker or a sick network does to an instance, beyond connection floods (issue
//! 13): blank-looking text, secrets in logs, closing abusive connections cleanly, duplicate
//! keys, response headers, a private metrics listener, IPv6 budgets, rate-limit headers.

use crate::support::client::{error_code, reply_req, try_connect};
use crate::support::http::http_get;
use crate::support::instances::{Instance, test_config};
use crate::support::processes::ServerProcess;
use crate::support::redis::RedisServer;
use crate::support::{WAIT, free_port};
use serde_json::json;
use tictactoe_protocol::{ErrorCode, ServerMsg};

fn chat_text(m: &ServerMsg) -> Option<&str> {
    match m {
        ServerMsg::Chat { line, .. } => Some(line.text.as_str()),
        _ => None,
    }
}

#[tokio::test]
async fn blank_looking_names_and_chat_are_refused_and_emoji_sequences_stay_whole() {
    let redis = RedisServer::start();
    let a = Instance::start(test_config(Some(&redis))).await;
    let mut x = a.connect().await;
    // A name of Hangul fillers looks empty: the server picks a default instead.
    match x.hello("\u{3164}\u{3164}").await {
        ServerMsg::Welcome { name, .. } => assert!(name.starts_with("Player-"), "{name:?}"),
        other => panic!("{other:?}"),
    }
    let game = x.create().await;
    for blank in [
        "\u{3164}",
        "\u{AD}\u{AD}",
        "\u{61C}",
        "\u{FE0F}",
        "\u{E0067}\u{E0062}\u{E007F}",
        " \u{200D} \u{2800} ",
    ] {
        let reply = x
            .request(json!({"type":"chat","game":game,"text":blank}))
            .await;
        assert_eq!(
            error_code(&reply),
            ErrorCode::InvalidText,
            "{}",
            blank.escape_unicode()
        );
    }
    // A family is one emoji of four people joined by U+200D: it must arrive as sent.
    let family = "gg 👨\u{200D}👩\u{200D}👧\u{200D}👦 ❤\u{FE0F}";
    x.request(json!({"type":"chat","game":game,"text":family}))
        .await;
    let line = x.recv_until(|m| chat_text(m).is_some()).await;
    assert_eq!(chat_text(&line), Some(family));
}

#[tokio::test]
async fn no_log_level_prints_a_session_token() {
    let redis = RedisServer::start();
    let config = test_config(Some(&redis));
    let p = ServerProcess::start_with_env(&config, "tracelog", &[("RUST_LOG", "trace")]);
    p.wait_ready().await;
    // The token travels server to client in `welcome`, and client to server in `hello`.
    let mut x = p.connect().await;
    x.hello("ann").await;
    let token = x.token.clone().expect("a new session's token");
    x.close().await;
    let mut x = p.connect().await;
    x.token = Some(token.clone());
    x.hello("ann").await;
    x.create().await;
    x.close().await;
    let log = p.log();
    // The WebSocket library is still heard, at debug.
    assert!(
        log.contains("DEBUG") && log.contains("tungstenite"),
        "the server logged at trace level:\n{log}"
    );
    let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
    for (form, secret) in [("plain", token.as_str()), ("hex", hex.as_str())] {
        assert!(!log.contains(secret), "the token ({form}) is in the log");
        // Nor any long piece of it, should a frame be logged in parts.
        assert!(
            !log.contains(&secret[..24]),
            "part of the token ({form}) is in the log"
        );
    }
}

/// Sends `request` as is and reads one response: status, lower-cased head, body (by its
/// `content-length`, or to the end of the stream). Never waits longer than five seconds.
pub async fn raw_request(
    addr: std::net::SocketAddr,
    request: &str,
) -> std::io::Result<(u16, String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let head = head.to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                if length.is_some_and(|n| body.len() >= n) {
                    let status = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    return Ok((status, head, body.to_string()));
                }
            }
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return Ok((status, head.to_ascii_lowercase(), body.to_string()));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), fut)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("no complete response in time")))
}

/// A WebSocket handshake request, with extra header lines.
fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// The value of header `name` (lower case) in a lower-cased head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
}

#[tokio::test]
async fn the_page_is_served_with_security_headers() {
    let a = Instance::start(test_config(None)).await;
    for path in ["/", "/js/app.js", "/healthz"] {
        let (status, head, _) = raw_request(
            a.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{path}");
        let csp = header(&head, "content-security-policy").expect("a CSP");
        for directive in [
            "default-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&head, "x-frame-options"), Some("deny"));
        assert_eq!(header(&head, "referrer-policy"), Some("no-referrer"));
    }
}

#[tokio::test]
async fn a_connection_flood_is_told_the_policy_in_ratelimit_headers() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.ip_conn_rate = 0.01; // one every 100 s
    config.ip_conn_burst = 2;
    let a = Instance::start(config).await;
    let _c1 = try_connect(&a.ws_url(), &[]).await.unwrap();
    let _c2 = try_connect(&a.ws_url(), &[]).await.unwrap();
    let (status, head, _) = raw_request(a.addr, &upgrade_request("")).await.unwrap();
    assert_eq!(status, 429, "{head}");
    let retry: u64 = header(&head, "retry-after").unwrap().parse().unwrap();
    assert!(retry > 90 && retry <= 100, "{retry}");
    assert_eq!(
        header(&head, "ratelimit-policy"),
        Some("\"conn\";q=2;w=200"),
        "two connections per 200 s window"
    );
    assert_eq!(
        header(&head, "ratelimit"),
        Some(format!("\"conn\";r=0;t={retry}").as_str())
    );
}

#[tokio::test]
async fn ipv6_clients_share_their_budget_with_their_64() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.ip_conn_rate = 0.01;
    config.ip_conn_burst = 2;
    // The test connects from 127.0.0.1 and says, as a trusted proxy, who the client is.
    config.trusted_proxies = vec!["127.0.0.1".into()];
    let a = Instance::start(config).await;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    let _c1 = try_connect(&a.ws_url(), &from("2001:db8:1:2::1"))
        .await
        .unwrap();
    let _c2 = try_connect(&a.ws_url(), &from("2001:db8:1:2:aaaa:bbbb:cccc:dddd"))
        .await
        .unwrap();
    // A third address in the same /64 is the same subscriber.
    assert_eq!(
        try_connect(&a.ws_url(), &from("2001:db8:1:2::99"))
            .await
            .err(),
        Some(429)
    );
    // The next /64 is someone else.
    assert!(
        try_connect(&a.ws_url(), &from("2001:db8:1:3::1"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn metrics_can_move_off_the_game_port() {
    let mut config = test_config(None);
    let metrics_addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    config.metrics_addr = Some(metrics_addr);
    let a = Instance::start(config).await;
    let (status, _) = http_get(a.addr, "/metrics").await.unwrap();
    assert_eq!(status, 404, "not on the game port");
    let (status, text) = http_get(metrics_addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("connections"), "{text}");
}

#[tokio::test]
async fn an_unpaced_flood_is_closed_with_1008_not_reset() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.msg_rate = 0.01;
    config.msg_burst = 5;
    config.abuse_limit = 3;
    let a = Instance::start(config).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(a.ws_url()).await.unwrap();
    // A flood as a simple client sends it: everything first, reading only afterwards. The
    // server closes the connection after a few frames; if it then drops the socket with the
    // rest unread, the kernel resets the connection, the sends fail, and a browser reports
    // 1006 without ever reading the close frame.
    let ping = Message::Text(json!({"type":"ping"}).to_string().into());
    for i in 0..5_000 {
        if let Err(e) = ws.send(ping.clone()).await {
            panic!("send {i} failed, the connection was reset: {e}");
        }
    }
    let code = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("the connection broke instead of closing: {e}"),
                None => panic!("the connection ended without a close frame"),
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(code, Some(tictactoe_protocol::close::POLICY));
}

#[tokio::test]
async fn a_frame_with_a_repeated_key_is_refused_not_guessed() {
    let a = Instance::start(test_config(None)).await;
    let mut x = a.connect().await;
    x.hello("ann").await;
    // One reader would see a ping, another a create: neither happens.
    x.send_text(r#"{"type":"ping","req":7,"type":"create"}"#)
        .await;
    let reply = x.recv_until(|m| reply_req(m) == Some(7)).await;
    assert_eq!(error_code(&reply), ErrorCode::BadJson);
    x.send_text(r#"{"type":"create","req":8,"req":9}"#).await;
    let reply = x.recv().await;
    assert_eq!(error_code(&reply), ErrorCode::BadJson);
    // Still usable.
    assert!(matches!(
        x.request(json!({"type":"ping"})).await,
        ServerMsg::Pong { .. }
    ));
}

#[tokio::test]
async fn marks_of_any_script_alone_are_blank_and_accents_cannot_stack_into_a_tower() {
    let redis = RedisServer::start();
    let a = Instance::start(test_config(Some(&redis))).await;
    // Names made only of combining marks outside the common blocks: Hebrew, Arabic, Thai,
    // Khitan.
    for blank in ["\u{05B0}", "\u{064B}\u{064B}", "\u{0E31}", "\u{16FE4}"] {
        let mut c = a.connect().await;
        match c.hello(blank).await {
            ServerMsg::Welcome { name, .. } => {
                assert!(name.starts_with("Player-"), "{}", blank.escape_unicode())
            }
            other => panic!("{other:?}"),
        }
        let reply = c.request(json!({"type":"rename","name":blank})).await;
        assert_eq!(error_code(&reply), ErrorCode::InvalidName);
    }
    // A letter under 279 acute accents arrives with a few of them.
    let mut x = a.connect().await;
    x.hello("ann").await;
    let game = x.create().await;
    let tower = format!("a{}", "\u{0301}".repeat(279));
    x.request(json!({"type":"chat","game":game,"text":tower}))
        .await;
    let line = x.recv_until(|m| chat_text(m).is_some()).await;
    let marks = chat_text(&line)
        .unwrap()
        .chars()
        .filter(|c| *c == '\u{0301}')
        .count();
    assert_eq!(marks, tictactoe::text::MAX_MARKS);
    // Scripts that stack a few marks are untouched.
    let viet = "Chơi thôi nào, bạn ơi!";
    x.request(json!({"type":"chat","game":game,"text":viet}))
        .await;
    let line = x
        .recv_until(|m| chat_text(m).is_some_and(|t| t.starts_with("Ch")))
        .await;
    assert_eq!(chat_text(&line), Some(viet));
}
