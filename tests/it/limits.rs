//! Rate limits and input hardening (issue: "Rate limits and abuse protection that hold across
//! instances"). Budgets live in Redis, so neither reconnecting nor changing instance resets
//! them.

use crate::support::backend::Backend;
use crate::support::client::{
    Ws, ack_version, error_code, reconnected, reply_req, retry_after, seat_pair, try_connect,
};
use crate::support::instances::{Instance, test_config};
use crate::support::redis::RedisServer;
use serde_json::json;
use std::time::Duration;
use tictactoe_protocol::{ErrorCode, ServerMsg, close};

async fn hello(ws: &mut Ws, name: &str) {
    ws.hello(name).await;
}

/// X and O seated in a fresh game on instance `a`; returns (x, o, game).
async fn seated(a: &Instance, b: &Instance) -> (Ws, Ws, String) {
    seat_pair(a.connect().await, b.connect().await).await
}

#[tokio::test]
async fn the_move_budget_holds_across_a_reconnect_and_an_instance_hop() {
    move_budget_on(Backend::single()).await;
}

pub async fn move_budget_on(backend: Backend) {
    let mut config = backend.config();
    // Three moves at once, then one every five seconds: the test never waits that long,
    // so the count at the boundary is exact.
    config.move_rate = 0.2;
    config.move_burst = 3;
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config).await;
    let (mut x, mut o, game) = seated(&a, &b).await;

    // X: 0 and 2 on instance A.
    ack_version(&x.play(&game, 0).await);
    ack_version(&o.play(&game, 1).await);
    ack_version(&x.play(&game, 2).await);
    ack_version(&o.play(&game, 4).await);
    // X reconnects to instance B with its session: the budget continues.
    let token = x.token.clone();
    x.close().await;
    let mut x = b.connect().await;
    x.token = token;
    hello(&mut x, "ann").await;
    x.join(&game).await;
    ack_version(&x.play(&game, 3).await);
    ack_version(&o.play(&game, 5).await);
    // The fourth move is one over the burst of three.
    let refused = x.play(&game, 7).await;
    let wait = retry_after(&refused);
    assert!(wait > 3000 && wait <= 5000, "{wait}");
    // The refused move changed nothing.
    let key = format!("{}game:{{{game}}}", a.config.key_prefix);
    let mut c = backend.conn_for(&key);
    let v: u64 = redis::cmd("HGET").arg(&key).arg("v").query(&mut c).unwrap();
    assert_eq!(v, 8);
    drop(o);
}

#[tokio::test]
async fn a_move_retried_after_retry_after_succeeds() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.move_rate = 5.0;
    config.move_burst = 1;
    let a = Instance::start(config.clone()).await;
    let (mut x, mut o, game) = seated(&a, &a).await;
    ack_version(&x.play(&game, 0).await);
    ack_version(&o.play(&game, 1).await);
    let refused = x.play(&game, 2).await;
    let wait = retry_after(&refused);
    assert!(wait <= 200, "{wait}");
    // Real time must pass: the budget refills on Redis's clock, as a client's would.
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert_eq!(ack_version(&x.play(&game, 2).await), 5);
}

/// An instance whose chat budget is two lines, then one every 100 s.
async fn two_lines_of_chat() -> (RedisServer, Instance) {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.chat_rate = 0.01;
    config.chat_burst = 2;
    let a = Instance::start(config).await;
    (redis, a)
}

#[tokio::test]
async fn a_chat_line_retried_once_the_budget_is_spent_is_acknowledged_as_the_duplicate_it_is() {
    let (_redis, a) = two_lines_of_chat().await;
    let (mut x, _o, game) = seated(&a, &a).await;
    let line = |lid: &str| json!({"type":"chat","game":game,"text":"hi","lid":lid});
    let first = match x.request(line("l-1")).await {
        ServerMsg::Ack { info, .. } => info.id.expect("the line's id"),
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        x.request(line("l-2")).await,
        ServerMsg::Ack { .. }
    ));
    // The session's budget is spent. On a new connection (the client reconnected after its
    // line met `unavailable`), a new line is refused, a retry of one that went in is not.
    let mut again = reconnected(&x, &a, "ann").await;
    again.join(&game).await;
    retry_after(&again.request(line("l-3")).await);
    match again.request(line("l-1")).await {
        ServerMsg::Ack { info, .. } => {
            assert!(info.duplicate);
            assert_eq!(info.id, Some(first));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_chat_line_retried_after_it_went_in_costs_no_budget() {
    let (_redis, a) = two_lines_of_chat().await;
    let (mut x, _o, game) = seated(&a, &a).await;
    let line = |lid: &str| json!({"type":"chat","game":game,"text":"hi","lid":lid});
    assert!(matches!(
        x.request(line("l-1")).await,
        ServerMsg::Ack { .. }
    ));
    // The client met `unavailable`, reconnected and sent the line again: a duplicate, which
    // leaves the session's budget as it was, so its next line still has room.
    let mut again = reconnected(&x, &a, "ann").await;
    again.join(&game).await;
    match again.request(line("l-1")).await {
        ServerMsg::Ack { info, .. } => assert!(info.duplicate),
        other => panic!("{other:?}"),
    }
    match again.request(line("l-2")).await {
        ServerMsg::Ack { info, .. } => assert!(!info.duplicate),
        other => panic!("{other:?}"),
    }
    // And that was the second of two.
    let mut third = reconnected(&x, &a, "ann").await;
    third.join(&game).await;
    retry_after(&third.request(line("l-3")).await);
}

#[tokio::test]
async fn two_sessions_do_not_share_a_budget() {
    let (_redis, a) = two_lines_of_chat().await;
    let (mut x, mut o, game) = seated(&a, &a).await;
    for _ in 0..2 {
        x.request(json!({"type":"chat","game":game,"text":"hi"}))
            .await;
    }
    let refused = x
        .request(json!({"type":"chat","game":game,"text":"hi"}))
        .await;
    retry_after(&refused);
    // Bob still has his whole budget, on the same game and instance.
    for _ in 0..2 {
        assert!(matches!(
            o.request(json!({"type":"chat","game":game,"text":"yo"}))
                .await,
            ServerMsg::Ack { .. }
        ));
    }
}

#[tokio::test]
async fn new_sessions_and_connections_per_address_are_capped() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.ip_session_rate = 0.01;
    config.ip_session_burst = 3;
    config.ip_conn_rate = 0.01;
    config.ip_conn_burst = 6;
    config.trusted_proxies = vec!["127.0.0.1".into()];
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config).await;
    let xff = [("x-forwarded-for", "203.0.113.9")];
    // Three sessions from one address, across two instances; the fourth is refused.
    let mut kept = Vec::new();
    for inst in [&a, &b, &a] {
        let mut ws = try_connect(&inst.ws_url(), &xff).await.unwrap();
        hello(&mut ws, "p").await;
        kept.push(ws);
    }
    let mut ws = try_connect(&b.ws_url(), &xff).await.unwrap();
    let refused = ws.request(json!({"type":"hello"})).await;
    retry_after(&refused);
    // Resuming an existing session is not minting a new one.
    ws.token = kept[0].token.clone();
    hello(&mut ws, "p").await;
    // Connections: six in all from that address (four so far), then HTTP 429.
    let mut conns = Vec::new();
    conns.push(try_connect(&a.ws_url(), &xff).await.unwrap());
    conns.push(try_connect(&b.ws_url(), &xff).await.unwrap());
    assert_eq!(try_connect(&a.ws_url(), &xff).await.err(), Some(429));
    assert_eq!(try_connect(&b.ws_url(), &xff).await.err(), Some(429));
    // Another address behind the same proxy has its own budgets.
    let mut other = try_connect(&a.ws_url(), &[("x-forwarded-for", "198.51.100.4")])
        .await
        .unwrap();
    hello(&mut other, "q").await;
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.ip_conn_rate = 0.01;
    config.ip_conn_burst = 2;
    let a = Instance::start(config).await;
    // No trusted proxies: every connection counts against 127.0.0.1, whatever it claims.
    let _c1 = try_connect(&a.ws_url(), &[("x-forwarded-for", "1.1.1.1")])
        .await
        .unwrap();
    let _c2 = try_connect(&a.ws_url(), &[("x-forwarded-for", "2.2.2.2")])
        .await
        .unwrap();
    assert_eq!(
        try_connect(&a.ws_url(), &[("x-forwarded-for", "3.3.3.3")])
            .await
            .err(),
        Some(429)
    );
}

/// A load balancer whose addresses change is trusted by its network: a peer inside
/// `127.0.0.0/8` has its X-Forwarded-For believed (each forwarded address has its own
/// budget); a peer outside the network listed does not.
#[tokio::test]
async fn a_proxy_network_in_trusted_proxies_is_believed_and_no_peer_outside_it() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.ip_conn_rate = 0.01;
    config.ip_conn_burst = 1;
    config.trusted_proxies = vec!["127.0.0.0/8".into()];
    let a = Instance::start(config.clone()).await;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    let _c1 = try_connect(&a.ws_url(), &from("203.0.113.1"))
        .await
        .unwrap();
    let _c2 = try_connect(&a.ws_url(), &from("203.0.113.2"))
        .await
        .unwrap();
    assert_eq!(
        try_connect(&a.ws_url(), &from("203.0.113.1")).await.err(),
        Some(429),
        "the forwarded address's own budget"
    );
    config.trusted_proxies = vec!["10.0.0.0/8".into()];
    let b = Instance::start(config).await;
    let _d1 = try_connect(&b.ws_url(), &from("198.51.100.1"))
        .await
        .unwrap();
    assert_eq!(
        try_connect(&b.ws_url(), &from("198.51.100.2")).await.err(),
        Some(429),
        "a peer outside the trusted network is one address, whatever it forwards"
    );
}

#[tokio::test]
async fn a_flood_of_frames_is_limited_before_parsing_then_closed_as_abuse() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.msg_rate = 0.01;
    config.msg_burst = 5;
    config.abuse_limit = 3;
    let a = Instance::start(config).await;
    let mut ws = a.connect().await;
    // Five frames pass (hello and four pings), even malformed ones count.
    hello(&mut ws, "flooder").await;
    for _ in 0..3 {
        assert!(matches!(
            ws.request(json!({"type":"ping"})).await,
            ServerMsg::Pong { .. }
        ));
    }
    ws.send_text("not json").await;
    assert_eq!(error_code(&ws.recv().await), ErrorCode::BadJson);
    // Over the budget: typed refusals (without `req`: the frames are not even read), three
    // of them, then the connection is closed.
    for _ in 0..3 {
        ws.send(json!({"type":"ping","req":99})).await;
        let m = ws.recv().await;
        retry_after(&m);
        assert_eq!(reply_req(&m), None);
    }
    ws.send(json!({"type":"ping"})).await;
    let frame = ws.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), close::POLICY);
}

#[tokio::test]
async fn the_local_tier_stops_a_move_flood_without_touching_redis() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.move_rate = 0.01;
    config.move_burst = 2;
    let a = Instance::start(config.clone()).await;
    let (mut x, _o, game) = seated(&a, &a).await;
    // The budget is a field of the game's hash (see transition.lua).
    let key = format!("{}game:{{{game}}}", config.key_prefix);
    let field = format!("r:{}", x.player.clone().unwrap());
    // Two moves pass the local tier: one legal, one refused by the rules.
    ack_version(&x.play(&game, 4).await);
    assert_eq!(error_code(&x.play(&game, 4).await), ErrorCode::NotYourTurn);
    // The rest of the flood stops in the instance.
    for _ in 0..5 {
        retry_after(&x.play(&game, 0).await);
    }
    // Redis saw exactly one move against the budget: its bucket holds one interval.
    let mut c = redis.sync_conn();
    let tat: u64 = redis::cmd("HGET")
        .arg(&key)
        .arg(&field)
        .query(&mut c)
        .unwrap();
    let now: (u64, u64) = redis::cmd("TIME").query(&mut c).unwrap();
    let now_us = now.0 * 1_000_000 + now.1;
    let ahead = tat.saturating_sub(now_us);
    assert!(
        ahead > 90_000_000 && ahead <= 100_000_000,
        "one interval ahead, got {ahead} us"
    );
}

#[tokio::test]
async fn an_oversize_message_closes_with_1009() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.max_message_bytes = 1024;
    let a = Instance::start(config).await;
    let mut ws = a.connect().await;
    hello(&mut ws, "big").await;
    let text = "x".repeat(2000);
    ws.send(json!({"type":"chat","text":text})).await;
    let frame = ws.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), close::TOO_BIG);
    // A message just under the limit is fine on a new connection.
    let mut ws = a.connect().await;
    hello(&mut ws, "ok").await;
    let reply = ws
        .request(json!({"type":"chat","text":"y".repeat(900)}))
        .await;
    assert_eq!(
        error_code(&reply),
        ErrorCode::InvalidText,
        "too long for chat, but read"
    );
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_the_pages_own_is_not() {
    let a = Instance::start(test_config(None)).await;
    let url = a.ws_url();
    assert_eq!(
        try_connect(&url, &[("origin", "https://evil.example")])
            .await
            .err(),
        Some(403)
    );
    let own = format!("http://{}", a.addr);
    assert!(try_connect(&url, &[("origin", &own)]).await.is_ok());
    assert!(
        try_connect(&url, &[("origin", "http://localhost:3000")])
            .await
            .is_ok()
    );

    let mut config = test_config(None);
    config.allowed_origins = vec!["https://play.example".into()];
    let b = Instance::start(config).await;
    assert!(
        try_connect(&b.ws_url(), &[("origin", "https://play.example")])
            .await
            .is_ok()
    );
    assert_eq!(
        try_connect(&b.ws_url(), &[("origin", "http://localhost:3000")])
            .await
            .err(),
        Some(403)
    );
}

#[tokio::test]
async fn with_redis_down_moves_fail_closed_and_connections_fall_back_to_a_local_limit() {
    let mut redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.ip_conn_rate = 0.01;
    config.ip_conn_burst = 1000;
    let a = Instance::start(config.clone()).await;
    let (mut x, _o, game) = seated(&a, &a).await;
    redis.stop();
    // Moves need Redis: refused with `unavailable`, never applied half-way.
    assert_eq!(error_code(&x.play(&game, 4).await), ErrorCode::Unavailable);
    // New connections are still let in, under a per-instance limit of the same size.
    let mut c = try_connect(&a.ws_url(), &[])
        .await
        .expect("connection while Redis is down");
    assert!(matches!(
        c.request(json!({"type":"ping"})).await,
        ServerMsg::Pong { .. }
    ));
    redis.restart();
    let retry = json!({"type":"move","game":game,"cell":4});
    ack_version(&x.request_until_available(retry).await);

    // The fallback is a limit, not an open door.
    let mut tight = test_config(Some(&redis));
    tight.ip_conn_rate = 0.01;
    tight.ip_conn_burst = 2;
    let b = Instance::start(tight).await;
    redis.stop();
    let _k1 = try_connect(&b.ws_url(), &[]).await.unwrap();
    let _k2 = try_connect(&b.ws_url(), &[]).await.unwrap();
    assert_eq!(try_connect(&b.ws_url(), &[]).await.err(), Some(429));
}

/// Creates a game, or returns the refusal.
async fn try_create(ws: &mut Ws) -> Result<String, ServerMsg> {
    match ws.request(json!({"type":"create"})).await {
        ServerMsg::Snapshot { game, .. } => Ok(game.to_string()),
        other => Err(other),
    }
}

#[tokio::test]
async fn games_created_are_budgeted_per_session_and_per_address() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.create_rate = 0.01;
    config.create_burst = 3;
    config.ip_create_rate = 0.01;
    config.ip_create_burst = 5;
    config.trusted_proxies = vec!["127.0.0.1".into()];
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config).await;
    let home = [("x-forwarded-for", "203.0.113.9")];
    let mut ann = try_connect(&a.ws_url(), &home).await.unwrap();
    hello(&mut ann, "ann").await;
    for _ in 0..3 {
        try_create(&mut ann).await.unwrap();
    }
    let refused = try_create(&mut ann).await.unwrap_err();
    assert!(retry_after(&refused) > 10_000);
    // The budget is the session's, kept in Redis: another instance knows it.
    let mut again = try_connect(&b.ws_url(), &home).await.unwrap();
    again.token = ann.token.clone();
    hello(&mut again, "ann").await;
    retry_after(&try_create(&mut again).await.unwrap_err());
    // A second session from the same address has a budget of its own, within the address's.
    let mut bob = try_connect(&b.ws_url(), &home).await.unwrap();
    hello(&mut bob, "bob").await;
    for _ in 0..2 {
        try_create(&mut bob).await.unwrap();
    }
    retry_after(&try_create(&mut bob).await.unwrap_err());
    // Another address is not held back.
    let mut cy = try_connect(&a.ws_url(), &[("x-forwarded-for", "198.51.100.4")])
        .await
        .unwrap();
    hello(&mut cy, "cy").await;
    try_create(&mut cy).await.unwrap();
}

#[tokio::test]
async fn a_session_has_few_games_waiting_and_the_lobby_shows_few_per_player() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.max_waiting_games = 2;
    config.lobby_per_player = 1;
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config).await;
    let mut ann = a.connect().await;
    hello(&mut ann, "ann").await;
    let g1 = try_create(&mut ann).await.unwrap();
    let g2 = try_create(&mut ann).await.unwrap();
    let refused = try_create(&mut ann).await.unwrap_err();
    assert_eq!(error_code(&refused), ErrorCode::TooManyWaiting);
    // Not per connection: the same session elsewhere is refused too.
    let mut ann2 = b.connect().await;
    ann2.token = ann.token.clone();
    hello(&mut ann2, "ann").await;
    assert_eq!(
        error_code(&try_create(&mut ann2).await.unwrap_err()),
        ErrorCode::TooManyWaiting
    );
    // Once a game is joined it no longer waits, and there is room again.
    let mut bob = b.connect().await;
    hello(&mut bob, "bob").await;
    bob.join(&g1).await;
    let g3 = try_create(&mut ann).await.unwrap();

    // The lobby shows Ann's newest open game only, and Bob's.
    let bobs = try_create(&mut bob).await.unwrap();
    let open = open_games_listed(&b).await;
    assert_eq!(open, [bobs, g3], "not {g2}");
}

/// The open games a newcomer watching the lobby on `at` is shown first.
async fn open_games_listed(at: &Instance) -> Vec<String> {
    let mut watcher = at.connect().await;
    hello(&mut watcher, "sue").await;
    watcher.request(json!({"type":"lobby","watch":true})).await;
    match watcher
        .recv_until(|m| matches!(m, ServerMsg::Lobby { .. }))
        .await
    {
        ServerMsg::Lobby { open, .. } => open.into_iter().map(|e| e.game.to_string()).collect(),
        _ => unreachable!(),
    }
}

/// The games a client was brought back into after a `hello`, from what it received.
fn restored(msgs: &[ServerMsg]) -> std::collections::HashSet<String> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Snapshot { game, .. } => Some(game.to_string()),
            ServerMsg::ChatHistory { game: Some(g), .. } => Some(g.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_connection_is_in_few_games_at_once_and_a_resume_restores_few() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.max_games_per_conn = 3;
    config.max_resume = 2;
    let a = Instance::start(config).await;
    let mut ann = a.connect().await;
    hello(&mut ann, "ann").await;
    let mut games = Vec::new();
    for _ in 0..3 {
        games.push(try_create(&mut ann).await.unwrap());
    }
    // A fourth game, created or joined, is one too many for this connection.
    assert_eq!(
        error_code(&try_create(&mut ann).await.unwrap_err()),
        ErrorCode::TooManyGames
    );
    let mut other = a.connect().await;
    hello(&mut other, "bob").await;
    for _ in 0..3 {
        games.push(try_create(&mut other).await.unwrap());
    }
    assert_eq!(
        error_code(&ann.join(&games[3]).await),
        ErrorCode::TooManyGames
    );
    // Leaving one makes room.
    ann.request(json!({"type":"leave","game":games[0]})).await;
    assert!(matches!(
        ann.join(&games[3]).await,
        ServerMsg::Snapshot { .. }
    ));

    // A hello asking to resume five games is restored in two, and told about the rest once.
    let mut eve = a.connect().await;
    hello(&mut eve, "eve").await;
    let token = eve.token.clone();
    eve.close().await;
    let mut eve = a.connect().await;
    eve.token = token;
    let resume: Vec<(&str, u64)> = games[1..6].iter().map(|g| (g.as_str(), 1)).collect();
    match eve.hello_resume("eve", &resume).await {
        ServerMsg::Welcome { resumed, .. } => assert!(resumed),
        other => panic!("{other:?}"),
    }
    let after = eve.drain_for(Duration::from_millis(500)).await;
    assert_eq!(restored(&after).len(), 2, "{after:?}");
    let refusals: Vec<_> = after
        .iter()
        .filter(|m| matches!(m, ServerMsg::Error { .. }))
        .collect();
    assert_eq!(refusals.len(), 1, "{after:?}");
    assert_eq!(error_code(refusals[0]), ErrorCode::TooManyGames);
}

#[tokio::test]
async fn one_address_fills_at_most_its_share_of_the_lobby() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.lobby_per_address = 3;
    config.lobby_per_player = 2;
    config.trusted_proxies = vec!["127.0.0.1".into()];
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config).await;
    // Four sessions behind one address open six games, on both instances.
    let crowd = [("x-forwarded-for", "198.51.100.50")];
    let mut theirs = Vec::new();
    for i in 0..4 {
        let at = if i % 2 == 0 { &a } else { &b };
        let mut s = try_connect(&at.ws_url(), &crowd).await.unwrap();
        hello(&mut s, &format!("crowd{i}")).await;
        theirs.push(try_create(&mut s).await.unwrap());
        if i < 2 {
            theirs.push(try_create(&mut s).await.unwrap());
        }
    }
    // Someone else, earlier than most of them.
    let mut solo = try_connect(&b.ws_url(), &[("x-forwarded-for", "203.0.113.60")])
        .await
        .unwrap();
    hello(&mut solo, "solo").await;
    let solos = try_create(&mut solo).await.unwrap();
    let open = open_games_listed(&a).await;
    // Three of the address's six (the newest: games opened within one millisecond may list
    // in either order), and the other address's game.
    assert_eq!(open.len(), 4, "{open:?}");
    assert!(open.contains(&solos), "{open:?}");
    let listed: Vec<&String> = open.iter().filter(|g| theirs.contains(g)).collect();
    assert_eq!(listed.len(), 3, "{open:?}");
    assert!(
        !listed.contains(&&theirs[0]),
        "the address's oldest game is not among its newest three: {open:?}"
    );
}
