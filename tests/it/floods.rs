//! Floods by third parties and by one session's many connections (issue 19): spectators
//! churning in and out of a game must not cost a connected player the game, spectating is
//! budgeted per session and per address, and renames per session and per address, in Redis.

use crate::support::client::{Ws, error_code, player, retry_after, seat_pair, try_connect};
use crate::support::instances::{Instance, test_config, two_instances};
use crate::support::redis::RedisServer;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tictactoe_protocol::{ErrorCode, ServerMsg};

fn is_presence(m: &ServerMsg) -> bool {
    matches!(m, ServerMsg::Presence { .. })
}

#[tokio::test]
async fn spectators_churning_cannot_make_a_connected_player_forfeit() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    // The documented budgets and presence pace, a short queue and a short grace: a player
    // closed as slow would forfeit within the test.
    let defaults = tictactoe::config::Config::default();
    config.spectate_rate = defaults.spectate_rate;
    config.spectate_burst = defaults.spectate_burst;
    config.ip_spectate_rate = defaults.ip_spectate_rate;
    config.ip_spectate_burst = defaults.ip_spectate_burst;
    config.outbound_queue = 32;
    config.forfeit_grace = Duration::from_millis(1500);
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config).await;
    // X reads slowly (a paused tab): nothing while the spectators churn.
    let x = Ws::connect_small_buffer(&a.ws_url(), a.addr).await;
    let (mut x, mut o, game) = seat_pair(x, b.connect().await).await;
    x.request(json!({"type":"ping"})).await;

    // 20 sessions from one address come and go as fast as they are let.
    let stop = Arc::new(AtomicBool::new(false));
    let (joined, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut churners = Vec::new();
    for i in 0..20 {
        let at = if i % 2 == 0 { a.ws_url() } else { b.ws_url() };
        let (stop, joined, refused, game) =
            (stop.clone(), joined.clone(), refused.clone(), game.clone());
        churners.push(tokio::spawn(async move {
            let mut s = Ws::connect(&at).await;
            s.hello(&format!("churn{i}")).await;
            while !stop.load(Ordering::Relaxed) {
                let r = s
                    .request(json!({"type":"join","game":game,"spectate":true}))
                    .await;
                match r {
                    ServerMsg::Snapshot { .. } => {
                        joined.fetch_add(1, Ordering::Relaxed);
                        s.request(json!({"type":"leave","game":game})).await;
                    }
                    other => {
                        assert_eq!(error_code(&other), ErrorCode::RateLimited, "{other:?}");
                        refused.fetch_add(1, Ordering::Relaxed);
                        let wait = retry_after(&other).min(200);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                }
            }
            s.close().await;
        }));
    }
    let churn = Duration::from_secs(5);
    tokio::time::sleep(churn).await;
    stop.store(true, Ordering::Relaxed);
    for c in churners {
        c.await.unwrap();
    }
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "the spectating budgets refused nobody ({} joins)",
        joined.load(Ordering::Relaxed)
    );
    // Past the forfeit grace: had X been closed as slow, O would have won by now.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // X is still connected and reads its backlog: a pace of presence, not every change, and
    // none of it a close.
    let backlog = x.drain_for(Duration::from_millis(500)).await;
    let presence = backlog.iter().filter(|m| is_presence(m)).count();
    let paced = (churn + Duration::from_secs(3)).as_millis() / 250 + 4;
    assert!(
        presence as u128 <= paced,
        "{presence} presence messages in {churn:?} of churn"
    );
    assert!(
        !backlog
            .iter()
            .any(|m| matches!(m, ServerMsg::Conceded { .. })),
        "X forfeited while connected: {backlog:?}"
    );
    // The latest presence reached X: no spectator left, both players here.
    match backlog.iter().rev().find(|m| is_presence(m)) {
        Some(ServerMsg::Presence { presence, .. }) => {
            assert_eq!(presence.spectators, 0, "{presence:?}");
            assert!(presence.players.x && presence.players.o, "{presence:?}");
        }
        _ => panic!("no presence reached X: {backlog:?}"),
    }
    // And the game goes on: X moves, O sees it.
    let ack = x.play(&game, 4).await;
    assert!(matches!(ack, ServerMsg::Ack { .. }), "{ack:?}");
    let moved = o.event(&game, 3).await;
    assert!(matches!(moved, ServerMsg::Moved { .. }), "{moved:?}");
}

#[tokio::test]
async fn spectating_is_budgeted_per_session_and_per_address_across_instances() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.spectate_rate = 0.01;
    config.spectate_burst = 3;
    config.ip_spectate_rate = 0.01;
    config.ip_spectate_burst = 5;
    config.trusted_proxies = vec!["127.0.0.1".into()];
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config).await;
    let mut host = player(&a, "host").await;
    let game = host.create().await;
    let from = [("x-forwarded-for", "198.51.100.20")];
    let watch = json!({"type":"join","game":game,"spectate":true});
    let leave = json!({"type":"leave","game":game});

    // One session: three joins, on two instances, then refused.
    let mut s1 = try_connect(&a.ws_url(), &from).await.unwrap();
    s1.hello("s1").await;
    for _ in 0..2 {
        assert!(matches!(
            s1.request(watch.clone()).await,
            ServerMsg::Snapshot { .. }
        ));
        s1.request(leave.clone()).await;
    }
    let mut s1b = try_connect(&b.ws_url(), &from).await.unwrap();
    s1b.token = s1.token.clone();
    s1b.hello("s1").await;
    assert!(matches!(
        s1b.request(watch.clone()).await,
        ServerMsg::Snapshot { .. }
    ));
    s1b.request(leave.clone()).await;
    let refused = s1b.request(watch.clone()).await;
    assert_eq!(error_code(&refused), ErrorCode::RateLimited, "{refused:?}");
    assert!(retry_after(&refused) > 0);

    // Other sessions of the address share its five.
    let mut s2 = try_connect(&b.ws_url(), &from).await.unwrap();
    s2.hello("s2").await;
    for _ in 0..2 {
        assert!(matches!(
            s2.request(watch.clone()).await,
            ServerMsg::Snapshot { .. }
        ));
        s2.request(leave.clone()).await;
    }
    let refused = s2.request(watch.clone()).await;
    assert_eq!(error_code(&refused), ErrorCode::RateLimited, "{refused:?}");

    // Another address is not held back, and the game's players are never charged.
    let mut s3 = try_connect(&a.ws_url(), &[("x-forwarded-for", "203.0.113.5")])
        .await
        .unwrap();
    s3.hello("s3").await;
    assert!(matches!(
        s3.request(watch.clone()).await,
        ServerMsg::Snapshot { .. }
    ));
    for _ in 0..5 {
        assert!(matches!(host.join(&game).await, ServerMsg::Snapshot { .. }));
    }
}

#[tokio::test]
async fn renames_are_budgeted_per_session_and_a_lost_race_is_retried() {
    let (_redis, a, b) = two_instances().await;
    let (mut x, mut o, game) = seat_pair(a.connect().await, b.connect().await).await;
    // Twenty connections of X's session, on both instances, rename at once.
    let mut conns = Vec::new();
    for i in 0..20 {
        let at = if i % 2 == 0 { &a } else { &b };
        let mut c = at.connect().await;
        c.token = x.token.clone();
        c.hello("ann").await;
        conns.push(c);
    }
    let replies =
        futures_util::future::join_all(conns.iter_mut().enumerate().map(|(i, c)| async move {
            c.request(json!({"type":"rename","name":format!("Ann{i}")}))
                .await
        }))
        .await;
    let mut accepted = 0;
    for r in &replies {
        match r {
            ServerMsg::Ack { .. } => accepted += 1,
            other => assert_eq!(
                error_code(other),
                ErrorCode::RateLimited,
                "a rename answered otherwise than accepted or limited: {other:?}"
            ),
        }
    }
    // The session's burst, whatever the connections and instances.
    assert_eq!(accepted, 3, "{replies:?}");
    // The opponent saw as many renames as were accepted, and no more.
    x.request(json!({"type":"ping"})).await;
    let seen = o.drain_for(Duration::from_millis(1500)).await;
    let renamed = seen
        .iter()
        .filter(|m| matches!(m, ServerMsg::Renamed { .. }))
        .count();
    assert_eq!(renamed, 3, "{seen:?}");
    let _ = game;
}
