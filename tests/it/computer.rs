//! Playing the computer: an ordinary seat whose moves go through the move path like anyone's,
//! played by whichever instance finds them due.

use crate::support::client::{Ws, ack_version, error_code, player};
use crate::support::instances::{Instance, test_config};
use crate::support::processes::ready_processes;
use crate::support::redis::RedisServer;
use serde_json::json;
use std::time::Duration;
use tictactoe::config::Config;
use tictactoe_protocol::{ErrorCode, ServerMsg};
use tictactoe_rules::computer::Level;
use tictactoe_rules::{GameState, Mark, Status};

fn config(redis: &RedisServer) -> Config {
    let mut c = test_config(Some(redis));
    c.computer_delay = Duration::from_millis(150);
    // Short clocks: the computer's seat, which no connection holds, must not trip them.
    c.match_confirm = Duration::from_millis(300);
    c.forfeit_grace = Duration::from_millis(60_000);
    c
}

/// Creates a game against the computer at `level`; returns its id and first state.
async fn against(ws: &mut Ws, level: &str) -> (String, GameState) {
    match ws
        .request(json!({"type":"create","computer":level,"cid":"c-1"}))
        .await
    {
        ServerMsg::Snapshot {
            game, state, you, ..
        } => {
            assert_eq!(you.mark(), Some(Mark::X));
            (game.to_string(), state)
        }
        other => panic!("{other:?}"),
    }
}

/// The next `moved` event of `game` played by `mark`.
async fn moved_by(ws: &mut Ws, mark: Mark) -> (u64, GameState) {
    match ws
        .recv_until(|m| matches!(m, ServerMsg::Moved { mark: m2, .. } if *m2 == mark))
        .await
    {
        ServerMsg::Moved { version, state, .. } => (version, state),
        _ => unreachable!(),
    }
}

/// The first empty cell of a board.
fn free_cell(s: &GameState) -> i64 {
    s.board.to_string().find('.').expect("a free cell") as i64
}

#[tokio::test]
async fn the_computer_plays_through_the_move_path_seen_on_every_instance() {
    let redis = RedisServer::start();
    let cfg = config(&redis);
    let a = Instance::start(cfg.clone()).await;
    let b = Instance::start(cfg.clone()).await;
    let mut ann = player(&a, "ann").await;
    let (game, state) = against(&mut ann, "perfect").await;
    assert_eq!(state.status, Status::Playing, "the computer sits at once");
    assert_eq!(
        state.computer.map(|c| (c.mark, c.level)),
        Some((Mark::O, Level::Perfect))
    );
    assert_eq!(state.players.o.as_deref(), Some("Computer (perfect)"));
    // A spectator on the other instance sees the computer's moves through pub/sub.
    let mut eve = player(&b, "eve").await;
    eve.request(json!({"type":"join","game":game,"spectate":true}))
        .await;

    // Play the round out: the perfect computer never loses.
    let mut last = state;
    let mut version = 1;
    while last.status == Status::Playing {
        let cell = free_cell(&last);
        version = ack_version(
            &ann.request(json!({"type":"move","game":game,"cell":cell,"version":version}))
                .await,
        );
        let after = match ann.event(&game, version).await {
            ServerMsg::Moved { state, .. } => state,
            other => panic!("{other:?}"),
        };
        if after.status != Status::Playing {
            last = after;
            break;
        }
        let (v, s) = moved_by(&mut ann, Mark::O).await;
        assert_eq!(v, version + 1, "the computer's move is the next version");
        let (ve, se) = moved_by(&mut eve, Mark::O).await;
        assert_eq!((ve, &se), (v, &s), "the spectator sees the same move");
        (version, last) = (v, s);
    }
    assert_eq!(last.status, Status::Finished);
    assert_ne!(
        last.result.and_then(|r| r.winner),
        Some(Mark::X),
        "the perfect computer never loses"
    );
    // The clocks never forfeited or aborted the computer's seat meanwhile.
    assert!(
        ann.drain_for(Duration::from_millis(500))
            .await
            .iter()
            .all(|m| { !matches!(m, ServerMsg::Aborted { .. } | ServerMsg::Conceded { .. }) })
    );

    // A rematch: the computer agrees, and opens round 2 (O starts even rounds).
    ann.request(json!({"type":"rematch","game":game})).await;
    let started = ann
        .recv_until(|m| matches!(m, ServerMsg::RoundStarted { .. }))
        .await;
    assert_eq!(started.state().map(|s| s.round), Some(2));
    let (v, s) = moved_by(&mut ann, Mark::O).await;
    assert_eq!(s.moves.len(), 1, "the computer opened the round");

    // Resigning works as against a person.
    let r = ann.request(json!({"type":"resign","game":game})).await;
    assert_eq!(ack_version(&r), v + 1);

    // Every move is in the game's log, the computer's like the player's.
    let mut c = redis.sync_conn();
    let log: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(format!("{}game:{{{game}}}:log", cfg.key_prefix))
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    let by_computer = log
        .iter()
        .filter(|(_, f)| f[0].1.contains(r#""type":"moved""#) && f[0].1.contains(r#""mark":"O""#))
        .count();
    assert!(by_computer >= 2, "{log:?}");
}

#[tokio::test]
async fn the_computers_game_survives_a_kill_9_of_the_players_instance() {
    let redis = RedisServer::start();
    let mut cfg = config(&redis);
    // Long enough that the killed instance's own timer never fires: another instance plays.
    cfg.computer_delay = Duration::from_millis(800);
    // And no other clock of the game falls due before the client gives up waiting: only the
    // computer's own deadline can bring its move.
    cfg.match_confirm = Duration::from_secs(60);
    let mut procs = ready_processes(&cfg, &["p0", "p1", "p2"]).await;
    let mut ann = player(&procs[0], "ann").await;
    let (game, _) = against(&mut ann, "easy").await;
    let played = ack_version(&ann.play(&game, 4).await);
    assert_eq!(
        played, 2,
        "the game starts at version 1 with both seats taken"
    );
    procs[0].kill9();
    let token = ann.token.clone();
    drop(ann);

    let mut ann = procs[1].connect().await;
    ann.token = token;
    match ann.hello_resume("ann", &[(&game, played)]).await {
        ServerMsg::Welcome { resumed, .. } => assert!(resumed),
        other => panic!("{other:?}"),
    }
    let (v, s) = moved_by(&mut ann, Mark::O).await;
    assert_eq!(v, 3, "the computer moved once, after the player's move");
    assert_eq!(s.moves.len(), 2);
    // And the game goes on from the new instance.
    let next = ack_version(
        &ann.request(json!({"type":"move","game":game,"cell":free_cell(&s),"version":v}))
            .await,
    );
    assert_eq!(next, 4);
    let (v, _) = moved_by(&mut ann, Mark::O).await;
    assert_eq!(v, 5);
    // Two surviving instances watch the deadline: still exactly one move per turn.
    let extra = ann.drain_for(Duration::from_millis(1500)).await;
    assert!(
        !extra
            .iter()
            .any(|m| matches!(m, ServerMsg::Moved { version, .. } if *version > 5)),
        "{extra:?}"
    );
}

#[tokio::test]
async fn the_computer_is_never_rated_and_quick_match_offers_it() {
    let redis = RedisServer::start();
    let a = Instance::start(config(&redis)).await;
    let mut ann = player(&a, "ann").await;
    let r = ann
        .request(json!({"type":"create","computer":"medium","rated":true}))
        .await;
    assert_eq!(error_code(&r), ErrorCode::ComputerNotRated);
    let r = ann
        .request(json!({"type":"create","computer":"impossible"}))
        .await;
    assert_eq!(error_code(&r), ErrorCode::BadRequest);
    match ann.request(json!({"type":"quick_match"})).await {
        ServerMsg::Ack { info, .. } => assert_eq!(info.offer_computer_ms, Some(15_000)),
        other => panic!("{other:?}"),
    }
}
