//! Playing games across instances: the core promises of the server.

use crate::support::backend::Backend;
use crate::support::client::{Ws, ack_version, error_code, player};
use crate::support::instances::{Instance, test_config, two_instances, two_instances_on};
use crate::support::redis::{RedisServer, client_list};
use crate::support::{WAIT, eventually};
use futures_util::StreamExt;
use serde_json::json;
use tictactoe_protocol::{ErrorCode, Role, ServerMsg};
use tictactoe_rules::{EndReason, Mark, Status};

fn state_of(m: &ServerMsg) -> &tictactoe_rules::GameState {
    m.state().unwrap_or_else(|| panic!("no state in {m:?}"))
}

#[tokio::test]
async fn x_on_instance_a_beats_o_on_instance_b() {
    x_on_instance_a_beats_o_on_instance_b_on(Backend::single()).await;
}

pub async fn x_on_instance_a_beats_o_on_instance_b_on(backend: Backend) {
    let (a, b) = two_instances_on(&backend).await;
    let mut x = player(&a, "ann").await;
    let mut o = player(&b, "bob").await;
    let game = x.create().await;
    match o.join(&game).await {
        ServerMsg::Snapshot {
            you,
            version,
            state,
            ..
        } => {
            assert_eq!(you, Role::O);
            assert_eq!(version, 2);
            assert_eq!(state.status, Status::Playing);
            assert_eq!(state.players.o.as_deref(), Some("bob"));
        }
        other => panic!("{other:?}"),
    }
    // X learns that O sat down, through Redis pub/sub.
    assert!(matches!(
        x.event(&game, 2).await,
        ServerMsg::Seated { mark: Mark::O, .. }
    ));

    // X: 0, 1, 2 (top row); O: 3, 4.
    let moves = [(0, true), (3, false), (1, true), (4, false), (2, true)];
    let mut last = None;
    for (i, (cell, is_x)) in moves.into_iter().enumerate() {
        let version = 3 + i as u64;
        let (mover, other) = if is_x {
            (&mut x, &mut o)
        } else {
            (&mut o, &mut x)
        };
        assert_eq!(ack_version(&mover.play(&game, cell).await), version);
        for ws in [mover, other] {
            let event = ws.event(&game, version).await;
            match &event {
                ServerMsg::Moved { cell: c, mark, .. } => {
                    assert_eq!(c.index() as i64, cell);
                    assert_eq!(*mark, if is_x { Mark::X } else { Mark::O });
                }
                other => panic!("{other:?}"),
            }
            last = Some(event);
        }
    }
    let last = last.unwrap();
    let state = state_of(&last);
    assert_eq!(state.board.to_string(), "XXXOO....");
    assert_eq!(state.status, Status::Finished);
    let result = state.result.unwrap();
    assert_eq!(
        (result.winner, result.reason),
        (Some(Mark::X), EndReason::Line)
    );
    assert_eq!(result.line, Some([0, 1, 2]));
    // Play stops after the win.
    assert_eq!(error_code(&o.play(&game, 8).await), ErrorCode::GameOver);
}

#[tokio::test]
async fn a_draw_then_a_rematch_that_needs_both_players() {
    let (_redis, a, b) = two_instances().await;
    let mut x = player(&a, "ann").await;
    let mut o = player(&b, "bob").await;
    let game = x.create().await;
    o.join(&game).await;
    // X O X / X O O / O X X
    for (i, cell) in [0, 1, 2, 4, 3, 5, 7, 6, 8].into_iter().enumerate() {
        let ws = if i % 2 == 0 { &mut x } else { &mut o };
        ack_version(&ws.play(&game, cell).await);
    }
    let end = x.event(&game, 11).await;
    assert_eq!(state_of(&end).result.unwrap().reason, EndReason::Draw);

    // One player alone cannot reset the board.
    assert_eq!(
        ack_version(&x.request(json!({"type":"rematch","game":game})).await),
        12
    );
    assert!(matches!(
        o.event(&game, 12).await,
        ServerMsg::RematchRequested { mark: Mark::X, .. }
    ));
    assert_eq!(error_code(&x.play(&game, 0).await), ErrorCode::GameOver);
    // Asking again (a retry, a second click) changes nothing: a duplicate at the same version.
    match x.request(json!({"type":"rematch","game":game})).await {
        ServerMsg::Ack { info, .. } => {
            assert_eq!((info.version, info.duplicate), (Some(12), true));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ack_version(&o.request(json!({"type":"rematch","game":game})).await),
        13
    );
    match x.event(&game, 13).await {
        ServerMsg::RoundStarted { round, state, .. } => {
            assert_eq!(round, 2);
            assert_eq!(state.turn, Mark::O, "the second round starts with O");
            assert_eq!(state.board.to_string(), ".........");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ack_version(&o.play(&game, 4).await), 14);
}

/// Finding 3 of docs/reliability.md: a move retried after an outage, whose round ended and
/// whose next round began meanwhile, was played on the new round's board, which its player
/// never saw. Its `version` (the board it was chosen on) now tells the server so.
#[tokio::test]
async fn a_move_chosen_in_an_earlier_round_is_not_played_in_the_next() {
    let (_redis, a, b) = two_instances().await;
    let mut x = player(&a, "ann").await;
    let mut o = player(&b, "bob").await;
    let game = x.create().await;
    o.join(&game).await;
    let mv = |cell: i64, mid: &str, version: u64| json!({"type":"move","game":game,"cell":cell,"mid":mid,"version":version});
    // X wins round 1: X 0, O 3, X 1, O 4 (mid o-4), X 2; v3..v7.
    assert_eq!(ack_version(&x.request(mv(0, "x-0", 2)).await), 3);
    assert_eq!(ack_version(&o.request(mv(3, "o-3", 3)).await), 4);
    assert_eq!(ack_version(&x.request(mv(1, "x-1", 4)).await), 5);
    assert_eq!(ack_version(&o.request(mv(4, "o-4", 5)).await), 6);
    assert_eq!(ack_version(&x.request(mv(2, "x-2", 6)).await), 7);
    ack_version(&x.request(json!({"type":"rematch","game":game})).await);
    assert_eq!(
        ack_version(&o.request(json!({"type":"rematch","game":game})).await),
        9
    );
    let started = o.event(&game, 9).await;
    assert_eq!(state_of(&started).began, 9);
    assert_eq!(state_of(&started).turn, Mark::O);

    // O's move chosen on round 1's board (v7), its first send lost: round 2 is O's to open,
    // and cell 5 is free, yet the move is not played.
    assert_eq!(
        error_code(&o.request(mv(5, "o-late", 7)).await),
        ErrorCode::GameOver
    );
    // A retry of a move that was played in round 1 is still acknowledged as it was.
    assert_eq!(ack_version(&o.request(mv(4, "o-4", 5)).await), 6);
    // Chosen on round 2's board, or sent without a version: played.
    assert_eq!(ack_version(&o.request(mv(5, "o-5", 9)).await), 10);
    assert_eq!(ack_version(&x.play(&game, 0).await), 11);
    let board = x.event(&game, 11).await;
    assert_eq!(state_of(&board).board.to_string(), "X....O...");
}

/// Finding 10 of docs/reliability.md: within a round, a move chosen on a board an event had
/// not reached yet (here: X has not seen O's reply) was played on the board as it was.
#[tokio::test]
async fn a_move_chosen_before_the_last_move_reached_its_board_is_stale() {
    let (_redis, a, b) = two_instances().await;
    let mut x = player(&a, "ann").await;
    let mut o = player(&b, "bob").await;
    let game = x.create().await;
    o.join(&game).await;
    let mv = |cell: i64, mid: &str, version: u64| json!({"type":"move","game":game,"cell":cell,"mid":mid,"version":version});
    assert_eq!(ack_version(&x.request(mv(4, "x-1", 2)).await), 3);
    assert_eq!(ack_version(&o.request(mv(0, "o-1", 3)).await), 4);
    // X chose on v3, before O's move (v4) reached its board.
    assert_eq!(
        error_code(&x.request(mv(8, "x-2", 3)).await),
        ErrorCode::StaleBoard
    );
    // Chosen on v4: played.
    assert_eq!(ack_version(&x.request(mv(8, "x-3", 4)).await), 5);
    let moved = o.event(&game, 5).await;
    assert_eq!(state_of(&moved).moved, 5);
    assert_eq!(state_of(&moved).board.to_string(), "O...X...X");
}

#[tokio::test]
async fn racing_moves_from_two_instances_are_accepted_exactly_once_each_time() {
    racing_moves_on(Backend::single(), 300).await;
}

pub async fn racing_moves_on(backend: Backend, rounds: usize) {
    let (a, b) = two_instances_on(&backend).await;
    // X is one session connected to both instances; O plays from instance B.
    let mut xa = player(&a, "ann").await;
    let mut xb = b.connect().await;
    xb.token = xa.token.clone();
    xb.hello("ann").await;
    let mut o = player(&b, "bob").await;
    let game = xa.create().await;
    let joined = o.join(&game).await;
    xb.join(&game).await;

    let mut version = 2;
    let mut state = state_of(&joined).clone();
    let mut races = 0;
    while races < rounds {
        if state.status == Status::Finished {
            ack_version(&xa.request(json!({"type":"rematch","game":game})).await);
            ack_version(&o.request(json!({"type":"rematch","game":game})).await);
            version += 2;
        } else {
            let free: Vec<i64> = (0..9)
                .filter(|&c| {
                    state
                        .board
                        .get(tictactoe_rules::Cell::new(c).unwrap())
                        .is_none()
                })
                .collect();
            if state.turn == Mark::O {
                ack_version(&o.play(&game, free[0]).await);
            } else {
                // X moves from both instances at once, to different cells when it can.
                let (c1, c2) = (free[0], *free.last().unwrap());
                let (r1, r2) = tokio::join!(xa.play(&game, c1), xb.play(&game, c2));
                let acks: Vec<u64> = [&r1, &r2]
                    .into_iter()
                    .filter(|r| matches!(r, ServerMsg::Ack { .. }))
                    .map(ack_version)
                    .collect();
                assert_eq!(acks, vec![version + 1], "race {races}: {r1:?} / {r2:?}");
                let refused = if matches!(r1, ServerMsg::Ack { .. }) {
                    &r2
                } else {
                    &r1
                };
                let code = error_code(refused);
                assert!(
                    matches!(
                        code,
                        ErrorCode::NotYourTurn | ErrorCode::CellOccupied | ErrorCode::GameOver
                    ),
                    "{code:?}"
                );
                races += 1;
            }
            version += 1;
        }
        state = state_of(&o.event(&game, version).await).clone();
    }
    // Every version was produced exactly once: the log has no gap and no repeat.
    let log = format!("{}game:{{{game}}}:log", a.config.key_prefix);
    let mut c = backend.conn_for(&log);
    let ids: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&log)
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    let versions: Vec<u64> = ids
        .iter()
        .map(|(id, _)| id.trim_start_matches("0-").parse().unwrap())
        .collect();
    let expected: Vec<u64> = (version + 1 - versions.len() as u64..=version).collect();
    assert_eq!(versions, expected);
}

#[tokio::test]
async fn bad_requests_get_typed_errors_and_the_connection_stays_usable() {
    let (_redis, a, b) = two_instances().await;
    let mut x = player(&a, "ann").await;
    let mut o = player(&b, "bob").await;
    let mut eve = player(&a, "eve").await;
    let game = x.create().await;
    o.join(&game).await;
    eve.join(&game).await;

    assert_eq!(error_code(&o.play(&game, 0).await), ErrorCode::NotYourTurn);
    ack_version(&x.play(&game, 4).await);
    assert_eq!(error_code(&o.play(&game, 4).await), ErrorCode::CellOccupied);
    assert_eq!(
        error_code(&o.play(&game, 9).await),
        ErrorCode::CellOutOfRange
    );
    assert_eq!(
        error_code(&o.play(&game, -1).await),
        ErrorCode::CellOutOfRange
    );
    assert_eq!(
        error_code(&o.request(json!({"type":"join","game":"nosuchgame"})).await),
        ErrorCode::UnknownGame
    );
    assert_eq!(
        error_code(&eve.play(&game, 0).await),
        ErrorCode::NotYourSeat
    );
    assert_eq!(
        error_code(
            &o.request(json!({"type":"move","game":"othergame","cell":1}))
                .await
        ),
        ErrorCode::NotInGame
    );
    assert_eq!(
        error_code(&o.request(json!({"type":"teleport"})).await),
        ErrorCode::UnknownType
    );
    assert_eq!(
        error_code(&o.request(json!({"type":"move","game":game})).await),
        ErrorCode::BadRequest
    );
    o.send_text("{this is not json").await;
    let reply = o.recv_until(|m| matches!(m, ServerMsg::Error { .. })).await;
    assert_eq!(error_code(&reply), ErrorCode::BadJson);

    // Still usable: a ping answers and a legal move goes through.
    assert!(matches!(
        o.request(json!({"type":"ping"})).await,
        ServerMsg::Pong { .. }
    ));
    ack_version(&o.play(&game, 0).await);
}

#[tokio::test]
async fn nothing_but_hello_is_accepted_before_hello() {
    let redis = RedisServer::start();
    let a = Instance::start(test_config(Some(&redis))).await;
    let mut ws = a.connect().await;
    assert_eq!(
        error_code(&ws.request(json!({"type":"create"})).await),
        ErrorCode::HelloRequired
    );
    assert!(matches!(
        ws.request(json!({"type":"ping"})).await,
        ServerMsg::Pong { .. }
    ));
    ws.hello("ann").await;
    assert_eq!(
        error_code(&ws.request(json!({"type":"hello"})).await),
        ErrorCode::BadRequest
    );
}

#[tokio::test]
async fn a_spectator_sees_every_move_but_cannot_move() {
    let (_redis, a, b) = two_instances().await;
    let mut x = player(&a, "ann").await;
    let mut o = player(&b, "bob").await;
    let mut s = player(&b, "sue").await;
    let game = x.create().await;
    o.join(&game).await;
    match s.join(&game).await {
        ServerMsg::Snapshot { you, .. } => assert_eq!(you, Role::Spectator),
        other => panic!("{other:?}"),
    }
    for (i, cell) in [4, 0, 8, 2, 6].into_iter().enumerate() {
        let ws = if i % 2 == 0 { &mut x } else { &mut o };
        ack_version(&ws.play(&game, cell).await);
        match s.event(&game, 3 + i as u64).await {
            ServerMsg::Moved { cell: c, .. } => assert_eq!(c.index() as i64, cell),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(error_code(&s.play(&game, 1).await), ErrorCode::NotYourSeat);
    assert_eq!(
        error_code(&s.request(json!({"type":"rematch","game":game})).await),
        ErrorCode::NotYourSeat
    );
}

#[tokio::test]
async fn a_plain_redis_subscriber_sees_each_move_as_json() {
    let (redis, a, b) = two_instances().await;
    let mut x = player(&a, "ann").await;
    let mut o = player(&b, "bob").await;
    let game = x.create().await;
    let channel = format!("{}game:{{{game}}}:events", a.config.key_prefix);
    let mut pubsub = redis.client().get_async_pubsub().await.unwrap();
    pubsub.subscribe(&channel).await.unwrap();
    let mut stream = pubsub.on_message();
    o.join(&game).await;
    ack_version(&x.play(&game, 4).await);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let msg = tokio::time::timeout(WAIT, stream.next())
            .await
            .unwrap()
            .unwrap();
        let text: String = msg.get_payload().unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON on the channel");
        // Presence changes travel on the same channel.
        if v["type"] != "presence" {
            seen.push(v);
        }
    }
    assert_eq!(seen[0]["type"], "seated");
    assert_eq!(seen[1]["type"], "moved");
    assert_eq!(seen[1]["cell"], 4);
    assert_eq!(seen[1]["mark"], "X");
    assert_eq!(seen[1]["state"]["board"], "....X....");
    assert_eq!(seen[1]["version"], 3);
}

/// Subscribers of a game channel: classic pub/sub on one Redis, sharded on a cluster (asked
/// of the node that owns the channel's slot).
fn numsub(backend: &Backend, channel: &str) -> i64 {
    let mut c = backend.conn_for(channel);
    let sub = match backend {
        Backend::Single(_) => "NUMSUB",
        Backend::Cluster(_) => "SHARDNUMSUB",
    };
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg(sub)
        .arg(channel)
        .query(&mut c)
        .unwrap();
    n
}

#[tokio::test]
async fn each_instance_subscribes_once_per_game_with_local_clients() {
    subscriptions_on(Backend::single()).await;
}

/// Sends `req` until the instance is not too busy to take it (joining a game or watching the
/// lobby waits a bounded time for the subscription, which a loaded machine can exceed) and
/// insists on an answer that is not an error: what the test counts afterwards are the
/// subscriptions of requests that happened.
async fn answered(c: &mut Ws, req: serde_json::Value) -> ServerMsg {
    let reply = c.request_until_available(req).await;
    assert!(!matches!(reply, ServerMsg::Error { .. }), "{reply:?}");
    reply
}

pub async fn subscriptions_on(redis: Backend) {
    let (a, b) = two_instances_on(&redis).await;
    let mut x = player(&a, "ann").await;
    let game = x.create().await;
    let channel = format!("{}game:{{{game}}}:events", a.config.key_prefix);
    eventually("one subscriber", || async {
        (numsub(&redis, &channel) == 1).then_some(())
    })
    .await;

    // More local clients on the same instance: still one subscription.
    let mut watchers = Vec::new();
    for i in 0..3 {
        let mut w = player(&a, &format!("w{i}")).await;
        answered(&mut w, json!({"type":"join","game":game,"spectate":true})).await;
        watchers.push(w);
    }
    assert_eq!(numsub(&redis, &channel), 1);

    // A client on the other instance adds that instance's one subscription.
    let mut o = player(&b, "bob").await;
    answered(&mut o, json!({"type":"join","game":game})).await;
    assert_eq!(numsub(&redis, &channel), 2);

    // The last local client of B leaving drops B's subscription; A keeps its own.
    o.request(json!({"type":"leave","game":game})).await;
    eventually("B unsubscribed", || async {
        (numsub(&redis, &channel) == 1).then_some(())
    })
    .await;
    for w in watchers {
        w.close().await;
    }
    assert_eq!(numsub(&redis, &channel), 1, "X is still on A");
    x.close().await;
    eventually("A unsubscribed", || async {
        (numsub(&redis, &channel) == 0).then_some(())
    })
    .await;

    // No pattern subscriptions, ever.
    let mut c = redis.conn_for(&channel);
    let patterns: i64 = redis::cmd("PUBSUB").arg("NUMPAT").query(&mut c).unwrap();
    assert_eq!(patterns, 0);
}

#[tokio::test]
async fn only_instances_whose_clients_watch_the_lobby_subscribe_to_its_channel() {
    lobby_subscriptions_on(Backend::single()).await;
}

/// Every game's start and end is published on the lobby's channel: an instance whose clients
/// are all in games does not read them.
pub async fn lobby_subscriptions_on(redis: Backend) {
    let (a, b) = two_instances_on(&redis).await;
    let channel = format!("{}{{lobby}}:events", a.config.key_prefix);
    let mut x = player(&a, "ann").await;
    let mut o = player(&b, "bob").await;
    let game = x.create().await;
    answered(&mut o, json!({"type":"join","game":game})).await;
    x.play(&game, 4).await;
    assert_eq!(numsub(&redis, &channel), 0, "players only");

    let mut wa = player(&a, "wes").await;
    answered(&mut wa, json!({"type":"lobby","watch":true})).await;
    assert_eq!(numsub(&redis, &channel), 1, "subscribed before the listing");
    let mut wb = player(&b, "wil").await;
    answered(&mut wb, json!({"type":"lobby","watch":true})).await;
    assert_eq!(numsub(&redis, &channel), 2);
    // A change reaches both.
    let mut y = player(&a, "yan").await;
    let open = y.create().await;
    for w in [&mut wa, &mut wb] {
        w.recv_until(|m| {
            matches!(m, ServerMsg::Lobby { open: listed, .. }
                if listed.iter().any(|e| e.game.as_str() == open))
        })
        .await;
    }

    wa.request(json!({"type":"lobby","watch":false})).await;
    eventually("A unsubscribed", || async {
        (numsub(&redis, &channel) == 1).then_some(())
    })
    .await;
    wb.close().await;
    eventually("B unsubscribed", || async {
        (numsub(&redis, &channel) == 0).then_some(())
    })
    .await;
}

/// On one Redis an instance's subscriptions ride on its command connection (RESP3 pushes),
/// so that a move's own event leaves Redis in the same write as the script's reply: each
/// instance holds one connection, subscribed, and the game's events still reach both.
#[tokio::test]
async fn one_connection_per_instance_carries_its_commands_and_subscriptions() {
    let redis = Backend::single();
    let (a, b) = two_instances_on(&redis).await;
    let mut x = player(&a, "ann").await;
    let mut o = player(&b, "bob").await;
    let game = x.create().await;
    o.join(&game).await;
    let v = ack_version(&x.play(&game, 4).await);
    o.event(&game, v).await;
    let v = ack_version(&o.play(&game, 0).await);
    x.event(&game, v).await;

    let clients = client_list(&mut redis.conn_for("any"));
    let instances: Vec<_> = clients
        .iter()
        .filter(|(c, _)| c["cmd"] != "client|list")
        .collect();
    assert_eq!(
        instances.len(),
        2,
        "one connection per instance: {clients:?}"
    );
    for (client, line) in instances {
        assert_eq!(client["resp"], "3", "{line}");
        let subscribed: u32 = client["sub"].parse().unwrap();
        assert!(
            subscribed >= 2,
            "the instance's and the game's channels: {line}"
        );
    }
}

#[tokio::test]
async fn the_in_memory_default_plays_a_whole_game_on_one_instance() {
    let a = Instance::start(test_config(None)).await;
    let mut x = player(&a, "ann").await;
    let mut o = player(&a, "bob").await;
    let game = x.create().await;
    o.join(&game).await;
    for (i, cell) in [0, 3, 1, 4, 2].into_iter().enumerate() {
        let ws = if i % 2 == 0 { &mut x } else { &mut o };
        ack_version(&ws.play(&game, cell).await);
    }
    let end = o.event(&game, 7).await;
    assert_eq!(state_of(&end).result.unwrap().winner, Some(Mark::X));
}

#[tokio::test]
async fn peeking_at_a_game_tells_where_it_stands_without_joining_it() {
    let (_redis, a, b) = two_instances().await;
    let mut ann = player(&a, "Ann").await;
    let game = ann.create().await;
    // From the other instance, which has never seen the game.
    let mut newcomer = player(&b, "Newcomer").await;
    let peek = |g: &str| json!({"type":"peek","game":g});
    match newcomer.request(peek(&game)).await {
        ServerMsg::GameInfo { entry, .. } => {
            assert_eq!(entry.game.as_str(), game);
            assert_eq!(entry.status, Status::Waiting);
            assert_eq!(entry.players.x.as_deref(), Some("Ann"));
            assert_eq!(entry.players.o, None);
        }
        other => panic!("{other:?}"),
    }
    // Nobody joined: the seat is still free and nobody watches.
    let mut bob = player(&b, "Bob").await;
    match bob.join(&game).await {
        ServerMsg::Snapshot { you, presence, .. } => {
            assert_eq!(you, Role::O);
            assert_eq!(presence.spectators, 0);
        }
        other => panic!("{other:?}"),
    }
    match newcomer.request(peek(&game)).await {
        ServerMsg::GameInfo { entry, .. } => {
            assert_eq!(entry.status, Status::Playing);
            assert_eq!(entry.players.o.as_deref(), Some("Bob"));
        }
        other => panic!("{other:?}"),
    }
    let unknown = newcomer.request(peek("nosuchgame")).await;
    assert_eq!(error_code(&unknown), ErrorCode::UnknownGame);
}

#[tokio::test]
async fn the_creator_cancels_a_waiting_game_and_everyone_sees_it_aborted() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.max_waiting_games = 1;
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config).await;
    let mut x = player(&a, "ann").await;
    let game = x.create().await;
    assert_eq!(
        error_code(&x.request(json!({"type":"create"})).await),
        ErrorCode::TooManyWaiting
    );
    // Watching from the other instance: a spectator, the lobby, and a plain subscriber.
    let mut sue = player(&b, "sue").await;
    sue.request(json!({"type":"join","game":game,"spectate":true}))
        .await;
    let mut wes = player(&b, "wes").await;
    wes.request(json!({"type":"lobby","watch":true})).await;
    lobby_open_until(&mut wes, |open| open.contains(&game)).await;
    let channel = format!("{}game:{{{game}}}:events", a.config.key_prefix);
    let mut pubsub = redis.client().get_async_pubsub().await.unwrap();
    pubsub.subscribe(&channel).await.unwrap();
    let mut stream = pubsub.on_message();

    // Only its creator can cancel it.
    assert_eq!(
        error_code(&sue.request(json!({"type":"cancel","game":game})).await),
        ErrorCode::NotYourSeat
    );
    let mut bob = player(&b, "bob").await;
    assert_eq!(
        error_code(&bob.request(json!({"type":"cancel","game":game})).await),
        ErrorCode::NotInGame
    );
    assert_eq!(
        ack_version(&x.request(json!({"type":"cancel","game":game})).await),
        2
    );

    let aborted = sue.event(&game, 2).await;
    assert!(matches!(aborted, ServerMsg::Aborted { .. }), "{aborted:?}");
    assert_eq!(state_of(&aborted).status, Status::Aborted);
    assert_eq!(state_of(&aborted).players.x.as_deref(), Some("ann"));
    let published = loop {
        let msg = tokio::time::timeout(WAIT, stream.next())
            .await
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&msg.get_payload::<String>().unwrap())
            .expect("JSON on the channel");
        if v["type"] != "presence" {
            break v;
        }
    };
    assert_eq!(published["type"], "aborted");
    assert_eq!(published["version"], 2);
    // Logged like any event: catching up from version 1 brings it again (the events come
    // before the sync's ack, behind the copy that followed the cancel's).
    x.request(json!({"type":"sync","game":game,"since":1}))
        .await;
    let seen = x.drain_for(std::time::Duration::ZERO).await;
    let copies = seen
        .iter()
        .filter(|m| matches!(m, ServerMsg::Aborted { version: 2, .. }))
        .count();
    assert_eq!(copies, 2, "{seen:?}");
    lobby_open_until(&mut wes, |open| !open.contains(&game)).await;

    // It no longer waits: the creator may open another, and nobody can take its seat.
    let again = x.create().await;
    assert_ne!(again, game);
    assert_eq!(
        error_code(&x.request(json!({"type":"cancel","game":game})).await),
        ErrorCode::Aborted
    );
    match bob.join(&game).await {
        ServerMsg::Snapshot { you, state, .. } => {
            assert_eq!(you, Role::Spectator);
            assert_eq!(state.status, Status::Aborted);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn only_a_game_still_waiting_for_its_opponent_can_be_cancelled() {
    let (_redis, a, b) = two_instances().await;
    let mut x = player(&a, "ann").await;
    let mut o = player(&b, "bob").await;
    let game = x.create().await;
    o.join(&game).await;
    let cancel = json!({"type":"cancel","game":game});
    assert_eq!(
        error_code(&x.request(cancel.clone()).await),
        ErrorCode::RoundInProgress
    );
    assert_eq!(
        error_code(&o.request(cancel.clone()).await),
        ErrorCode::NotYourSeat
    );
    ack_version(&x.request(json!({"type":"resign","game":game})).await);
    assert_eq!(
        error_code(&x.request(cancel.clone()).await),
        ErrorCode::GameOver
    );
    assert_eq!(
        error_code(
            &x.request(json!({"type":"cancel","game":"nosuchgame"}))
                .await
        ),
        ErrorCode::NotInGame
    );
    assert_eq!(
        error_code(&x.request(json!({"type":"cancel"})).await),
        ErrorCode::BadRequest
    );
}

/// The ids of the open games in the newest `lobby` list a watcher receives that satisfies
/// `pred`.
async fn lobby_open_until(
    ws: &mut crate::support::client::Ws,
    mut pred: impl FnMut(&[String]) -> bool,
) {
    loop {
        if let ServerMsg::Lobby { open, .. } = ws
            .recv_until(|m| matches!(m, ServerMsg::Lobby { .. }))
            .await
        {
            let open: Vec<String> = open.iter().map(|e| e.game.to_string()).collect();
            if pred(&open) {
                return;
            }
        }
    }
}

// The 10-minute chaos check on Sentinel: a failover took back version 56 after both clients
// had it; the catch-up answered with a snapshot at 55, but each connection went on believing
// its client had 56 and dropped the next (different) version 56 as already sent: the game
// waited until its players reconnected, 113 s later.
#[tokio::test]
async fn after_a_failover_takes_versions_back_the_snapshot_resets_what_a_client_has() {
    let redis = RedisServer::start();
    let cfg = test_config(Some(&redis));
    let a = Instance::start(cfg.clone()).await;
    let mut x = player(&a, "ann").await;
    let mut o = player(&a, "bob").await;
    let game = x.create().await;
    o.join(&game).await;
    assert_eq!(ack_version(&x.play(&game, 0).await), 3);
    o.event(&game, 3).await;

    // What a failover without WAIT can do: the store is back at version 2.
    let mut c = redis.sync_conn();
    let key = format!("{}game:{{{game}}}", cfg.key_prefix);
    let log = format!("{key}:log");
    let kept: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&log)
        .arg("-")
        .arg("0-2")
        .query(&mut c)
        .unwrap();
    let seated: ServerMsg = serde_json::from_str(&kept[1].1[0].1).unwrap();
    let state = serde_json::to_string(state_of(&seated)).unwrap();
    let mut rewind = redis::pipe();
    rewind
        .cmd("HSET")
        .arg(&key)
        .arg("v")
        .arg(2)
        .arg("s")
        .arg(&state)
        .cmd("DEL")
        .arg(&log);
    for (id, fields) in &kept {
        rewind
            .cmd("XADD")
            .arg(&log)
            .arg(id)
            .arg("e")
            .arg(&fields[0].1);
    }
    let _: () = rewind.query(&mut c).unwrap();

    // O catches up (as after a reconnect of the bus): a snapshot at 2.
    o.request(json!({"type":"sync","game":game,"since":3}))
        .await;
    // X moves again at version 3, elsewhere: O must get it.
    assert_eq!(
        ack_version(&x.request(json!({"type":"move","game":game,"cell":4})).await),
        3
    );
    match o.recv_until(|m| matches!(m, ServerMsg::Moved { .. })).await {
        ServerMsg::Moved { version, cell, .. } => {
            assert_eq!((version, cell.index()), (3, 4));
        }
        _ => unreachable!(),
    }
}
