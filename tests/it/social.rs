//! Chat, lobby, quick match, presence and game lifetimes, across instances.

use crate::support::backend::Backend;
use crate::support::client::{Ws, ack_version, error_code, player};
use crate::support::eventually;
use crate::support::instances::{Instance, test_config, two_instances};
use crate::support::redis::RedisServer;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tictactoe_protocol::{AwayReason, ErrorCode, Role, ServerMsg};
use tictactoe_rules::{Mark, Status};

fn chat_text(m: &ServerMsg) -> Option<&str> {
    match m {
        ServerMsg::Chat { line, .. } => Some(&line.text),
        _ => None,
    }
}

#[tokio::test]
async fn game_chat_reaches_players_and_spectators_on_every_instance_and_is_replayed_to_joiners() {
    game_chat_on(Backend::single()).await;
}

pub async fn game_chat_on(backend: Backend) {
    let config = backend.config();
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config).await;
    let mut x = player(&a, "ann").await;
    let mut o = player(&b, "bob").await;
    let game = x.create().await;
    o.join(&game).await;
    let reply = x
        .request(json!({"type":"chat","game":game,"text":"  hi\u{7} there \n\n<b>bob</b>"}))
        .await;
    assert!(matches!(reply, ServerMsg::Ack { .. }));
    for ws in [&mut x, &mut o] {
        let m = ws.recv_until(|m| chat_text(m).is_some()).await;
        match m {
            ServerMsg::Chat { game: g, line } => {
                assert_eq!(g.unwrap().as_str(), game);
                assert_eq!(
                    line.text, "hi there <b>bob</b>",
                    "cleaned, markup kept as text"
                );
                assert_eq!(line.from, "ann");
                assert_eq!(line.role, Some(Role::X));
            }
            _ => unreachable!(),
        }
    }
    o.request(json!({"type":"chat","game":game,"text":"hello ann"}))
        .await;
    // A spectator joining later gets the recent lines, oldest first.
    let mut s = player(&b, "sue").await;
    match s.join(&game).await {
        ServerMsg::Snapshot { you, chat, .. } => {
            assert_eq!(you, Role::Spectator);
            let texts: Vec<_> = chat.iter().map(|l| l.text.as_str()).collect();
            assert_eq!(texts, ["hi there <b>bob</b>", "hello ann"]);
        }
        other => panic!("{other:?}"),
    }
    // Spectators chat too, and are labelled as such.
    s.request(json!({"type":"chat","game":game,"text":"go ann"}))
        .await;
    let m = x.recv_until(|m| chat_text(m) == Some("go ann")).await;
    assert!(matches!(m, ServerMsg::Chat { line, .. } if line.role == Some(Role::Spectator)));
    // Bad text is refused with its own code.
    for text in [" \u{0}\u{202e} ", &"x".repeat(281)] {
        let r = s
            .request(json!({"type":"chat","game":game,"text":text}))
            .await;
        assert_eq!(error_code(&r), ErrorCode::InvalidText);
    }
    let r = s
        .request(json!({"type":"chat","game":"elsewhere","text":"hi"}))
        .await;
    assert_eq!(error_code(&r), ErrorCode::NotInGame);
}

#[tokio::test]
async fn chat_history_is_bounded() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.chat_kept = 5;
    config.chat_history = 3;
    let a = Instance::start(config.clone()).await;
    let mut x = player(&a, "ann").await;
    let game = x.create().await;
    for i in 0..8 {
        x.request(json!({"type":"chat","game":game,"text":format!("n{i}")}))
            .await;
    }
    let mut s = player(&a, "sue").await;
    match s.join(&game).await {
        ServerMsg::Snapshot { chat, .. } => {
            let texts: Vec<_> = chat.iter().map(|l| l.text.as_str()).collect();
            assert_eq!(texts, ["n5", "n6", "n7"]);
        }
        other => panic!("{other:?}"),
    }
    let mut c = redis.sync_conn();
    let len: u64 = redis::cmd("XLEN")
        .arg(format!("{}game:{{{game}}}:chat", config.key_prefix))
        .query(&mut c)
        .unwrap();
    assert_eq!(len, 5);
}

#[tokio::test]
async fn lobby_chat_reaches_lobby_watchers_on_every_instance() {
    let (_redis, a, b) = two_instances().await;
    let mut w1 = player(&a, "ann").await;
    let mut w2 = player(&b, "bob").await;
    for w in [&mut w1, &mut w2] {
        assert!(matches!(
            w.request(json!({"type":"lobby","watch":true})).await,
            ServerMsg::Ack { .. }
        ));
    }
    w1.request(json!({"type":"chat","text":"anyone?"})).await;
    let m = w2.recv_until(|m| chat_text(m) == Some("anyone?")).await;
    assert!(
        matches!(m, ServerMsg::Chat { game: None, line } if line.from == "ann" && line.role.is_none())
    );
    // A newcomer to the lobby gets its history.
    let mut w3 = player(&b, "cy").await;
    w3.request(json!({"type":"lobby","watch":true})).await;
    let h = w3
        .recv_until(|m| matches!(m, ServerMsg::ChatHistory { game: None, .. }))
        .await;
    assert!(matches!(h, ServerMsg::ChatHistory { lines, .. } if lines.len() == 1));
}

/// The newest `lobby` list a watcher receives that satisfies `pred`.
async fn lobby_until(
    ws: &mut Ws,
    mut pred: impl FnMut(&[String], &[String]) -> bool,
) -> (Vec<String>, Vec<String>) {
    loop {
        let m = ws
            .recv_until(|m| matches!(m, ServerMsg::Lobby { .. }))
            .await;
        if let ServerMsg::Lobby { open, live } = m {
            let open: Vec<String> = open.iter().map(|e| e.game.to_string()).collect();
            let live: Vec<String> = live.iter().map(|e| e.game.to_string()).collect();
            if pred(&open, &live) {
                return (open, live);
            }
        }
    }
}

#[tokio::test]
async fn the_lobby_follows_games_being_created_filled_and_finished_on_every_instance() {
    let (_redis, a, b) = two_instances().await;
    let mut watcher = player(&b, "wes").await;
    watcher.request(json!({"type":"lobby","watch":true})).await;
    let mut x = player(&a, "ann").await;
    let game = x.create().await;
    lobby_until(&mut watcher, |open, _| open.contains(&game)).await;

    let mut o = player(&a, "bob").await;
    o.join(&game).await;
    lobby_until(&mut watcher, |open, live| {
        !open.contains(&game) && live.contains(&game)
    })
    .await;

    for (i, cell) in [0, 3, 1, 4, 2].into_iter().enumerate() {
        let ws = if i % 2 == 0 { &mut x } else { &mut o };
        ack_version(&ws.play(&game, cell).await);
    }
    lobby_until(&mut watcher, |open, live| {
        !open.contains(&game) && !live.contains(&game)
    })
    .await;

    // A rematch brings it back as live.
    x.request(json!({"type":"rematch","game":game})).await;
    o.request(json!({"type":"rematch","game":game})).await;
    lobby_until(&mut watcher, |_, live| live.contains(&game)).await;

    // Watching stops on request.
    watcher.request(json!({"type":"lobby","watch":false})).await;
    let _ = x.create().await;
    let later = watcher.drain_for(Duration::from_millis(800)).await;
    assert!(
        !later.iter().any(|m| matches!(m, ServerMsg::Lobby { .. })),
        "{later:?}"
    );
}

#[tokio::test]
async fn two_hundred_players_asking_at_once_across_instances_are_all_paired_exactly_once() {
    let (_redis, a, b) = two_instances().await;
    let mut players = Vec::new();
    for i in 0..200 {
        let inst = if i % 2 == 0 { &a } else { &b };
        players.push(player(inst, &format!("p{i}")).await);
    }
    // Everyone asks at once.
    let asks = players.iter_mut().map(|ws| async move {
        let reply = ws.request(json!({"type":"quick_match"})).await;
        assert!(matches!(reply, ServerMsg::Ack { .. }), "{reply:?}");
        let found = ws
            .recv_until(|m| matches!(m, ServerMsg::MatchFound { .. }))
            .await;
        let ServerMsg::MatchFound { game, you } = found else {
            unreachable!()
        };
        let snap = ws
            .recv_until(|m| matches!(m, ServerMsg::Snapshot { .. }))
            .await;
        let ServerMsg::Snapshot {
            you: role, state, ..
        } = snap
        else {
            unreachable!()
        };
        assert_eq!(role, Role::from(you));
        assert_eq!(state.status, Status::Playing);
        (ws.player.clone().unwrap(), game.to_string(), you)
    });
    let results = futures_util::future::join_all(asks).await;
    let mut games: HashMap<String, Vec<(String, Mark)>> = HashMap::new();
    for (player, game, you) in results {
        games.entry(game).or_default().push((player, you));
    }
    assert_eq!(games.len(), 100, "200 players make 100 games");
    for (game, seats) in &games {
        let marks: Vec<Mark> = seats.iter().map(|s| s.1).collect();
        assert!(
            marks.len() == 2 && marks.contains(&Mark::X) && marks.contains(&Mark::O),
            "{game}: {seats:?}"
        );
    }
    // And nobody gets a second match afterwards.
    let extra = players[0].drain_for(Duration::from_millis(300)).await;
    assert!(
        !extra
            .iter()
            .any(|m| matches!(m, ServerMsg::MatchFound { .. }))
    );
}

#[tokio::test]
async fn a_player_who_stops_waiting_is_never_matched() {
    let (redis, a, b) = two_instances().await;
    let mut gone = player(&a, "gone").await;
    gone.request(json!({"type":"quick_match"})).await;
    gone.close().await;
    let mut cancelled = player(&a, "cancel").await;
    cancelled.request(json!({"type":"quick_match"})).await;
    assert!(matches!(
        cancelled.request(json!({"type":"cancel_match"})).await,
        ServerMsg::Ack { .. }
    ));
    let queue = format!("{}{{match}}:queue", a.config.key_prefix);
    eventually("both tickets withdrawn", || {
        let mut c = redis.sync_conn();
        let queue = queue.clone();
        async move {
            let n: i64 = redis::cmd("ZCARD").arg(&queue).query(&mut c).unwrap();
            (n == 0).then_some(())
        }
    })
    .await;
    let mut b1 = player(&b, "b1").await;
    b1.request(json!({"type":"quick_match"})).await;
    let quiet = b1.drain_for(Duration::from_millis(300)).await;
    assert!(
        !quiet
            .iter()
            .any(|m| matches!(m, ServerMsg::MatchFound { .. })),
        "{quiet:?}"
    );
    assert_eq!(
        error_code(&b1.request(json!({"type":"quick_match"})).await),
        ErrorCode::AlreadyQueued
    );
    let mut b2 = player(&a, "b2").await;
    b2.request(json!({"type":"quick_match"})).await;
    let m = b1
        .recv_until(|m| matches!(m, ServerMsg::MatchFound { .. }))
        .await;
    assert!(
        matches!(m, ServerMsg::MatchFound { you: Mark::X, .. }),
        "the longer waiter is X"
    );
}

#[tokio::test]
async fn presence_shows_who_is_there() {
    let (_redis, a, b) = two_instances().await;
    let mut x = player(&a, "ann").await;
    let game = x.create().await;
    let mut o = player(&b, "bob").await;
    match o.join(&game).await {
        ServerMsg::Snapshot { presence, .. } => {
            assert!(presence.players.x && presence.players.o);
            assert_eq!(presence.spectators, 0);
        }
        other => panic!("{other:?}"),
    }
    let presence = |m: &ServerMsg| match m {
        ServerMsg::Presence { presence, .. } => Some(presence.clone()),
        _ => None,
    };
    let mut s1 = player(&b, "s1").await;
    s1.join(&game).await;
    let p = presence(
        &x.recv_until(|m| presence(m).is_some_and(|p| p.spectators == 1))
            .await,
    )
    .unwrap();
    assert!(p.players.x && p.players.o);
    o.close().await;
    // (An older message from before O arrived also says "O offline": skip it by the count.)
    let p = presence(
        &x.recv_until(|m| presence(m).is_some_and(|p| !p.players.o && p.spectators == 1))
            .await,
    )
    .unwrap();
    assert!(p.players.x);
}

#[tokio::test]
async fn finished_and_abandoned_games_expire_with_their_log_and_chat() {
    let redis = RedisServer::start();
    let mut config = test_config(Some(&redis));
    config.finished_game_ttl = Duration::from_secs(1);
    config.game_ttl = Duration::from_secs(2);
    let a = Instance::start(config.clone()).await;
    let mut x = player(&a, "ann").await;
    let mut o = player(&a, "bob").await;
    let game = x.create().await;
    o.join(&game).await;
    x.request(json!({"type":"chat","game":game,"text":"gl"}))
        .await;
    let abandoned = o.create().await;
    for (i, cell) in [0, 3, 1, 4, 2].into_iter().enumerate() {
        let ws = if i % 2 == 0 { &mut x } else { &mut o };
        ack_version(&ws.play(&game, cell).await);
    }
    let key = |g: &str, suffix: &str| format!("{}game:{{{g}}}{suffix}", config.key_prefix);
    let mut c = redis.sync_conn();
    for suffix in ["", ":log", ":chat"] {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key(&game, suffix))
            .query(&mut c)
            .unwrap();
        // A transition sets lifetimes to 1¼ of its ttl (transition.lua), so that moves need
        // not refresh them every time.
        assert!(
            ttl > 0 && ttl <= 1250,
            "{suffix}: finished games live one second (at most 1¼), got {ttl}"
        );
    }
    for suffix in ["", ":log"] {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key(&abandoned, suffix))
            .query(&mut c)
            .unwrap();
        assert!(
            ttl > 1000 && ttl <= 2000,
            "{suffix}: idle games live two seconds, got {ttl}"
        );
    }
    let started = Instant::now();
    eventually("both games expired", || {
        let mut c = redis.sync_conn();
        let keys = [
            key(&game, ""),
            key(&game, ":log"),
            key(&game, ":chat"),
            key(&abandoned, ""),
            key(&abandoned, ":log"),
        ];
        async move {
            let n: i64 = redis::cmd("EXISTS").arg(&keys[..]).query(&mut c).unwrap();
            (n == 0).then_some(())
        }
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let r = x.request(json!({"type":"rematch","game":game})).await;
    assert_eq!(error_code(&r), ErrorCode::UnknownGame);
}

#[tokio::test]
async fn a_rename_reaches_every_game_the_player_sits_in_on_every_instance() {
    let (_redis, a, b) = two_instances().await;
    let mut ann = player(&a, "ann").await;
    let mut bob = player(&b, "bob").await;
    let mut sue = player(&a, "sue").await;
    let seated = ann.create().await;
    bob.join(&seated).await;
    sue.join(&seated).await;
    // A game Bob only watches: his name is not in it, nothing changes there.
    let watched = sue.create().await;
    bob.request(json!({"type":"join","game":watched,"spectate":true}))
        .await;

    for bad in ["", " \u{7} ", &"x".repeat(25)] {
        let reply = bob.request(json!({"type":"rename","name":bad})).await;
        assert_eq!(error_code(&reply), ErrorCode::InvalidName, "{bad:?}");
    }
    let reply = bob
        .request(json!({"type":"rename","name":"  Bobby\u{200B} \n"}))
        .await;
    match reply {
        ServerMsg::Ack { info, .. } => assert_eq!(info.name.as_deref(), Some("Bobby")),
        other => panic!("expected an ack, got {other:?}"),
    }
    // Everyone in the game, on both instances, gets the versioned event with the new state.
    for ws in [&mut ann, &mut bob, &mut sue] {
        match ws
            .recv_until(|m| matches!(m, ServerMsg::Renamed { .. }))
            .await
        {
            ServerMsg::Renamed {
                game,
                mark,
                name,
                state,
                ..
            } => {
                assert_eq!(game.as_str(), seated);
                assert_eq!((mark, name.as_str()), (Mark::O, "Bobby"));
                assert_eq!(state.players.o.as_deref(), Some("Bobby"));
                assert_eq!(state.players.x.as_deref(), Some("ann"));
            }
            _ => unreachable!(),
        }
    }
    match sue.join(&watched).await {
        ServerMsg::Snapshot { state, version, .. } => {
            assert_eq!(version, 1, "no event in a game Bob only watches");
            assert_eq!(state.players.x.as_deref(), Some("sue"));
        }
        other => panic!("{other:?}"),
    }
    // Later lines carry the new name; a snapshot shows it; the session keeps it.
    bob.request(json!({"type":"chat","game":seated,"text":"hi"}))
        .await;
    let line = ann.recv_until(|m| chat_text(m) == Some("hi")).await;
    assert!(matches!(line, ServerMsg::Chat { line, .. } if line.from == "Bobby"));
    match ann.join(&seated).await {
        ServerMsg::Snapshot { state, .. } => assert_eq!(state.players.o.as_deref(), Some("Bobby")),
        other => panic!("{other:?}"),
    }
    let mut again = b.connect().await;
    again.token = bob.token.clone();
    match again
        .request(json!({"type":"hello","token":bob.token}))
        .await
    {
        ServerMsg::Welcome { name, .. } => assert_eq!(name, "Bobby"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn presence_tells_a_player_who_left_from_one_who_disconnected() {
    let (_redis, a, b) = two_instances().await;
    let mut ann = player(&a, "ann").await;
    let bob = player(&b, "bob").await;
    let game = ann.create().await;
    let mut bob = bob;
    bob.join(&game).await;
    let away_o = |m: &ServerMsg| match m {
        ServerMsg::Presence { presence, .. } if !presence.players.o => presence.away.o,
        _ => None,
    };
    bob.request(json!({"type":"leave","game":game})).await;
    let m = ann.recv_until(|m| away_o(m).is_some()).await;
    let away = away_o(&m).unwrap();
    assert_eq!(away.reason, AwayReason::Left);
    assert!(away.for_ms < 5_000, "{away:?}");
    bob.join(&game).await;
    ann.recv_until(|m| matches!(m, ServerMsg::Presence { presence, .. } if presence.players.o && presence.away.o.is_none()))
        .await;
    bob.close().await;
    let m = ann.recv_until(|m| away_o(m).is_some()).await;
    assert_eq!(away_o(&m).unwrap().reason, AwayReason::Disconnected);
    // A late joiner's snapshot says how long ago, so its countdown starts at the right place.
    let mut sue = player(&a, "sue").await;
    match sue.join(&game).await {
        ServerMsg::Snapshot { presence, .. } => {
            let away = presence.away.o.expect("O is away");
            assert_eq!(away.reason, AwayReason::Disconnected);
        }
        other => panic!("{other:?}"),
    }
}

/// Asks for a quick match; returns the game and mark if the request itself paired the
/// player, with the snapshot that followed. A pairing made by the request is sent right
/// behind its ack, so it has arrived by the time a ping sent next is answered.
async fn quick_match_now(ws: &mut Ws) -> Option<(String, Mark, ServerMsg)> {
    let reply = ws.request(json!({"type":"quick_match"})).await;
    assert!(matches!(reply, ServerMsg::Ack { .. }), "{reply:?}");
    ws.request(json!({"type":"ping"})).await;
    let after = ws.drain_for(Duration::ZERO).await;
    let (game, you) = after.iter().find_map(|m| match m {
        ServerMsg::MatchFound { game, you } => Some((game.to_string(), *you)),
        _ => None,
    })?;
    let snapshot = after
        .into_iter()
        .find(|m| matches!(m, ServerMsg::Snapshot { game: g, .. } if g.as_str() == game))
        .expect("the game's snapshot follows match_found");
    Some((game, you, snapshot))
}

/// The game and mark of a quick match the request paired, if it did.
async fn paired_now(ws: &mut Ws) -> Option<(String, Mark)> {
    quick_match_now(ws).await.map(|(game, you, _)| (game, you))
}

#[tokio::test]
async fn a_rename_while_waiting_for_a_match_is_the_name_the_game_shows() {
    let (_redis, a, b) = two_instances().await;
    let mut ann = player(&a, "ann").await;
    assert_eq!(paired_now(&mut ann).await, None);
    // The same session renames from another connection, on the other instance.
    let mut ann_elsewhere = Ws::connect(&b.ws_url()).await;
    ann_elsewhere.token = ann.token.clone();
    ann_elsewhere.hello("ann").await;
    let renamed = ann_elsewhere
        .request(json!({"type":"rename","name":"Annie"}))
        .await;
    assert!(matches!(renamed, ServerMsg::Ack { .. }), "{renamed:?}");

    let mut bob = player(&b, "bob").await;
    let (game, you, bobs) = quick_match_now(&mut bob).await.expect("paired with ann");
    assert_eq!(you, Mark::O);
    let anns = ann
        .recv_until(|m| matches!(m, ServerMsg::Snapshot { game: g, .. } if g.as_str() == game))
        .await;
    for snap in [bobs, anns] {
        let players = &snap.state().unwrap().players;
        assert_eq!(players.x.as_deref(), Some("Annie"), "the name as renamed");
        assert_eq!(players.o.as_deref(), Some("bob"));
    }
}

#[tokio::test]
async fn quick_match_takes_a_game_already_waiting_for_an_opponent() {
    let (_redis, a, b) = two_instances().await;
    let mut ann = player(&a, "ann").await;
    let game = ann.create().await;
    let mut watcher = player(&a, "wes").await;
    watcher.request(json!({"type":"lobby","watch":true})).await;
    lobby_until(&mut watcher, |open, _| open.contains(&game)).await;

    let mut bob = player(&b, "bob").await;
    let (taken, mark, snapshot) = quick_match_now(&mut bob).await.expect("seated");
    assert_eq!((taken, mark), (game.clone(), Mark::O));
    match snapshot {
        ServerMsg::Snapshot { you, state, .. } => {
            assert_eq!(you, Role::O);
            assert_eq!(state.status, Status::Playing);
            assert_eq!(state.players.x.as_deref(), Some("ann"));
            assert_eq!(state.players.o.as_deref(), Some("bob"));
        }
        _ => unreachable!(),
    }
    // The creator learns it as from any join, and the game leaves the open list.
    let seated = ann.event(&game, 2).await;
    assert!(matches!(seated, ServerMsg::Seated { mark: Mark::O, .. }));
    lobby_until(&mut watcher, |open, live| {
        !open.contains(&game) && live.contains(&game)
    })
    .await;
    ack_version(&ann.play(&game, 4).await);
}

#[tokio::test]
async fn quick_match_leaves_alone_its_own_game_and_one_whose_creator_is_gone() {
    let (_redis, a, b) = two_instances().await;
    // Eve opened a game and went: her seat would forfeit before anyone played.
    let mut eve = player(&a, "eve").await;
    let abandoned = eve.create().await;
    let mut sue = player(&b, "sue").await;
    sue.request(json!({"type":"join","game":abandoned,"spectate":true}))
        .await;
    eve.close().await;
    sue.recv_until(|m| matches!(m, ServerMsg::Presence { presence, .. } if !presence.players.x))
        .await;
    // Cy's own game is not an opponent.
    let mut cy = player(&b, "cy").await;
    let own = cy.create().await;
    assert_eq!(paired_now(&mut cy).await, None, "queued instead");
    // Dan finds no game to take either: he is paired with the queued player.
    let mut dan = player(&a, "dan").await;
    let (game, you) = paired_now(&mut dan).await.expect("paired with cy");
    assert_eq!(you, Mark::O);
    assert!(game != abandoned && game != own);
    for g in [&abandoned, &own] {
        match dan.request(json!({"type":"peek","game":g})).await {
            ServerMsg::GameInfo { entry, .. } => assert_eq!(entry.status, Status::Waiting),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn two_quick_matchers_reaching_for_one_open_game_seat_one_and_queue_the_other() {
    let (_redis, a, b) = two_instances().await;
    let mut ann = player(&a, "ann").await;
    let game = ann.create().await;
    let mut bob = player(&a, "bob").await;
    let mut cy = player(&b, "cy").await;
    let (bobs, cys) = tokio::join!(paired_now(&mut bob), paired_now(&mut cy));
    let (mut queued, taken) = match (bobs, cys) {
        (Some(t), None) => (cy, t),
        (None, Some(t)) => (bob, t),
        other => panic!("exactly one takes the seat: {other:?}"),
    };
    assert_eq!(taken, (game.clone(), Mark::O));
    // The other waits in the queue, and the next player is paired with it.
    let mut dan = player(&b, "dan").await;
    let (paired, you) = paired_now(&mut dan).await.expect("paired");
    assert_eq!(you, Mark::O);
    let found = queued
        .recv_until(|m| matches!(m, ServerMsg::MatchFound { .. }))
        .await;
    assert!(
        matches!(&found, ServerMsg::MatchFound { game: g, you: Mark::X } if g.as_str() == paired),
        "{found:?}"
    );
}
