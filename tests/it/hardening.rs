//! What an attacker or a sick network does to an instance, beyond connection floods (issue
//! 13): blank-looking text, secrets in logs, closing abusive connections cleanly, duplicate
//! keys, response headers, a private metrics listener, IPv6 budgets, rate-limit headers.

use crate::support::client::error_code;
use crate::support::instances::{Instance, test_config};
use crate::support::processes::ServerProcess;
use crate::support::redis::RedisServer;
use serde_json::json;
use tictactoe::protocol::{ErrorCode, ServerMsg};

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
        assert!(!log.contains(&secret[..24]), "part of the token ({form}) is in the log");
    }
}
