//! A `create` or a `chat` whose outcome is unknown (answered `unavailable`, or lost with the
//! connection) is sent again with the same client id, on any instance: it takes effect once,
//! and the retry is answered as the first attempt was, marked `duplicate`.

use crate::support::client::{ack_version, error_code, player, reconnected, seat_pair};
use crate::support::instances::{Instance, test_config, two_instances};
use crate::support::redis::RedisServer;
use serde_json::json;
use tictactoe_protocol::{ErrorCode, Role, ServerMsg};

#[tokio::test]
async fn a_create_retried_with_its_cid_on_another_instance_is_answered_with_the_same_game() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    // A retry taken for a new game would be refused: one waiting game is all Ann may have.
    config.max_waiting_games = 1;
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config).await;
    let mut ann = player(&a, "ann").await;
    let create = json!({"type":"create","cid":"c-7f3a"});
    let game = match ann.request(create.clone()).await {
        ServerMsg::Snapshot {
            game, duplicate, ..
        } => {
            assert!(!duplicate);
            game
        }
        other => panic!("{other:?}"),
    };
    let mut again = reconnected(&ann, &b, "ann").await;
    match again.request(create.clone()).await {
        ServerMsg::Snapshot {
            game: g,
            you,
            duplicate,
            version,
            ..
        } => {
            assert_eq!(g, game);
            assert_eq!(you, Role::X);
            assert!(duplicate);
            assert_eq!(version, 1, "nothing happened to the game");
        }
        other => panic!("{other:?}"),
    }
    // Asked again where it is already joined: the same answer.
    match ann.request(create).await {
        ServerMsg::Snapshot {
            game: g, duplicate, ..
        } => assert!(g == game && duplicate),
        other => panic!("{other:?}"),
    }
    // Another cid is another game, and that one is over the cap.
    assert_eq!(
        error_code(&again.request(json!({"type":"create","cid":"c-2"})).await),
        ErrorCode::TooManyWaiting
    );
    let mut c = redis.sync_conn();
    let waiting: i64 = redis::cmd("ZCARD")
        .arg(format!(
            "{}player:{{{}}}:waiting",
            a.config.key_prefix,
            ann.player.as_deref().unwrap()
        ))
        .query(&mut c)
        .unwrap();
    assert_eq!(waiting, 1);
}

#[tokio::test]
async fn a_chat_line_retried_with_its_lid_on_another_instance_is_said_once() {
    let (redis, a, b) = two_instances().await;
    let (mut x, mut o, game) = seat_pair(a.connect().await, b.connect().await).await;
    let say = json!({"type":"chat","game":game,"text":"good luck","lid":"l-01"});
    let first = match x.request(say.clone()).await {
        ServerMsg::Ack { info, .. } => {
            assert!(!info.duplicate);
            info.id.expect("the line's id")
        }
        other => panic!("{other:?}"),
    };
    let heard = o.recv_until(|m| matches!(m, ServerMsg::Chat { .. })).await;
    assert!(matches!(&heard, ServerMsg::Chat { line, .. } if line.id == first));

    let mut again = reconnected(&x, &b, "ann").await;
    again.join(&game).await;
    match again.request(say).await {
        ServerMsg::Ack { info, .. } => {
            assert!(info.duplicate);
            assert_eq!(info.id.as_deref(), Some(first.as_str()));
        }
        other => panic!("{other:?}"),
    }
    // The same id in the lobby is another line.
    let lobby = json!({"type":"chat","text":"anyone?","lid":"l-01"});
    let said = |m: ServerMsg| match m {
        ServerMsg::Ack { info, .. } => (info.id.expect("an id"), info.duplicate),
        other => panic!("{other:?}"),
    };
    let (lobby_id, dup) = said(x.request(lobby.clone()).await);
    assert!(!dup && lobby_id != first);
    assert_eq!(said(again.request(lobby).await), (lobby_id, true));

    // One line in the game, whoever joins later.
    let mut sue = player(&a, "sue").await;
    match sue.join(&game).await {
        ServerMsg::Snapshot { chat, .. } => {
            let ids: Vec<_> = chat.iter().map(|l| l.id.as_str()).collect();
            assert_eq!(ids, [first.as_str()]);
        }
        other => panic!("{other:?}"),
    }
    // Remembered beside the game's chat (same hash tag), for a bounded time.
    let key = format!(
        "{}game:{{{game}}}:lid:{}:{}",
        a.config.key_prefix,
        x.player.as_deref().unwrap(),
        "6c2d3031"
    );
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query(&mut redis.sync_conn())
        .unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "{key}: {ttl}");
}

#[tokio::test]
async fn malformed_client_ids_are_refused_and_the_connection_stays_usable() {
    let (_redis, a, _b) = two_instances().await;
    let mut ann = player(&a, "ann").await;
    let long = "x".repeat(65);
    for bad in [json!(""), json!(long), json!(7), json!({"id": 1})] {
        for msg in [
            json!({"type":"create","cid":bad}),
            json!({"type":"chat","text":"hi","lid":bad}),
        ] {
            let reply = ann.request(msg.clone()).await;
            assert_eq!(error_code(&reply), ErrorCode::BadRequest, "{msg}");
        }
    }
    let longest = "y".repeat(64);
    assert!(matches!(
        ann.request(json!({"type":"chat","text":"hi","lid":longest}))
            .await,
        ServerMsg::Ack { .. }
    ));
    assert!(matches!(
        ann.request(json!({"type":"create","cid":"é".repeat(32)}))
            .await,
        ServerMsg::Snapshot { .. }
    ));
}

/// A game's list of move ids now starts with its count; one kept before (no count) goes on
/// working: its moves are still recognised when retried, and the list is counted once.
#[tokio::test]
async fn move_ids_listed_before_their_count_was_kept_still_make_retries_duplicates() {
    let redis = RedisServer::start();
    let config = test_config(Some(&redis));
    let a = Instance::start(config.clone()).await;
    let (mut x, mut o, game) = seat_pair(a.connect().await, a.connect().await).await;
    let mv = |cell: u8, mid: &str| json!({"type":"move","game":game,"cell":cell,"mid":mid});
    assert_eq!(ack_version(&x.request(mv(0, "m-1")).await), 3);
    o.play(&game, 4).await;
    let key = format!("{}game:{{{game}}}", config.key_prefix);
    let field = format!("m:{}", x.player.clone().expect("hello gave an id"));
    let mut c = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let listed: String = redis::cmd("HGET")
        .arg(&key)
        .arg(&field)
        .query(&mut c)
        .unwrap();
    assert!(listed.starts_with("1,"), "{listed}");
    // As an older server kept it.
    let old = listed.trim_start_matches('1');
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg(&field)
        .arg(old)
        .query(&mut c)
        .unwrap();

    assert_eq!(ack_version(&x.request(mv(1, "m-2")).await), 5);
    let listed: String = redis::cmd("HGET")
        .arg(&key)
        .arg(&field)
        .query(&mut c)
        .unwrap();
    assert!(listed.starts_with("2,"), "{listed}");
    for (cell, mid, version) in [(0, "m-1", 3), (1, "m-2", 5)] {
        match x.request(mv(cell, mid)).await {
            ServerMsg::Ack { info, .. } => {
                assert!(info.duplicate, "{mid}");
                assert_eq!(info.version, Some(version), "{mid}");
            }
            other => panic!("{mid}: {other:?}"),
        }
    }
}
