//! Profiles across two instances and one Redis: recovery codes, their budget, deletion,
//! rated games that move ratings exactly once (whichever instance sees the end, or if the
//! instance that saw it died before recording it), the same-address rule, the history and
//! the leaderboard, on the page's protocol and on the operators' command line.

use crate::support::client::{Endpoint, Ws, error_code, try_connect};
use crate::support::instances::{Instance, test_config};
use crate::support::processes::server_command;
use crate::support::redis::{RedisServer, command_calls};
use crate::support::{WAIT, eventually};
use bytes::Bytes;
use serde_json::json;
use tictactoe::application::Application;
use tictactoe::operations::profiles::record_round;
use tictactoe::store::Creation;
use tictactoe::store::profiles::Recorded;
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::profiles::{ProfileView, RoundResult};
use tictactoe_protocol::{ErrorCode, ServerMsg};
use tictactoe_rules::glicko2::{self, Rating};
use tictactoe_rules::{Cell, EndReason, GameState, Mark, Seats, Status};
use tokio_util::sync::CancellationToken;

/// Two instances on one Redis, each believing X-Forwarded-For from loopback as it would from
/// its load balancer: the tests' clients come from the addresses they say.
async fn two_instances() -> (RedisServer, Instance, Instance) {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.trusted_proxies = vec!["127.0.0.1".into()];
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config).await;
    (redis, a, b)
}

/// A client saying hello as `name` from `address`.
async fn player_from(at: &impl Endpoint, name: &str, address: &str) -> Ws {
    let mut ws = try_connect(&at.ws_url(), &[("x-forwarded-for", address)])
        .await
        .expect("connect");
    ws.hello(name).await;
    ws
}

/// Makes the client's player a profile; returns its recovery code.
async fn make_profile(ws: &mut Ws) -> (ProfileView, String) {
    match ws.request(json!({"type": "profile_create"})).await {
        ServerMsg::Profile {
            profile,
            code: Some(code),
            ..
        } => (profile, code),
        other => panic!("expected a profile with its code, got {other:?}"),
    }
}

async fn profile(ws: &mut Ws) -> ProfileView {
    match ws.request(json!({"type": "profile"})).await {
        ServerMsg::Profile {
            profile,
            code: None,
            ..
        } => profile,
        other => panic!("expected a profile, got {other:?}"),
    }
}

/// Waits until the client's profile has `n` rounds in its history.
async fn profile_with_rounds(ws: &mut Ws, n: usize) -> ProfileView {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let p = profile(ws).await;
        if p.games.len() >= n {
            return p;
        }
        assert!(std::time::Instant::now() < deadline, "history: {p:?}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

fn recover(code: &str) -> serde_json::Value {
    json!({"type": "recover", "code": code})
}

/// Plays `cells` alternately from `x` and `o` (X first) in `game`, starting at `version`.
async fn play_out(x: &mut Ws, o: &mut Ws, game: &str, cells: &[i64]) {
    for (i, cell) in cells.iter().enumerate() {
        let mover = if i % 2 == 0 { &mut *x } else { &mut *o };
        match mover.play(game, *cell).await {
            ServerMsg::Ack { .. } => {}
            other => panic!("move {cell} refused: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_recovery_code_restores_the_profile_on_another_instance() {
    let (_redis, a, b) = two_instances().await;
    let mut ann = player_from(&a, "Ann", "198.51.100.1").await;
    let (made, code) = make_profile(&mut ann).await;
    assert_eq!(
        (made.name.as_str(), made.rating, made.deviation),
        ("Ann", 1500, 350)
    );
    assert!(made.provisional && made.rank.is_none() && made.games.is_empty());
    assert_eq!(code.len(), 24, "{code}");

    // Another device, another instance: a stranger until the code is typed in, loosely.
    let mut phone = player_from(&b, "someone", "203.0.113.9").await;
    assert_eq!(
        error_code(&phone.request(json!({"type": "profile"})).await),
        ErrorCode::NoProfile
    );
    let typed = code.to_lowercase().replace('-', " ");
    let token = match phone.request(recover(&typed)).await {
        ServerMsg::Recovered {
            token,
            player,
            name,
            ..
        } => {
            assert_eq!(Some(player.to_string()), ann.player);
            assert_eq!(name, "Ann");
            token
        }
        other => panic!("expected recovered, got {other:?}"),
    };
    let mut phone = Ws::connect(&b.ws_url()).await;
    phone.token = Some(token);
    match phone.hello("Ann").await {
        ServerMsg::Welcome {
            resumed,
            player,
            profile,
            ..
        } => {
            assert!(resumed);
            assert_eq!(Some(player.to_string()), ann.player);
            let badge = profile.expect("the welcome shows the rating");
            assert_eq!((badge.rating, badge.provisional), (1500, true));
        }
        other => panic!("expected welcome, got {other:?}"),
    }
    assert_eq!(profile(&mut phone).await.name, "Ann");

    // A new code: the old one no longer works, the new one does.
    let new_code = match phone.request(json!({"type": "profile_code"})).await {
        ServerMsg::Profile {
            code: Some(code), ..
        } => code,
        other => panic!("expected a new code, got {other:?}"),
    };
    assert_ne!(new_code, code);
    let mut third = player_from(&a, "x", "192.0.2.7").await;
    assert_eq!(
        error_code(&third.request(recover(&code)).await),
        ErrorCode::BadCode
    );
    assert!(matches!(
        third.request(recover(&new_code)).await,
        ServerMsg::Recovered { .. }
    ));
    // A rename of any session of the player renames the profile.
    let renamed = phone
        .request(json!({"type": "rename", "name": "Annie"}))
        .await;
    assert!(matches!(renamed, ServerMsg::Ack { .. }), "{renamed:?}");
    assert_eq!(profile(&mut ann).await.name, "Annie");
}

#[tokio::test]
async fn recovery_attempts_are_budgeted_per_address_right_or_wrong() {
    let (_redis, a, b) = two_instances().await;
    let mut ann = player_from(&a, "Ann", "198.51.100.1").await;
    let (_, code) = make_profile(&mut ann).await;
    // Five attempts from one address, on either instance, then refused however right.
    let mut guesser_a = player_from(&a, "g", "203.0.113.66").await;
    let mut guesser_b = player_from(&b, "g", "203.0.113.66").await;
    for i in 0..5 {
        let ws = if i % 2 == 0 {
            &mut guesser_a
        } else {
            &mut guesser_b
        };
        let guess = if i == 4 {
            "not a code at all"
        } else {
            "0000-0000-0000-0000-0000"
        };
        assert_eq!(
            error_code(&ws.request(recover(guess)).await),
            ErrorCode::BadCode
        );
    }
    let refused = guesser_b.request(recover(&code)).await;
    assert_eq!(error_code(&refused), ErrorCode::RateLimited);
    // Another address is not charged for it.
    let mut other = player_from(&b, "o", "192.0.2.50").await;
    assert!(matches!(
        other.request(recover(&code)).await,
        ServerMsg::Recovered { .. }
    ));
}

#[tokio::test]
async fn profiles_made_from_one_address_are_budgeted() {
    let (_redis, a, _b) = two_instances().await;
    for i in 0..5 {
        let mut ws = player_from(&a, &format!("P{i}"), "198.51.100.77").await;
        make_profile(&mut ws).await;
    }
    let mut sixth = player_from(&a, "P5", "198.51.100.77").await;
    assert_eq!(
        error_code(&sixth.request(json!({"type": "profile_create"})).await),
        ErrorCode::RateLimited
    );
}

#[tokio::test]
async fn a_deleted_profile_is_gone_with_its_code_and_its_place_on_the_board() {
    let (_redis, a, b) = two_instances().await;
    let mut ann = player_from(&a, "Ann", "198.51.100.1").await;
    let mut bob = player_from(&b, "Bob", "198.51.100.2").await;
    let (_, code) = make_profile(&mut ann).await;
    make_profile(&mut bob).await;
    let game = rated_game(&mut ann, &mut bob).await;
    play_out(&mut ann, &mut bob, &game, &[0, 3, 1, 4, 2]).await;
    profile_with_rounds(&mut ann, 1).await;
    assert!(board_names(&mut bob).await.contains(&"Ann".to_string()));

    assert!(matches!(
        ann.request(json!({"type": "profile_delete"})).await,
        ServerMsg::Ack { .. }
    ));
    assert_eq!(
        error_code(&ann.request(json!({"type": "profile"})).await),
        ErrorCode::NoProfile
    );
    assert_eq!(
        error_code(&ann.request(json!({"type": "profile_delete"})).await),
        ErrorCode::NoProfile
    );
    assert_eq!(
        error_code(&bob.request(recover(&code)).await),
        ErrorCode::BadCode
    );
    assert_eq!(board_names(&mut bob).await, vec!["Bob".to_string()]);
    // The session goes on, anonymous again: it can still play casual games.
    let casual = ann.request(json!({"type": "create"})).await;
    assert!(matches!(casual, ServerMsg::Snapshot { .. }), "{casual:?}");
}

async fn board_names(ws: &mut Ws) -> Vec<String> {
    match ws.request(json!({"type": "leaderboard"})).await {
        ServerMsg::Leaderboard { top, .. } => top.into_iter().map(|r| r.name).collect(),
        other => panic!("expected the leaderboard, got {other:?}"),
    }
}

/// `x` creates a rated game and `o` sits down in it; returns the game.
async fn rated_game(x: &mut Ws, o: &mut Ws) -> String {
    let game = match x.request(json!({"type": "create", "rated": true})).await {
        ServerMsg::Snapshot { game, state, .. } => {
            assert!(state.rated);
            game.to_string()
        }
        other => panic!("expected a snapshot, got {other:?}"),
    };
    match o.join(&game).await {
        ServerMsg::Snapshot { state, .. } => assert!(state.rated),
        other => panic!("expected a snapshot, got {other:?}"),
    }
    game
}

#[tokio::test]
async fn a_rated_game_between_two_profiles_moves_both_ratings_once_and_ranks_them() {
    let (_redis, a, b) = two_instances().await;
    let mut ann = player_from(&a, "Ann", "198.51.100.1").await;
    let mut bob = player_from(&b, "Bob", "198.51.100.2").await;
    // Without a profile, no rated game: neither made nor sat down in.
    assert_eq!(
        error_code(&ann.request(json!({"type": "create", "rated": true})).await),
        ErrorCode::ProfileRequired
    );
    make_profile(&mut ann).await;
    let game = match ann.request(json!({"type": "create", "rated": true})).await {
        ServerMsg::Snapshot { game, state, .. } => {
            assert!(state.rated);
            assert_eq!(
                state.ratings,
                Seats {
                    x: Some(1500),
                    o: None
                }
            );
            game.to_string()
        }
        other => panic!("expected a snapshot, got {other:?}"),
    };
    assert_eq!(
        error_code(&bob.join(&game).await),
        ErrorCode::ProfileRequired
    );
    // Watching needs nothing.
    let mut watcher = player_from(&b, "Cy", "198.51.100.3").await;
    let watched = watcher
        .request(json!({"type": "join", "game": game, "spectate": true}))
        .await;
    assert!(matches!(watched, ServerMsg::Snapshot { .. }), "{watched:?}");
    make_profile(&mut bob).await;
    match bob.join(&game).await {
        ServerMsg::Snapshot { state, .. } => {
            assert_eq!(
                state.ratings,
                Seats {
                    x: Some(1500),
                    o: Some(1500)
                }
            );
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }

    // Ann wins with the top row; X started.
    play_out(&mut ann, &mut bob, &game, &[0, 3, 1, 4, 2]).await;
    let (expected_x, expected_o) =
        glicko2::rate_game(Rating::new_player(), Rating::new_player(), glicko2::WIN);
    let ann_p = profile_with_rounds(&mut ann, 1).await;
    let bob_p = profile_with_rounds(&mut bob, 1).await;
    assert_eq!(ann_p.rating, expected_x.rating.round() as u32);
    assert_eq!(bob_p.rating, expected_o.rating.round() as u32);
    assert_eq!(
        (ann_p.wins, ann_p.losses, bob_p.wins, bob_p.losses),
        (1, 0, 0, 1)
    );
    assert_eq!((ann_p.rank, bob_p.rank), (Some(1), Some(2)));
    // The history replays the round from each side.
    let h = &ann_p.games[0];
    assert_eq!(
        (h.game.as_str(), h.round, h.you),
        (game.as_str(), 1, Mark::X)
    );
    assert_eq!(
        (h.result, h.reason, h.starter),
        (RoundResult::Win, EndReason::Line, Mark::X)
    );
    let moves: Vec<usize> = h.moves.iter().map(|c| c.index()).collect();
    assert_eq!(moves, vec![0, 3, 1, 4, 2]);
    assert_eq!(
        (h.opponent.as_str(), h.opponent_rating),
        ("Bob", Some(1500))
    );
    assert_eq!(
        (h.rated, h.rating_before, h.rating_after),
        (true, Some(1500), Some(ann_p.rating))
    );
    assert_eq!(bob_p.games[0].result, RoundResult::Loss);

    // The board, from Bob's side: no player ids, his own row and those around it.
    match bob.request(json!({"type": "leaderboard"})).await {
        ServerMsg::Leaderboard {
            top, me, around, ..
        } => {
            let names: Vec<_> = top.iter().map(|r| (r.rank, r.name.as_str())).collect();
            assert_eq!(names, vec![(1, "Ann"), (2, "Bob")]);
            assert_eq!(top[0].rating, ann_p.rating);
            assert_eq!(me.as_ref().map(|m| m.rank), Some(2));
            assert_eq!(around, top);
        }
        other => panic!("expected the leaderboard, got {other:?}"),
    }

    // The next round starts with the ratings the last one left, and is recorded in turn.
    ann.request(json!({"type": "rematch", "game": game})).await;
    bob.request(json!({"type": "rematch", "game": game})).await;
    let started = ann
        .recv_until(|m| matches!(m, ServerMsg::RoundStarted { .. }))
        .await;
    let state = started.state().unwrap();
    assert_eq!(
        state.ratings,
        Seats {
            x: Some(ann_p.rating),
            o: Some(bob_p.rating)
        }
    );
    // O starts round 2 and wins down the middle column.
    play_out(&mut bob, &mut ann, &game, &[1, 0, 4, 2, 7]).await;
    let ann_p2 = profile_with_rounds(&mut ann, 2).await;
    assert_eq!((ann_p2.wins, ann_p2.losses), (1, 1));
    assert!(ann_p2.rating < ann_p.rating);
    assert_eq!(ann_p2.games[0].round, 2);
    assert_eq!(ann_p2.games[0].starter, Mark::O);
}

#[tokio::test]
async fn two_profiles_from_one_address_play_rated_without_moving_ratings() {
    let (_redis, a, b) = two_instances().await;
    let mut ann = player_from(&a, "Ann", "198.51.100.9").await;
    let mut bob = player_from(&b, "Bob", "198.51.100.9").await;
    make_profile(&mut ann).await;
    make_profile(&mut bob).await;
    let game = rated_game(&mut ann, &mut bob).await;
    play_out(&mut ann, &mut bob, &game, &[0, 3, 1, 4, 2]).await;
    let ann_p = profile_with_rounds(&mut ann, 1).await;
    assert_eq!((ann_p.rating, ann_p.deviation, ann_p.wins), (1500, 350, 1));
    let h = &ann_p.games[0];
    assert_eq!(
        (h.rated, h.rating_before, h.rating_after),
        (true, Some(1500), Some(1500))
    );
    assert_eq!(ann_p.rank, None, "no rated round moved it onto the board");
    assert!(board_names(&mut bob).await.is_empty());
}

#[tokio::test]
async fn quick_match_is_rated_only_when_both_players_have_profiles() {
    let (_redis, a, b) = two_instances().await;
    for (profiles, rated) in [(true, true), (false, false)] {
        let mut ann = player_from(&a, "Ann", "198.51.100.1").await;
        let mut bob = player_from(&b, "Bob", "198.51.100.2").await;
        make_profile(&mut ann).await;
        if profiles {
            make_profile(&mut bob).await;
        }
        ann.request(json!({"type": "quick_match"})).await;
        bob.request(json!({"type": "quick_match"})).await;
        for ws in [&mut ann, &mut bob] {
            let snap = ws
                .recv_until(|m| matches!(m, ServerMsg::Snapshot { .. }))
                .await;
            let state = snap.state().unwrap();
            assert_eq!(state.rated, rated, "{state:?}");
            assert_eq!(
                state.ratings.x.is_some() && state.ratings.o.is_some(),
                profiles
            );
        }
    }
}

/// Two instances' operations on one Redis (the same settings), without serving: for calling
/// what each instance would call, at the same moment.
fn two_apps(redis: &RedisServer) -> (Application, Application) {
    let config = test_config(Some(redis));
    let build = || Application::build(config.clone(), CancellationToken::new()).expect("build");
    (build(), build())
}

/// A finished rated round between two profiles (from different addresses), as committed by
/// an instance that did not record it.
async fn finished_unrecorded_round(app: &Application) -> (GameId, PlayerId, PlayerId) {
    let store = &app.app.store;
    let (ann, bob) = (PlayerId::generate(), PlayerId::generate());
    store
        .profile_create(&ann, "Ann", "addr-a", "code-a")
        .await
        .unwrap();
    store
        .profile_create(&bob, "Bob", "addr-b", "code-b")
        .await
        .unwrap();
    let mut state = GameState::matched("Ann", "Bob");
    state.rated = true;
    state.ratings = Seats {
        x: Some(1500),
        o: Some(1500),
    };
    // X wins with the top row.
    for (i, c) in [0, 3, 1, 4, 2].iter().enumerate() {
        let mark = if i % 2 == 0 { Mark::X } else { Mark::O };
        state = state.play(mark, Cell::new(*c).unwrap()).unwrap();
    }
    assert_eq!(state.status, Status::Finished);
    let game = GameId::generate();
    let seats = Seats {
        x: Some(ann.clone()),
        o: Some(bob.clone()),
    };
    let created = store
        .create_game(
            &game,
            &seats,
            &state,
            Bytes::from_static(b"{}"),
            WAIT * 6,
            None,
        )
        .await
        .unwrap();
    assert_eq!(created, Creation::Created);
    (game, ann, bob)
}

#[tokio::test]
async fn both_instances_recording_the_same_round_at_once_rate_it_once() {
    let redis = RedisServer::start();
    let (one, two) = two_apps(&redis);
    let (game, ann, bob) = finished_unrecorded_round(&one).await;
    let apps = [one.app.clone(), two.app.clone()];
    let racers = (0..8).map(|i| {
        let app = apps[i % 2].clone();
        let game = game.clone();
        tokio::spawn(async move { record_round(&app, &game).await.unwrap() })
    });
    let results: Vec<Option<Recorded>> = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let done = results
        .iter()
        .filter(|r| **r == Some(Recorded::Done))
        .count();
    assert_eq!(done, 1, "{results:?}");
    assert!(results.iter().all(|r| r.is_some()), "{results:?}");
    let store = &one.app.store;
    let records = store.profile_records(&[&ann, &bob]).await.unwrap();
    let (x, o) = (records[0].clone().unwrap(), records[1].clone().unwrap());
    let (ex, eo) = glicko2::rate_game(Rating::new_player(), Rating::new_player(), glicko2::WIN);
    assert_eq!((x.rating, o.rating), (ex, eo), "rated exactly once");
    assert_eq!((x.rated_games, o.rated_games), (1, 1));
    assert_eq!((x.wins, x.losses, o.wins, o.losses), (1, 0, 0, 1));
    let read = store.profile_read(&ann, 20).await.unwrap().unwrap();
    assert_eq!(read.history.len(), 1);
    let board = store.leaderboard(None, 10, 0).await.unwrap();
    assert_eq!(board.top.len(), 2);
    one.stop();
    two.stop();
}

#[tokio::test]
async fn a_round_its_instance_died_before_recording_is_recorded_by_the_deadline() {
    let redis = RedisServer::start();
    let config = test_config(Some(&redis));
    let writer = Application::build(config.clone(), CancellationToken::new()).expect("build");
    let (game, ann, _bob) = finished_unrecorded_round(&writer).await;
    // What the dead instance left: the deadline it set before the finishing transition.
    let now = tictactoe::app::wall_ms();
    writer.app.store.set_deadline(&game, now).await.unwrap();
    // Any live instance's housekeeping finds it due and records the round.
    let survivor = Instance::start(config).await;
    let store = writer.app.store.clone();
    let read = eventually("the round to be recorded", || {
        let store = store.clone();
        let ann = ann.clone();
        async move {
            let read = store.profile_read(&ann, 20).await.unwrap().unwrap();
            (read.history.len() == 1).then_some(read)
        }
    })
    .await;
    assert_eq!(read.record.rated_games, 1);
    assert!(
        store.due_deadlines(10).await.unwrap().1.is_empty(),
        "settled"
    );
    drop(survivor);
    writer.stop();
}

#[tokio::test]
async fn the_leaderboard_command_prints_the_board() {
    let (redis, a, b) = two_instances().await;
    let mut ann = player_from(&a, "Ann", "198.51.100.1").await;
    let mut bob = player_from(&b, "Bob", "198.51.100.2").await;
    make_profile(&mut ann).await;
    make_profile(&mut bob).await;
    let game = rated_game(&mut ann, &mut bob).await;
    play_out(&mut ann, &mut bob, &game, &[0, 3, 1, 4, 2]).await;
    let ann_p = profile_with_rounds(&mut ann, 1).await;
    let bob_p = profile_with_rounds(&mut bob, 1).await;
    let out = tokio::task::spawn_blocking({
        let mut config = test_config(Some(&redis));
        config.key_prefix = a.config.key_prefix.clone();
        move || {
            server_command(env!("CARGO_BIN_EXE_tictactoe"), &config)
                .args(["leaderboard", "--top", "5"])
                .output()
                .expect("run tictactoe leaderboard")
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains("rank") && lines[0].contains("W/D/L"),
        "{text}"
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        vec!["1", &format!("{}?", ann_p.rating), "1/0/0", "Ann"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        vec!["2", &format!("{}?", bob_p.rating), "0/0/1", "Bob"]
    );
}

#[tokio::test]
async fn profiles_made_during_a_game_count_from_the_next_round() {
    let (_redis, a, b) = two_instances().await;
    let mut ann = player_from(&a, "Ann", "198.51.100.1").await;
    let mut bob = player_from(&b, "Bob", "198.51.100.2").await;
    let game = ann.create().await;
    bob.join(&game).await;
    play_out(&mut ann, &mut bob, &game, &[0, 3, 1, 4, 2]).await;
    // Both make profiles between rounds: the round played without them is not theirs, the
    // next one shows their ratings and is recorded (casual: record and history, no rating).
    make_profile(&mut ann).await;
    make_profile(&mut bob).await;
    assert!(profile(&mut ann).await.games.is_empty());
    ann.request(json!({"type": "rematch", "game": game})).await;
    bob.request(json!({"type": "rematch", "game": game})).await;
    let started = bob
        .recv_until(|m| matches!(m, ServerMsg::RoundStarted { .. }))
        .await;
    let state = started.state().unwrap();
    assert!(!state.rated);
    assert_eq!(
        state.ratings,
        Seats {
            x: Some(1500),
            o: Some(1500)
        }
    );
    // O starts round 2 and wins down the middle column.
    play_out(&mut bob, &mut ann, &game, &[4, 0, 8, 2, 1, 6, 7]).await;
    let bob_p = profile_with_rounds(&mut bob, 1).await;
    assert_eq!((bob_p.wins, bob_p.rating, bob_p.rank), (1, 1500, None));
    let h = &bob_p.games[0];
    assert_eq!((h.round, h.you, h.starter), (2, Mark::O, Mark::O));
    assert_eq!(
        (h.rated, h.rating_before, h.opponent_rating),
        (false, None, Some(1500))
    );
    let ann_p = profile_with_rounds(&mut ann, 1).await;
    assert_eq!((ann_p.losses, ann_p.games.len()), (1, 1));
}

/// The leaderboard's top rows are the same for everyone until one of them changes: an
/// instance reads them once per change of the board, so a flood of leaderboard requests costs
/// Redis each player's own rows, not a hundred profile reads a request (counted in Redis's
/// command statistics: one `HMGET` per row read).
#[tokio::test]
async fn a_flood_of_leaderboard_requests_reads_the_top_once_per_change() {
    const LISTED: usize = 40;
    const REQUESTS: usize = 100;
    let redis = RedisServer::start();
    let config = test_config(Some(&redis));
    let prefix = config.key_prefix.clone();
    let profile = |i: usize| format!("{prefix}{{profiles}}:p:board-{i:03}");
    // Players on the board, written as docs/redis.md lays them out.
    let mut c = redis.sync_conn();
    for i in 0..LISTED {
        let rating = (1500 + i).to_string();
        let name = format!("Player {i}");
        let fields = [
            ("name", name.as_str()),
            ("r", &rating),
            ("d", "80"),
            ("s", "0.06"),
            ("w", "1"),
            ("dr", "0"),
            ("l", "0"),
            ("g", "1"),
            ("v", "1"),
        ];
        let _: () = redis::cmd("HSET")
            .arg(profile(i))
            .arg(&fields[..])
            .query(&mut c)
            .unwrap();
        let _: () = redis::cmd("ZADD")
            .arg(format!("{prefix}{{profiles}}:board"))
            .arg(&rating)
            .arg(format!("board-{i:03}"))
            .query(&mut c)
            .unwrap();
    }
    let hmgets = |c: &mut redis::Connection| command_calls(c, "hmget");
    let a = Instance::start(config).await;
    let mut ws = a.connect().await;
    ws.hello("ann").await;
    let top_names = |m: ServerMsg| match m {
        ServerMsg::Leaderboard { top, .. } => top.into_iter().map(|r| r.name).collect::<Vec<_>>(),
        other => panic!("expected the leaderboard, got {other:?}"),
    };
    let before = hmgets(&mut c);
    for _ in 0..REQUESTS {
        let names = top_names(ws.request(json!({"type": "leaderboard"})).await);
        assert_eq!((names.len(), names[0].as_str()), (LISTED, "Player 39"));
    }
    let read = hmgets(&mut c) - before;
    // Ann has no profile, so no rows of her own: the top once, and nothing more.
    assert!(
        read <= 2 * LISTED as u64,
        "{read} profile reads for {REQUESTS} leaderboards of {LISTED} rows"
    );
    // Another instance's change moves the board's version on: the next request has it.
    let _: () = redis::cmd("HSET")
        .arg(profile(LISTED - 1))
        .arg("name")
        .arg("Renamed")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("INCR")
        .arg(format!("{prefix}{{profiles}}:board:v"))
        .query(&mut c)
        .unwrap();
    let names = top_names(ws.request(json!({"type": "leaderboard"})).await);
    assert_eq!(names[0], "Renamed");
}
