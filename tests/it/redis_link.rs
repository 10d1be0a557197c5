//! A sick link to Redis (issue 13): connections that hang without an error are replaced, an
//! instance that cannot reach Redis at all sends its players elsewhere before anyone forfeits,
//! and a write that timed out is honestly reported as of unknown outcome. Redis, the instances
//! and the hanging proxy between them are real; timeouts are shortened through settings.

use crate::support::client::{ack_version, error_code, seat_pair, try_connect};
use crate::support::http::http_get;
use crate::support::instances::{Instance, test_config};
use crate::support::proxy::FreezeProxy;
use crate::support::redis::RedisServer;
use serde_json::json;
use std::time::{Duration, Instant};
use tictactoe::config::Config;
use tictactoe_protocol::{ErrorCode, ServerMsg, close};

fn quick(redis: &RedisServer) -> Config {
    let mut c = test_config(Some(redis));
    c.redis_timeout = Duration::from_millis(300);
    c
}

fn conceded(msgs: &[ServerMsg]) -> bool {
    msgs.iter().any(|m| matches!(m, ServerMsg::Conceded { .. }))
}

#[tokio::test]
async fn a_hung_redis_link_is_replaced_and_its_players_play_on() {
    let redis = RedisServer::start();
    let proxy = FreezeProxy::to_redis(redis.port).await;
    let mut cfg = quick(&redis);
    // Healing, not giving up, is what this test is about.
    cfg.redis_lost = Duration::from_secs(20);
    let b = Instance::start(cfg.clone()).await;
    let a = Instance::start(Config {
        redis_url: Some(proxy.url()),
        ..cfg
    })
    .await;
    let (mut x, mut o, game) = seat_pair(a.connect().await, b.connect().await).await;
    ack_version(&x.play(&game, 0).await); // v3
    o.event(&game, 3).await;

    // Every connection between A and Redis hangs; new ones would work.
    let before = proxy.accepted();
    proxy.freeze_open();
    ack_version(&o.play(&game, 4).await); // v4, on the healthy instance

    // X, on A, retries its move with the same mid while it meets `unavailable`: A replaces
    // its hung command connection and the move goes through, exactly once.
    let mv = json!({"type":"move","game":game,"cell":8,"mid":"m-x-2"});
    assert_eq!(ack_version(&x.request_until_available(mv).await), 5);
    // A's subscription was hung too: it was replaced, and X missed nothing.
    x.event(&game, 4).await;
    x.event(&game, 5).await;
    o.event(&game, 5).await;
    ack_version(&o.play(&game, 1).await); // v6
    x.event(&game, 6).await;
    a.wait_ready().await;
    // One fresh connection: on one Redis it carries both the commands and the pub/sub.
    assert!(proxy.accepted() > before, "a fresh connection was made");
}

#[tokio::test]
async fn an_instance_cut_off_from_redis_sends_its_players_elsewhere_and_nobody_forfeits() {
    let redis = RedisServer::start();
    let proxy = FreezeProxy::to_redis(redis.port).await;
    let mut cfg = quick(&redis);
    cfg.redis_lost = Duration::from_millis(1000);
    cfg.forfeit_grace = Duration::from_millis(2500);
    let b = Instance::start(cfg.clone()).await;
    let a = Instance::start(Config {
        redis_url: Some(proxy.url()),
        ..cfg.clone()
    })
    .await;
    let (mut x, mut o, game) = seat_pair(a.connect().await, b.connect().await).await;
    ack_version(&x.play(&game, 4).await); // v3
    o.event(&game, 3).await;

    // A can no longer reach Redis at all: open connections hang, new ones too.
    proxy.hang_new(true);
    proxy.freeze_open();
    let cut = Instant::now();
    let frame = x.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), close::SERVICE_RESTART);
    assert!(
        cut.elapsed() < cfg.redis_lost + Duration::from_secs(2),
        "closed after {:?}",
        cut.elapsed()
    );
    // A takes nobody new, and says it is not ready.
    assert_eq!(try_connect(&a.ws_url(), &[]).await.err(), Some(503));
    assert_eq!(http_get(a.addr, "/readyz").await.unwrap().0, 503);

    // X resumes on B, as the page does on 1012.
    let token = x.token.clone();
    let mut x = b.connect().await;
    x.token = token;
    match x.hello_resume("ann", &[(&game, 3)]).await {
        ServerMsg::Welcome { resumed, .. } => assert!(resumed),
        other => panic!("{other:?}"),
    }
    // Past the forfeit grace, with A's lease expired and swept meanwhile: nobody forfeits.
    let quiet = o
        .drain_for(cfg.forfeit_grace + Duration::from_secs(1))
        .await;
    assert!(!conceded(&quiet), "{quiet:?}");
    ack_version(&o.play(&game, 0).await); // v4
    ack_version(&x.play(&game, 8).await); // v5

    // Once A reaches Redis again it takes players again.
    proxy.hang_new(false);
    a.wait_ready().await;
    let mut c = a.connect().await;
    c.hello("cy").await;
    // Both players are present in the game, which goes on.
    match c.join(&game).await {
        ServerMsg::Snapshot {
            presence, state, ..
        } => {
            assert!(presence.players.x && presence.players.o, "{presence:?}");
            assert_eq!(state.board.to_string(), "O...X...X");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_move_that_timed_out_in_a_redis_stall_may_still_apply_and_its_retry_says_so() {
    let redis = RedisServer::start();
    let a = Instance::start(quick(&redis)).await;
    let (mut x, mut o, game) = seat_pair(a.connect().await, a.connect().await).await;

    redis.pause();
    let mv = json!({"type":"move","game":game,"cell":4,"mid":"m-stalled"});
    let answer = x.request(mv.clone()).await;
    redis.resume();
    match &answer {
        ServerMsg::Error { code, message, .. } => {
            assert_eq!(*code, ErrorCode::Unavailable);
            assert!(message.contains("may or may not"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Redis ran the move it had been sent once it went on: `unavailable` did not mean
    // "nothing changed".
    let applied = o.event(&game, 3).await;
    assert_eq!(applied.state().unwrap().board.to_string(), "....X....");
    // The documented way to learn the outcome: send the same move with the same mid.
    match x.request_until_available(mv).await {
        ServerMsg::Ack { info, .. } => {
            assert!(info.duplicate, "{info:?}");
            assert_eq!(info.version, Some(3));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_hello_met_by_a_redis_stall_can_be_retried_past_the_hello_timeout() {
    let redis = RedisServer::start();
    let mut cfg = quick(&redis);
    cfg.hello_timeout = Duration::from_millis(1000);
    // Not the outage that sends everyone elsewhere: a stall the instance waits out.
    cfg.redis_lost = Duration::from_secs(30);
    let a = Instance::start(cfg.clone()).await;
    let mut ann = a.connect().await;
    let mut bob = a.connect().await;

    redis.pause();
    let hello = json!({"type": "hello", "name": "ann"});
    let unavailable = |m: &ServerMsg| error_code(m) == ErrorCode::Unavailable;
    assert!(unavailable(&bob.request(hello.clone()).await));
    // Ann retries her hello, as told, for three times the hello timeout.
    let since = Instant::now();
    while since.elapsed() < cfg.hello_timeout * 3 {
        let reply = ann.request(hello.clone()).await;
        assert!(unavailable(&reply), "{reply:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    redis.resume();
    match ann.request_until_available(hello).await {
        ServerMsg::Welcome { .. } => {}
        other => panic!("{other:?}"),
    }
    // Bob never said hello again: the wait for one ran out.
    let frame = bob.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), close::POLICY);
    assert_eq!(frame.reason.as_str(), "no hello");
}
