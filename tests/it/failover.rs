//! Failover: instances are stateless, so losing one (or Redis for a while) costs players a
//! reconnect and nothing else. Instances here are real processes of the built binary.

use crate::support::backend::Backend;
use crate::support::client::{Ws, ack_version, error_code, player, seat_pair};
use crate::support::http::http_get;
use crate::support::instances::{Instance, test_config};
use crate::support::processes::{ServerProcess, ready_processes};
use crate::support::redis::RedisServer;
use crate::support::{WAIT, eventually};
use futures_util::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};
use tictactoe::config::Config;
use tictactoe_protocol::ids::GameId;
use tictactoe_protocol::{ErrorCode, ServerMsg, close};
use tictactoe_rules::{EndReason, GameState, Mark, Status};

fn config(redis: &RedisServer) -> Config {
    let mut c = test_config(Some(redis));
    c.forfeit_grace = Duration::from_millis(60_000);
    c
}

/// `n` ready instances of the binary.
async fn processes(config: &Config, n: usize) -> Vec<ServerProcess> {
    let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    ready_processes(config, &names).await
}

/// Reconnects a player's session on another instance, resuming `game` from `version`.
async fn resume(
    p: &ServerProcess,
    token: &Option<String>,
    name: &str,
    game: &str,
    version: u64,
) -> Ws {
    let mut ws = p.connect().await;
    ws.token = token.clone();
    match ws.hello_resume(name, &[(game, version)]).await {
        ServerMsg::Welcome { resumed, .. } => assert!(resumed, "the session survives"),
        other => panic!("{other:?}"),
    }
    ws
}

fn state(m: &ServerMsg) -> GameState {
    m.state()
        .cloned()
        .unwrap_or_else(|| panic!("no state in {m:?}"))
}

#[tokio::test]
async fn an_instance_killed_mid_game_costs_its_players_only_a_reconnect() {
    killed_instance_on(Backend::single()).await;
}

pub async fn killed_instance_on(backend: Backend) {
    let mut cfg = backend.config();
    cfg.forfeit_grace = Duration::from_millis(60_000);
    let mut procs = processes(&cfg, 3).await;
    let mut x = player(&procs[0], "ann").await;
    let mut o = player(&procs[1], "bob").await;
    let game = x.create().await;
    o.join(&game).await;
    ack_version(&x.play(&game, 0).await); // v3
    ack_version(&o.play(&game, 4).await); // v4
    x.event(&game, 4).await;

    // X's move goes out and X's instance dies at once: X cannot know if it was applied.
    x.send(json!({"type":"move","req":900,"game":game,"cell":1,"mid":"m-x-1"}))
        .await;
    procs[0].kill9();
    let token = x.token.clone();
    drop(x);

    // X comes back on another instance, resumes from v4 and retries the same move id.
    let mut x = resume(&procs[2], &token, "ann", &game, 4).await;
    let retry = x
        .request(json!({"type":"move","game":game,"cell":1,"mid":"m-x-1","version":4}))
        .await;
    assert_eq!(
        ack_version(&retry),
        5,
        "applied exactly once, whichever attempt did it"
    );
    let after = o.event(&game, 5).await;
    assert_eq!(state(&after).board.to_string(), "XX..O....");

    // The game goes on to its end across the surviving instances.
    ack_version(&o.play(&game, 8).await); // v6
    ack_version(&x.play(&game, 2).await); // v7: X wins 0-1-2
    let end = x.event(&game, 7).await;
    let s = state(&end);
    assert_eq!(s.status, Status::Finished);
    assert_eq!(s.result.unwrap().winner, Some(Mark::X));
    assert_eq!(s.board.count(Mark::X), 3);
}

#[tokio::test]
async fn a_player_who_does_not_come_back_forfeits_though_their_instance_is_gone() {
    let redis = RedisServer::start();
    let mut cfg = config(&redis);
    cfg.forfeit_grace = Duration::from_millis(1500);
    let mut procs = processes(&cfg, 3).await;
    let mut x = player(&procs[0], "ann").await;
    let mut o = player(&procs[1], "bob").await;
    let game = x.create().await;
    o.join(&game).await;
    ack_version(&x.play(&game, 4).await);
    procs[0].kill9();
    let started = Instant::now();
    let forfeit = o
        .recv_until(|m| matches!(m, ServerMsg::Conceded { .. }))
        .await;
    match &forfeit {
        ServerMsg::Conceded {
            mark,
            reason,
            state,
            ..
        } => {
            assert_eq!((*mark, *reason), (Mark::X, EndReason::Forfeit));
            assert_eq!(state.result.unwrap().winner, Some(Mark::O));
        }
        _ => unreachable!(),
    }
    // Not before the grace period (plus the time to notice the dead instance).
    assert!(started.elapsed() >= Duration::from_millis(1500));
    // Two surviving instances both watch the clock; the forfeit happened exactly once.
    let extra = o.drain_for(Duration::from_millis(1000)).await;
    assert!(
        !extra
            .iter()
            .any(|m| matches!(m, ServerMsg::Conceded { .. })),
        "{extra:?}"
    );
    let mut c = redis.sync_conn();
    let log: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(format!("{}game:{{{game}}}:log", cfg.key_prefix))
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    let conceded = log
        .iter()
        .filter(|(_, f)| f[0].1.contains("\"conceded\""))
        .count();
    assert_eq!(conceded, 1);
}

#[tokio::test]
async fn a_player_back_within_the_grace_period_keeps_playing() {
    let redis = RedisServer::start();
    let mut cfg = config(&redis);
    cfg.forfeit_grace = Duration::from_millis(2500);
    let procs = processes(&cfg, 2).await;
    let mut x = player(&procs[0], "ann").await;
    let mut o = player(&procs[1], "bob").await;
    let game = x.create().await;
    o.join(&game).await;
    ack_version(&x.play(&game, 4).await);
    let token = x.token.clone();
    x.close().await;
    // Back once X's absence is seen (O learns X left): the forfeit clock has started.
    o.recv_until(|m| matches!(m, ServerMsg::Presence { presence, .. } if !presence.players.x))
        .await;
    let mut x = resume(&procs[1], &token, "ann", &game, 3).await;
    // Past the grace period from the disconnect: no forfeit, the game is still on.
    let quiet = o.drain_for(Duration::from_millis(3000)).await;
    assert!(
        !quiet
            .iter()
            .any(|m| matches!(m, ServerMsg::Conceded { .. })),
        "{quiet:?}"
    );
    ack_version(&o.play(&game, 0).await);
    ack_version(&x.play(&game, 8).await);
}

#[tokio::test]
async fn a_killed_instances_players_and_spectators_leave_presence_within_the_bound() {
    let redis = RedisServer::start();
    let cfg = config(&redis);
    let mut procs = processes(&cfg, 2).await;
    let mut x = player(&procs[0], "ann").await;
    let mut s = player(&procs[0], "sue").await;
    let mut o = player(&procs[1], "bob").await;
    let game = x.create().await;
    o.join(&game).await;
    s.join(&game).await;
    let presence = |m: &ServerMsg| match m {
        ServerMsg::Presence { presence, .. } => Some(presence.clone()),
        _ => None,
    };
    o.recv_until(|m| presence(m).is_some_and(|p| p.players.x && p.spectators == 1))
        .await;
    procs[0].kill9();
    let killed = Instant::now();
    let p = presence(
        &o.recv_until(|m| presence(m).is_some_and(|p| !p.players.x && p.spectators == 0))
            .await,
    )
    .unwrap();
    assert!(p.players.o);
    // The documented bound: LEASE_TTL_MS + SWEEP_INTERVAL_MS (plus scheduling slack).
    let bound = cfg.lease_ttl + cfg.sweep_interval + Duration::from_millis(1500);
    assert!(killed.elapsed() < bound, "took {:?}", killed.elapsed());
    drop((x, s));
}

/// Both players of a game that begins are there: its match-confirmation clock has nothing to
/// watch and is gone by the time O's join is answered (no instance claims it, reads the seats
/// and settles it later). A player who goes afterwards still starts the forfeit clock.
#[tokio::test]
async fn a_game_whose_players_are_both_there_keeps_no_match_clock() {
    let redis = RedisServer::start();
    let cfg = config(&redis);
    let (a, b) = (
        Instance::start(cfg.clone()).await,
        Instance::start(cfg.clone()).await,
    );
    let mut x = player(&a, "ann").await;
    let mut o = player(&b, "bob").await;
    let game = x.create().await;
    o.join(&game).await;
    let deadlines = format!("{}{{deadlines}}", cfg.key_prefix);
    let dates = || {
        let mut c = redis.sync_conn();
        let dates: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(&deadlines)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query(&mut c)
            .unwrap();
        dates
    };
    assert!(dates().is_empty(), "{:?}", dates());
    ack_version(&x.play(&game, 4).await);
    drop(o);
    let forfeit = eventually("the forfeit clock", || {
        let d = dates();
        async move { (!d.is_empty()).then_some(d) }
    })
    .await;
    assert_eq!(forfeit.len(), 1);
    assert_eq!(forfeit[0].0, game.as_str());
}

#[tokio::test]
async fn a_match_with_a_player_whose_instance_died_is_aborted_not_left_waiting() {
    let redis = RedisServer::start();
    let mut cfg = config(&redis);
    // Long enough that the dead player's ticket is still fresh when the other one asks.
    cfg.lease_ttl = Duration::from_millis(5000);
    cfg.match_confirm = Duration::from_millis(1000);
    let mut procs = processes(&cfg, 2).await;
    let mut a = player(&procs[0], "ann").await;
    a.request(json!({"type":"quick_match"})).await;
    procs[0].kill9();
    let mut b = player(&procs[1], "bob").await;
    b.request(json!({"type":"quick_match"})).await;
    let found = b
        .recv_until(|m| matches!(m, ServerMsg::MatchFound { .. }))
        .await;
    let ServerMsg::MatchFound { game, .. } = found else {
        unreachable!()
    };
    let aborted = b
        .recv_until(|m| matches!(m, ServerMsg::Aborted { .. }))
        .await;
    assert_eq!(aborted.game_version().unwrap().0, &game);
    assert_eq!(state(&aborted).status, Status::Aborted);
    drop(a);
    // Bob can queue again and be matched with someone who is really there.
    b.request(json!({"type":"quick_match"})).await;
    let mut c = player(&procs[1], "cy").await;
    c.request(json!({"type":"quick_match"})).await;
    b.recv_until(|m| matches!(m, ServerMsg::MatchFound { .. }))
        .await;
}

#[tokio::test]
async fn sigterm_drains_an_instance_and_its_clients_move_to_the_others() {
    let redis = RedisServer::start();
    let cfg = config(&redis);
    let mut procs = processes(&cfg, 2).await;
    let mut x = player(&procs[0], "ann").await;
    let mut o = player(&procs[1], "bob").await;
    let game = x.create().await;
    o.join(&game).await;
    ack_version(&x.play(&game, 4).await);
    procs[0].sigterm();
    let frame = x.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), close::SERVICE_RESTART);
    assert!(
        procs[0].wait_exit(WAIT).await,
        "clean exit:\n{}",
        procs[0].log()
    );
    let token = x.token.clone();
    let mut x = resume(&procs[1], &token, "ann", &game, 3).await;
    ack_version(&o.play(&game, 0).await);
    x.event(&game, 4).await;
    ack_version(&x.play(&game, 8).await);
    let log = procs[0].log();
    assert!(log.contains("shutting down"), "{log}");
}

#[tokio::test]
async fn redis_restarted_mid_game_loses_no_acknowledged_move() {
    let mut redis = RedisServer::start();
    let cfg = config(&redis);
    let procs = processes(&cfg, 2).await;
    let (a, b) = (&procs[0], &procs[1]);
    let (mut x, mut o, game) = seat_pair(a.connect().await, b.connect().await).await;
    ack_version(&x.play(&game, 0).await); // v3
    ack_version(&o.play(&game, 4).await); // v4

    redis.stop();
    let m = x
        .request(json!({"type":"move","game":game,"cell":1,"mid":"m-1"}))
        .await;
    assert_eq!(error_code(&m), ErrorCode::Unavailable);
    for p in [a, b] {
        let (status, body) = http_get(p.addr, "/readyz").await.unwrap();
        assert_eq!(status, 503, "{body}");
    }
    redis.restart();
    for p in [a, b] {
        p.wait_ready().await;
    }
    // Retried with the same move id: applied once; O (on the other instance, whose
    // subscription had to be re-established) sees it.
    let retry = json!({"type":"move","game":game,"cell":1,"mid":"m-1"});
    let version = ack_version(&x.request_until_available(retry).await);
    assert_eq!(version, 5);
    let seen = o.event(&game, 5).await;
    assert_eq!(
        state(&seen).board.to_string(),
        "XX..O....",
        "no acknowledged move lost"
    );
    ack_version(&o.play(&game, 8).await);
    ack_version(&x.play(&game, 2).await);
    let end = o.event(&game, 7).await;
    assert_eq!(state(&end).result.unwrap().winner, Some(Mark::X));
}

#[tokio::test]
async fn a_retried_move_id_is_applied_once_even_on_another_instance() {
    let redis = RedisServer::start();
    let cfg = config(&redis);
    let procs = processes(&cfg, 2).await;
    let (a, b) = (&procs[0], &procs[1]);
    let (mut x, mut o, game) = seat_pair(a.connect().await, b.connect().await).await;
    let mv = json!({"type":"move","game":game,"cell":4,"mid":"same-id"});
    assert_eq!(ack_version(&x.request(mv.clone()).await), 3);
    match x.request(mv.clone()).await {
        ServerMsg::Ack { info, .. } => assert!(info.duplicate && info.version == Some(3)),
        other => panic!("{other:?}"),
    }
    let mut x2 = b.connect().await;
    x2.token = x.token.clone();
    x2.hello("ann").await;
    x2.join(&game).await;
    match x2.request(mv).await {
        ServerMsg::Ack { info, .. } => assert!(info.duplicate && info.version == Some(3)),
        other => panic!("{other:?}"),
    }
    // Still O's turn, one X on the board.
    ack_version(&o.play(&game, 0).await);
}

#[tokio::test]
async fn session_tokens_stay_out_of_logs_and_channels_and_cannot_be_forged() {
    let redis = RedisServer::start();
    let cfg = config(&redis);
    // Debug logs: the most a token could leak into.
    let proc = ServerProcess::start_with_env(&cfg, "logged", &[("RUST_LOG", "debug")]);
    proc.wait_ready().await;
    let mut pubsub = redis.client().get_async_pubsub().await.unwrap();
    pubsub
        .psubscribe(format!("{}*", cfg.key_prefix))
        .await
        .unwrap();
    let mut x = player(&proc, "ann").await;
    let token = x.token.clone().unwrap();
    assert_eq!(token.len(), 64);
    let game = x.create().await;
    let mut o = player(&proc, "bob").await;
    o.join(&game).await;
    ack_version(&x.play(&game, 4).await);
    x.request(json!({"type":"chat","game":game,"text":"hi"}))
        .await;

    // A token differing in one character is just unknown: a new session, no seat.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let mut eve = proc.connect().await;
    eve.token = Some(forged.clone());
    match eve.hello("eve").await {
        ServerMsg::Welcome {
            resumed, player, ..
        } => {
            assert!(!resumed);
            assert_ne!(Some(player.to_string()), x.player);
        }
        other => panic!("{other:?}"),
    }
    eve.join(&game).await;
    assert_eq!(
        error_code(&eve.play(&game, 0).await),
        ErrorCode::NotYourSeat
    );

    let mut stream = pubsub.on_message();
    let mut payloads = String::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        payloads.push_str(&String::from_utf8_lossy(m.get_payload_bytes()));
    }
    assert!(payloads.contains("\"moved\""), "the channel was watched");
    assert!(proc.log().contains("DEBUG"), "the log was at debug level");
    for secret in [&token, &forged] {
        assert!(!payloads.contains(secret.as_str()), "token on a channel");
        assert!(!proc.log().contains(secret.as_str()), "token in the log");
    }
    // Nor under its own name in Redis.
    let mut c = redis.sync_conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", cfg.key_prefix))
        .query(&mut c)
        .unwrap();
    assert!(keys.iter().all(|k| !k.contains(token.as_str())), "{keys:?}");
}

#[tokio::test]
async fn a_session_stays_alive_while_its_connection_is_open() {
    let redis = RedisServer::start();
    let mut cfg = config(&redis);
    cfg.session_ttl = Duration::from_secs(1);
    // Renewals every quarter of the TTL (250 ms), also while the connection is busy (it is: a
    // request every 200 ms, so it is never pinged).
    cfg.idle_timeout = Duration::from_millis(600);
    let a = Instance::start(cfg).await;
    let mut x = a.connect().await;
    x.hello("ann").await;
    let game = x.create().await;
    // Three lifetimes later, the still-connected session is alive: a reconnect resumes it.
    let deadline = Instant::now() + Duration::from_millis(3000);
    while Instant::now() < deadline {
        assert!(matches!(
            x.request(json!({"type":"ping"})).await,
            ServerMsg::Pong { .. }
        ));
        // Real time must pass: the session's TTL runs on Redis's clock.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut again = a.connect().await;
    again.token = x.token.clone();
    match again.hello("ann").await {
        ServerMsg::Welcome { resumed, .. } => assert!(resumed),
        other => panic!("{other:?}"),
    }
    let snap = again
        .recv_until(|m| matches!(m, ServerMsg::Snapshot { .. }))
        .await;
    assert!(
        matches!(snap, ServerMsg::Snapshot { game: g, you: tictactoe_protocol::Role::X, .. } if g.as_str() == game)
    );
}

/// Finding 2 of docs/reliability.md: an instance whose lease lapsed while it served its players
/// (its renewal waited behind other duties) had its presence swept, announced it again one
/// entry at a time before renewing again, lapsed again, and was swept again: its connected
/// players forfeited. Its lease is renewed on a timer of its own now, and it announces again
/// concurrently, once the one sweep of its lapsed lease has ended.
#[tokio::test]
async fn a_lapsed_lease_is_swept_once_and_its_presence_announced_again() {
    const GAMES: usize = 150;
    let redis = RedisServer::start();
    let proxy = crate::support::proxy::FreezeProxy::to_redis(redis.port).await;
    let mut cfg = config(&redis);
    cfg.lease_ttl = Duration::from_millis(900);
    cfg.max_waiting_games = GAMES;
    cfg.max_games_per_conn = GAMES + 1;
    let b = ServerProcess::start(&cfg, "b");
    let a = ServerProcess::start(
        &Config {
            redis_url: Some(proxy.url()),
            ..cfg.clone()
        },
        "a",
    );
    a.wait_ready().await;
    b.wait_ready().await;
    let keys = tictactoe::store::Keys::new(cfg.key_prefix.clone());
    // GAMES games made on B, each watched from A: GAMES presence entries of A's lease.
    let mut ann = player(&b, "ann").await;
    let mut games = Vec::new();
    for _ in 0..GAMES {
        games.push(ann.create().await);
    }
    let mut sue = player(&a, "sue").await;
    for g in &games {
        let reply = sue
            .request(json!({"type":"join","game":g,"spectate":true}))
            .await;
        assert!(matches!(reply, ServerMsg::Snapshot { .. }), "{reply:?}");
    }
    let mut redis_conn = redis.sync_conn();
    let leases: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys.instances())
        .arg(0)
        .arg(-1)
        .query(&mut redis_conn)
        .unwrap();
    let lease = leases
        .into_iter()
        .find(|l| l.starts_with("a"))
        .expect("A's lease");
    let announced = |conn: &mut redis::Connection| {
        games
            .iter()
            .filter(|g| {
                let fields: Vec<String> = redis::cmd("HKEYS")
                    .arg(keys.game_presence(&GameId::try_from(g.to_string()).unwrap()))
                    .query(conn)
                    .unwrap();
                fields.iter().any(|f| f.starts_with(&format!("c|{lease}|")))
            })
            .count()
    };
    assert_eq!(announced(&mut redis_conn), GAMES);

    // A stalls long enough for its lease to lapse and be claimed by B, then goes on over a
    // slow link (each entry announced one at a time would take longer than the lease).
    proxy.set_delay(Duration::from_millis(10));
    a.pause();
    let _: i64 = redis::cmd("ZADD")
        .arg(keys.instances())
        .arg(1)
        .arg(&lease)
        .query(&mut redis_conn)
        .unwrap();
    let swept = |log: String| log.matches("swept a lapsed lease's presence").count();
    crate::support::eventually("the lapsed lease swept", || {
        let n = swept(b.log());
        async move { (n > 0).then_some(()) }
    })
    .await;
    a.resume();
    // Then announced again in full, and kept: the lease is renewed throughout.
    crate::support::eventually("A's presence announced again", || {
        let n = announced(&mut redis_conn);
        async move { (n == GAMES).then_some(()) }
    })
    .await;
    tokio::time::sleep(cfg.lease_ttl * 3).await;
    assert_eq!(announced(&mut redis_conn), GAMES, "swept again after");
    assert_eq!(
        swept(b.log()) + swept(a.log()),
        1,
        "A's lease was swept more than once:\n{}\n{}",
        a.log(),
        b.log()
    );
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(keys.instances())
        .arg(&lease)
        .query(&mut redis_conn)
        .unwrap();
    assert!(score.is_some_and(|s| s > 1.0), "A's lease is live again");
    drop(sue);
}
