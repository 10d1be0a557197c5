//! One conformance suite, run against both stores: the Redis store (on a real redis-server)
//! and the in-memory store must behave the same for every operation the server relies on.

use crate::support::WAIT;
use crate::support::cluster::RedisCluster;
use crate::support::redis::RedisServer;
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tictactoe::ratelimit::{Decision, Rule};
use tictactoe::session::SessionToken;
use tictactoe::store::memory::MemoryStore;
use tictactoe::store::profiles::{
    ProfileCreation, ProfileRecord, RatingWrite, Recorded, RoundRecord, RoundSeat,
};
use tictactoe::store::redis::RedisStore;
use tictactoe::store::{
    Appended, Applied, Attendance, Author, BusLink, ChatRecord, Creation, Deliver, Hold, Keys,
    LeaseRenewal, LobbyChange, LobbyOwner, LobbyRecord, LobbyShare, Missed, PresenceEntry,
    SeatCheck, SessionRecord, Store, StoreLimits, Ticket, Transition,
};
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::profiles::RoundResult;
use tictactoe_protocol::templates::{ChatTemplate, PresenceTemplate};
use tictactoe_protocol::{AwayReason, Role, ServerMsg};
use tictactoe_rules::glicko2::Rating;
use tictactoe_rules::{GameState, Mark, Seats, Status};

const TTL: Duration = Duration::from_secs(60);

fn limits() -> StoreLimits {
    StoreLimits {
        log_len: 8,
        mids_kept: 4,
        chat_len: 5,
        session_games: 3,
        line_ids_ttl: TTL,
    }
}

fn keys() -> Keys {
    Keys::new(format!(
        "c{}:",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ))
}

/// Runs each test body against both stores. The Redis server lives as long as the test.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::{Arc, Store};
            $(
                #[tokio::test]
                async fn $name() {
                    let store: Arc<dyn Store> = Arc::new(super::MemoryStore::new(super::keys(), super::limits()));
                    super::$name(store).await;
                }
            )*
        }
        mod redis {
            use super::{Arc, Duration, Store};
            $(
                #[tokio::test]
                async fn $name() {
                    let server = super::RedisServer::start();
                    let store: Arc<dyn Store> = Arc::new(
                        super::RedisStore::connect(&server.url(), super::keys(), super::limits(), Duration::from_secs(2))
                            .expect("redis store"),
                    );
                    super::$name(store).await;
                }
            )*
        }
        /// Acknowledging only what a replica has (REDIS_WAIT_REPLICAS=1): every write in one
        /// pipeline with its WAIT. The primary starts with the transition script loaded but
        /// not the others, as when instances without the setting ran against it first.
        mod replicated {
            use super::{Arc, Duration, Store};
            $(
                #[tokio::test]
                async fn $name() {
                    let primary = super::RedisServer::start();
                    let _replica = super::RedisServer::start_replica_of(&primary);
                    let transition = std::fs::read_to_string(crate::support::repo_path(
                        "server/src/store/scripts/transition.lua",
                    ))
                    .expect("transition.lua");
                    let _: String = redis::cmd("SCRIPT")
                        .arg("LOAD")
                        .arg(transition)
                        .query(&mut primary.sync_conn())
                        .expect("SCRIPT LOAD");
                    let store: Arc<dyn Store> = Arc::new(
                        super::RedisStore::connect(&primary.url(), super::keys(), super::limits(), Duration::from_secs(2))
                            .and_then(|s| s.wait_for_replicas(1, Duration::from_millis(1500)))
                            .expect("redis store"),
                    );
                    super::$name(store).await;
                }
            )*
        }
        /// Every script on a 3-master cluster: a script touching two slots fails here.
        mod cluster {
            use super::{Arc, Duration, Store};
            $(
                #[tokio::test]
                async fn $name() {
                    let cluster = super::RedisCluster::start();
                    let store: Arc<dyn Store> = Arc::new(
                        super::RedisStore::connect_cluster(&cluster.urls(), super::keys(), super::limits(), Duration::from_secs(2))
                            .expect("cluster store"),
                    );
                    super::$name(store).await;
                }
            )*
        }
    };
}

conformance!(
    games_are_created_once_and_loaded_back,
    a_create_retried_with_its_id_is_told_the_game_is_its_own,
    a_transition_applies_only_at_the_expected_version,
    concurrent_transitions_at_one_version_apply_exactly_once,
    seats_are_checked_and_claimed_atomically,
    a_move_id_is_applied_at_most_once,
    the_move_budget_is_checked_in_the_same_step,
    the_log_replays_missed_events_or_says_too_old,
    events_are_published_to_subscribers,
    sessions_open_rename_remember_and_expire,
    chat_is_bounded_and_needs_the_game,
    a_chat_line_retried_with_its_id_is_added_once,
    chat_and_presence_events_are_published_byte_for_byte,
    rate_buckets_allow_exactly_the_burst,
    a_refund_gives_back_one_request_and_no_more,
    presence_counts_connections_and_starts_clocks,
    a_dead_lease_is_swept,
    a_lapsed_claim_is_taken_up_again,
    presence_announced_again_counts_once,
    the_lobby_lists_open_and_live_games,
    a_transition_moves_its_game_in_the_lobby_where_the_store_can,
    the_lobby_shows_a_few_open_games_per_owner,
    the_lobby_shows_a_few_open_games_per_address,
    waiting_games_are_capped_per_player,
    quick_match_pairs_each_ticket_exactly_once,
    a_rename_while_queued_is_the_name_the_pairing_gets,
    deadlines_keep_the_earliest_and_settle_only_if_unchanged,
    a_match_clock_is_apart_from_the_games_own_date,
    keys_expire_with_their_ttl,
    move_ids_are_remembered_per_player,
    moves_keep_a_game_alive_for_its_ttl_and_a_shorter_ttl_applies_at_once,
    profiles_are_created_recovered_renamed_and_deleted,
    the_address_salt_is_made_once_and_kept,
    a_finished_round_is_recorded_exactly_once,
    the_leaderboard_ranks_by_rating_with_rows_around_a_player,
    the_leaderboards_top_is_read_again_only_once_a_row_changed,
);

fn gid(s: &str) -> GameId {
    GameId::try_from(s.to_string()).unwrap()
}

fn pid(s: &str) -> PlayerId {
    PlayerId::try_from(s.to_string()).unwrap()
}

fn seats(x: &str, o: Option<&str>) -> Seats<Option<PlayerId>> {
    Seats {
        x: Some(pid(x)),
        o: o.map(pid),
    }
}

fn event(g: &GameId, version: u64, state: &GameState) -> Bytes {
    ServerMsg::Created {
        game: g.clone(),
        version,
        state: state.clone(),
    }
    .to_json()
    .into()
}

/// (player id, name) of the authors of chat lines.
const ANN: (&str, &str) = ("ann", "ann");
const BOB: (&str, &str) = ("bob", "bob");

/// Appends a chat line as the operations do: with the event rendered for the author's name
/// and role.
async fn say(
    store: &dyn Store,
    game: Option<&GameId>,
    (player, name): (&str, &str),
    role: Option<Role>,
    said: &str,
    lid: Option<&str>,
    ttl: Duration,
) -> Appended {
    let player = pid(player);
    let author = Author {
        player: &player,
        name,
        role,
    };
    let event = ChatTemplate::new(game, name, role, said);
    store
        .append_chat(game, &author, said, lid, &event, ttl)
        .await
        .unwrap()
}

/// The line an append added, panicking on anything else.
fn added(appended: Appended) -> ChatRecord {
    match appended {
        Appended::Line(line) => line,
        other => panic!("expected a new line, got {other:?}"),
    }
}

/// A payload or logged event as text, to look into.
fn text(bytes: &Bytes) -> &str {
    std::str::from_utf8(bytes).expect("events are UTF-8")
}

/// Updates the lobby as the operations do: with the change rendered for the lobby channel.
async fn lobby_update(store: &dyn Store, entry: &LobbyRecord) {
    lobby_update_by(store, entry, None).await;
}

/// A lobby update naming the player who opened the game.
async fn lobby_update_by(store: &dyn Store, entry: &LobbyRecord, owner: Option<&PlayerId>) {
    lobby_update_from(store, entry, owner, "192.0.2.1").await;
}

/// A lobby update naming the player who opened the game and their address.
async fn lobby_update_from(
    store: &dyn Store,
    entry: &LobbyRecord,
    owner: Option<&PlayerId>,
    address: &str,
) {
    let change = ServerMsg::LobbyChanged {
        entry: entry.clone().into(),
    };
    let owner = owner.map(|player| LobbyOwner { player, address });
    store
        .lobby_update(entry, owner, change.to_json().into())
        .await
        .unwrap();
}

/// A game with X = ann, O = bob, at version 2.
async fn started_game(store: &dyn Store, g: &GameId) -> GameState {
    let s1 = GameState::new("ann");
    assert_eq!(
        store
            .create_game(g, &seats("ann", None), &s1, event(g, 1, &s1), TTL, None)
            .await
            .unwrap(),
        Creation::Created
    );
    let s2 = s1.seat_o("bob").unwrap();
    let t = Transition {
        game: g,
        expected: 1,
        actor: &pid("bob"),
        seat: SeatCheck::Claims(Mark::O),
        state: &s2,
        event: event(g, 2, &s2),
        ttl: TTL,
        limit: None,
        mid: None,
        lobby: None,
    };
    assert_eq!(
        store.transition(&t).await.unwrap(),
        Applied::Ok { version: 2 }
    );
    s2
}

fn step<'a>(
    g: &'a GameId,
    expected: u64,
    actor: &'a PlayerId,
    state: &'a GameState,
    ev: &Bytes,
) -> Transition<'a> {
    Transition {
        game: g,
        expected,
        actor,
        seat: SeatCheck::Holds(Mark::X),
        state,
        event: ev.clone(),
        ttl: TTL,
        limit: None,
        mid: None,
        lobby: None,
    }
}

async fn games_are_created_once_and_loaded_back(store: Arc<dyn Store>) {
    let g = gid("g1");
    let s = GameState::new("ann");
    assert_eq!(
        store
            .create_game(&g, &seats("ann", None), &s, event(&g, 1, &s), TTL, None)
            .await
            .unwrap(),
        Creation::Created
    );
    assert_eq!(
        store
            .create_game(&g, &seats("eve", None), &s, event(&g, 1, &s), TTL, None)
            .await
            .unwrap(),
        Creation::Taken
    );
    let loaded = store.load_game(&g).await.unwrap().unwrap();
    assert_eq!(loaded.version, 1);
    assert_eq!(loaded.state, s);
    assert_eq!(loaded.seats, seats("ann", None));
    assert_eq!(loaded.seat_of(&pid("ann")), Some(Mark::X));
    assert!(store.load_game(&gid("nope")).await.unwrap().is_none());
}

async fn a_create_retried_with_its_id_is_told_the_game_is_its_own(store: Arc<dyn Store>) {
    let g = gid("g1");
    let s = GameState::new("ann");
    let create = |x: &'static str, cid: Option<&'static str>| {
        let (store, g, s) = (store.clone(), g.clone(), s.clone());
        async move {
            store
                .create_game(&g, &seats(x, None), &s, event(&g, 1, &s), TTL, cid)
                .await
                .unwrap()
        }
    };
    // Separators of any kind are only bytes of the id.
    let cid = Some("c-1,=:{x}");
    assert_eq!(create("ann", cid).await, Creation::Created);
    assert_eq!(create("ann", cid).await, Creation::Duplicate);
    // Another create of the same player, another player's, or one without an id: the id is
    // simply taken.
    assert_eq!(create("ann", Some("c-2")).await, Creation::Taken);
    assert_eq!(create("eve", cid).await, Creation::Taken);
    assert_eq!(create("ann", None).await, Creation::Taken);
    // The retry changed nothing: one event, version 1.
    let loaded = store.load_game(&g).await.unwrap().unwrap();
    assert_eq!((loaded.version, loaded.seats), (1, seats("ann", None)));
    match store.events_since(&g, 0).await.unwrap() {
        Missed::Events(events) => assert_eq!(events.len(), 1),
        other => panic!("{other:?}"),
    }
    // A game made without an id is nobody's retry.
    let h = gid("g2");
    store
        .create_game(&h, &seats("ann", None), &s, event(&h, 1, &s), TTL, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .create_game(&h, &seats("ann", None), &s, event(&h, 1, &s), TTL, cid)
            .await
            .unwrap(),
        Creation::Taken
    );
}

async fn a_transition_applies_only_at_the_expected_version(store: Arc<dyn Store>) {
    let g = gid("g1");
    let s2 = started_game(store.as_ref(), &g).await;
    let s3 = s2
        .play(Mark::X, tictactoe_rules::Cell::new(4).unwrap())
        .unwrap();
    let (ann, ev) = (pid("ann"), event(&g, 3, &s3));
    // A stale writer gets the current game back instead.
    match store
        .transition(&step(&g, 1, &ann, &s3, &ev))
        .await
        .unwrap()
    {
        Applied::Stale(sg) => {
            assert_eq!(sg.version, 2);
            assert_eq!(sg.state, s2);
            assert_eq!(sg.seats, seats("ann", Some("bob")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .transition(&step(&g, 2, &ann, &s3, &ev))
            .await
            .unwrap(),
        Applied::Ok { version: 3 }
    );
    assert_eq!(store.load_game(&g).await.unwrap().unwrap().state, s3);
    let unknown = gid("nope");
    assert_eq!(
        store
            .transition(&step(&unknown, 1, &ann, &s3, &ev))
            .await
            .unwrap(),
        Applied::UnknownGame
    );
}

async fn concurrent_transitions_at_one_version_apply_exactly_once(store: Arc<dyn Store>) {
    let g = gid("race");
    let s2 = started_game(store.as_ref(), &g).await;
    let mut tasks = Vec::new();
    for cell in 0..9 {
        let store = store.clone();
        let g = g.clone();
        let s3 = s2
            .play(Mark::X, tictactoe_rules::Cell::new(cell).unwrap())
            .unwrap();
        tasks.push(tokio::spawn(async move {
            let ann = pid("ann");
            let ev = event(&g, 3, &s3);
            store
                .transition(&step(&g, 2, &ann, &s3, &ev))
                .await
                .unwrap()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Applied::Ok { version } => {
                assert_eq!(version, 3);
                ok += 1;
            }
            Applied::Stale(sg) => assert_eq!(sg.version, 3),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(
        store
            .load_game(&g)
            .await
            .unwrap()
            .unwrap()
            .state
            .board
            .count(Mark::X),
        1
    );
}

async fn seats_are_checked_and_claimed_atomically(store: Arc<dyn Store>) {
    let g = gid("g1");
    let s2 = started_game(store.as_ref(), &g).await;
    let s3 = s2
        .play(Mark::X, tictactoe_rules::Cell::new(0).unwrap())
        .unwrap();
    let ev = event(&g, 3, &s3);
    // Bob does not hold X.
    let bob = pid("bob");
    assert_eq!(
        store
            .transition(&step(&g, 2, &bob, &s3, &ev))
            .await
            .unwrap(),
        Applied::NotSeated
    );
    // O is taken: a second claim fails even at the right version.
    let eve = pid("eve");
    let t = Transition {
        seat: SeatCheck::Claims(Mark::O),
        ..step(&g, 2, &eve, &s3, &ev)
    };
    assert_eq!(store.transition(&t).await.unwrap(), Applied::SeatTaken);
    assert_eq!(store.load_game(&g).await.unwrap().unwrap().version, 2);
}

async fn a_move_id_is_applied_at_most_once(store: Arc<dyn Store>) {
    let g = gid("g1");
    let s2 = started_game(store.as_ref(), &g).await;
    let ann = pid("ann");
    let s3 = s2
        .play(Mark::X, tictactoe_rules::Cell::new(0).unwrap())
        .unwrap();
    let ev = event(&g, 3, &s3);
    let t = Transition {
        mid: Some("m-1"),
        ..step(&g, 2, &ann, &s3, &ev)
    };
    assert_eq!(
        store.transition(&t).await.unwrap(),
        Applied::Ok { version: 3 }
    );
    // Retried (even from a stale view), it is recognised and nothing changes.
    assert_eq!(
        store.transition(&t).await.unwrap(),
        Applied::Duplicate { version: 3 }
    );
    assert_eq!(store.applied_move(&g, &ann, "m-1").await.unwrap(), Some(3));
    assert_eq!(
        store.applied_move(&g, &pid("bob"), "m-1").await.unwrap(),
        None
    );
    assert_eq!(store.load_game(&g).await.unwrap().unwrap().version, 3);
    // Only the last `mids_kept` (4) ids are remembered, every one of them with its version
    // (m-i is version i + 2), however many times the list has overflowed: the chaos run found
    // it wiped to nothing each time, and a retried move refused as stale though applied.
    for i in 2..=20 {
        let id = format!("m-{i}");
        let t = Transition {
            mid: Some(&id),
            seat: SeatCheck::None,
            ..step(&g, i + 1, &ann, &s3, &ev)
        };
        assert_eq!(
            store.transition(&t).await.unwrap(),
            Applied::Ok { version: i + 2 }
        );
        for j in 1..=i {
            let applied = store
                .applied_move(&g, &ann, &format!("m-{j}"))
                .await
                .unwrap();
            assert_eq!(applied, (j + 4 > i).then_some(j + 2), "m-{j} after m-{i}");
        }
    }
}

async fn the_move_budget_is_checked_in_the_same_step(store: Arc<dyn Store>) {
    let g = gid("g1");
    let s2 = started_game(store.as_ref(), &g).await;
    let ann = pid("ann");
    let rule = Rule::per_second(0.001, 2);
    let mut v = 2;
    for _ in 0..2 {
        let ev = event(&g, v + 1, &s2);
        let t = Transition {
            limit: Some(rule),
            ..step(&g, v, &ann, &s2, &ev)
        };
        assert_eq!(
            store.transition(&t).await.unwrap(),
            Applied::Ok { version: v + 1 }
        );
        v += 1;
    }
    let ev = event(&g, v + 1, &s2);
    let t = Transition {
        limit: Some(rule),
        ..step(&g, v, &ann, &s2, &ev)
    };
    match store.transition(&t).await.unwrap() {
        Applied::RateLimited { retry_after_ms } => assert!(retry_after_ms > 900_000),
        other => panic!("{other:?}"),
    }
    // A refused move changes nothing.
    assert_eq!(store.load_game(&g).await.unwrap().unwrap().version, v);
    // Another player's budget is its own.
    let bob = pid("bob");
    let t = Transition {
        limit: Some(rule),
        seat: SeatCheck::Holds(Mark::O),
        ..step(&g, v, &bob, &s2, &ev)
    };
    assert_eq!(
        store.transition(&t).await.unwrap(),
        Applied::Ok { version: v + 1 }
    );
}

async fn the_log_replays_missed_events_or_says_too_old(store: Arc<dyn Store>) {
    let g = gid("g1");
    let s2 = started_game(store.as_ref(), &g).await;
    let ann = pid("ann");
    assert_eq!(store.events_since(&g, 2).await.unwrap(), Missed::UpToDate);
    match store.events_since(&g, 0).await.unwrap() {
        Missed::Events(e) => {
            assert_eq!(e.len(), 2);
            assert!(text(&e[1]).contains("\"version\":2"));
        }
        other => panic!("{other:?}"),
    }
    let mut v = 2;
    for _ in 0..10 {
        let ev = event(&g, v + 1, &s2);
        let t = Transition {
            seat: SeatCheck::None,
            ..step(&g, v, &ann, &s2, &ev)
        };
        store.transition(&t).await.unwrap();
        v += 1;
    }
    match store.events_since(&g, v - 3).await.unwrap() {
        Missed::Events(e) => {
            assert_eq!(e.len(), 3);
            assert!(text(&e[0]).contains(&format!("\"version\":{}", v - 2)));
        }
        other => panic!("{other:?}"),
    }
    // The log keeps 8 entries: version 1 is long gone.
    assert_eq!(store.events_since(&g, 1).await.unwrap(), Missed::TooOld);
    assert_eq!(
        store.events_since(&gid("nope"), 0).await.unwrap(),
        Missed::UnknownGame
    );
}

/// A bus link whose stream carries every message, whichever way the store hands them over
/// (to `Deliver` as it reads them, or on the link's stream): both reach the hub.
async fn bus_link(store: &dyn Store) -> BusLink {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let deliver: Deliver = Arc::new(move |m| drop(tx.send(m)));
    let link = store.bus().connect(deliver).await.unwrap();
    let delivered = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    BusLink {
        sink: link.sink,
        messages: futures_util::stream::select(delivered, link.messages).boxed(),
    }
}

async fn events_are_published_to_subscribers(store: Arc<dyn Store>) {
    let g = gid("g1");
    let mut conn = bus_link(store.as_ref()).await;
    let channel = store.keys().game_channel(&g);
    conn.sink
        .subscribe(std::slice::from_ref(&channel))
        .await
        .unwrap();
    started_game(store.as_ref(), &g).await;
    let first = tokio::time::timeout(WAIT, conn.messages.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.channel, channel);
    assert!(text(&first.payload).contains("\"version\":1"));
    let second = tokio::time::timeout(WAIT, conn.messages.next())
        .await
        .unwrap()
        .unwrap();
    assert!(text(&second.payload).contains("\"version\":2"));
    // After unsubscribing, nothing more arrives from that game.
    conn.sink
        .unsubscribe(std::slice::from_ref(&channel))
        .await
        .unwrap();
    let other = store.keys().game_channel(&gid("g2"));
    conn.sink
        .subscribe(std::slice::from_ref(&other))
        .await
        .unwrap();
    store.publish(&channel, "{}".into()).await.unwrap();
    store.publish(&other, "{\"n\":2}".into()).await.unwrap();
    let next = tokio::time::timeout(WAIT, conn.messages.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.channel, other);
}

async fn sessions_open_rename_remember_and_expire(store: Arc<dyn Store>) {
    let token = SessionToken::generate().hash();
    assert!(
        store
            .open_session(&token, None, TTL)
            .await
            .unwrap()
            .is_none()
    );
    let rec = SessionRecord {
        player: pid("p-ann"),
        name: "Ann".into(),
    };
    store.create_session(&token, &rec, TTL).await.unwrap();
    let open = store
        .open_session(&token, Some("Annie"), TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(open.record.player, rec.player);
    assert_eq!(open.record.name, "Annie");
    for g in ["g1", "g2", "g3", "g4"] {
        store.remember_game(&token, &gid(g), TTL).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    store.forget_game(&token, &gid("g3")).await.unwrap();
    let open = store
        .open_session(&token, None, TTL)
        .await
        .unwrap()
        .unwrap();
    // At most three remembered, newest first; g3 forgotten.
    assert_eq!(open.games, vec![gid("g4"), gid("g2")]);
    // A short lifetime ends the session.
    let short = SessionToken::generate().hash();
    store
        .create_session(&short, &rec, Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        store
            .open_session(&short, None, TTL)
            .await
            .unwrap()
            .is_none()
    );
}

async fn chat_is_bounded_and_needs_the_game(store: Arc<dyn Store>) {
    let g = gid("g1");
    assert_eq!(
        say(
            store.as_ref(),
            Some(&g),
            ANN,
            Some(Role::X),
            "hi",
            None,
            TTL
        )
        .await,
        Appended::UnknownGame
    );
    started_game(store.as_ref(), &g).await;
    let mut conn = bus_link(store.as_ref()).await;
    conn.sink
        .subscribe(&[store.keys().game_channel(&g)])
        .await
        .unwrap();
    for i in 0..7 {
        let said = format!("line {i} <b>\"q\"</b>");
        let line = added(
            say(
                store.as_ref(),
                Some(&g),
                ANN,
                Some(Role::X),
                &said,
                None,
                TTL,
            )
            .await,
        );
        assert_eq!(line.text, format!("line {i} <b>\"q\"</b>"));
    }
    let published = tokio::time::timeout(WAIT, conn.messages.next())
        .await
        .unwrap()
        .unwrap();
    let msg: ServerMsg = serde_json::from_slice(&published.payload).expect("a chat message");
    match msg {
        ServerMsg::Chat { game, line } => {
            assert_eq!(game, Some(g.clone()));
            assert_eq!(line.text, "line 0 <b>\"q\"</b>");
            assert_eq!(line.role, Some(Role::X));
        }
        other => panic!("{other:?}"),
    }
    let recent = store.recent_chat(Some(&g), 3).await.unwrap();
    let texts: Vec<_> = recent
        .iter()
        .map(|l| l.text.split(' ').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(texts, ["4", "5", "6"]);
    assert!(
        recent
            .windows(2)
            .all(|w| w[0].id < w[1].id || w[0].ts < w[1].ts)
    );
    // The stream keeps only chat_len (5) lines.
    assert_eq!(store.recent_chat(Some(&g), 100).await.unwrap().len(), 5);
    // The lobby has its own chat.
    added(say(store.as_ref(), None, BOB, None, "hello lobby", None, TTL).await);
    let lobby = store.recent_chat(None, 10).await.unwrap();
    assert_eq!(lobby.len(), 1);
    assert_eq!(lobby[0].role, None);
}

async fn a_chat_line_retried_with_its_id_is_added_once(store: Arc<dyn Store>) {
    let g = gid("g1");
    // Not recorded for a game that does not exist: the retry, once it does, adds the line.
    assert_eq!(
        say(
            store.as_ref(),
            Some(&g),
            ANN,
            Some(Role::X),
            "hi",
            Some("l-1"),
            TTL
        )
        .await,
        Appended::UnknownGame
    );
    started_game(store.as_ref(), &g).await;
    let first = added(
        say(
            store.as_ref(),
            Some(&g),
            ANN,
            Some(Role::X),
            "hi",
            Some("l-1"),
            TTL,
        )
        .await,
    );
    assert_eq!(
        say(
            store.as_ref(),
            Some(&g),
            ANN,
            Some(Role::X),
            "hi",
            Some("l-1"),
            TTL
        )
        .await,
        Appended::Duplicate {
            id: first.id.clone()
        }
    );
    // The id is the author's, in one place: another author, or the lobby, is another line.
    let bobs = added(
        say(
            store.as_ref(),
            Some(&g),
            BOB,
            Some(Role::O),
            "yo",
            Some("l-1"),
            TTL,
        )
        .await,
    );
    assert_ne!(bobs.id, first.id);
    // Each remembered id names its own line, for its author, in its place only.
    let (ann, bob) = (pid(ANN.0), pid(BOB.0));
    let line_of = |game: Option<GameId>, who: PlayerId, lid: &'static str| {
        let store = store.clone();
        async move { store.chat_line_of(game.as_ref(), &who, lid).await.unwrap() }
    };
    assert_eq!(
        line_of(Some(g.clone()), ann.clone(), "l-1").await,
        Some(first.id.clone())
    );
    assert_eq!(
        line_of(Some(g.clone()), bob.clone(), "l-1").await,
        Some(bobs.id.clone())
    );
    assert_eq!(line_of(Some(g.clone()), ann.clone(), "l-2").await, None);
    assert_eq!(line_of(None, ann.clone(), "l-1").await, None);
    let lobby = added(say(store.as_ref(), None, ANN, None, "hi all", Some("l-1"), TTL).await);
    assert_eq!(
        say(store.as_ref(), None, ANN, None, "hi all", Some("l-1"), TTL).await,
        Appended::Duplicate { id: lobby.id }
    );
    // Lines without an id are never duplicates.
    for _ in 0..2 {
        added(
            say(
                store.as_ref(),
                Some(&g),
                ANN,
                Some(Role::X),
                "again",
                None,
                TTL,
            )
            .await,
        );
    }
    let texts: Vec<String> = store
        .recent_chat(Some(&g), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(texts, ["hi", "yo", "again", "again"]);
}

/// Golden bytes: the chat and presence events exactly as `docs/protocol.md` shows them, with
/// the characters JSON must escape. Every store passes, so memory, Redis and Cluster publish
/// byte-identical events; the Lua scripts only join what the instance rendered.
async fn chat_and_presence_events_are_published_byte_for_byte(store: Arc<dyn Store>) {
    let g = gid("g-1_A");
    started_game(store.as_ref(), &g).await;
    let mut conn = bus_link(store.as_ref()).await;
    conn.sink
        .subscribe(&[store.keys().game_channel(&g), store.keys().lobby_channel()])
        .await
        .unwrap();
    let mut next = async || {
        let msg = tokio::time::timeout(WAIT, conn.messages.next())
            .await
            .expect("an event in time")
            .expect("the bus is up");
        text(&msg.payload).to_string()
    };

    let (from, said) = ("ann \"the\" 1st", "say \"hi\" \\ </b> é ✓ 😀\n\t");
    let author = ("ann", from);
    let line = added(
        say(
            store.as_ref(),
            Some(&g),
            author,
            Some(Role::X),
            said,
            None,
            TTL,
        )
        .await,
    );
    assert_eq!(
        next().await,
        format!(
            r#"{{"type":"chat","game":"g-1_A","id":"{}","from":"ann \"the\" 1st","role":"X","text":"say \"hi\" \\ </b> é ✓ 😀\n\t","ts":{}}}"#,
            line.id, line.ts
        )
    );
    let line = added(say(store.as_ref(), None, BOB, None, "lobby/1", None, TTL).await);
    assert_eq!(
        next().await,
        format!(
            r#"{{"type":"chat","id":"{}","from":"bob","text":"lobby/1","ts":{}}}"#,
            line.id, line.ts
        )
    );

    let announce = PresenceTemplate::new(&g);
    let (ann, sue) = (pid("ann"), pid("sue"));
    let entry = |lease, player, role| PresenceEntry {
        lease,
        player,
        role,
    };
    store
        .presence_change(
            &g,
            &entry("i1", &ann, Role::X),
            Attendance::Arrive,
            &announce,
            TTL,
        )
        .await
        .unwrap();
    assert_eq!(
        next().await,
        r#"{"type":"presence","game":"g-1_A","players":{"X":true,"O":false},"spectators":0,"away":{"X":null,"O":null}}"#
    );
    store
        .presence_change(
            &g,
            &entry("gone", &sue, Role::Spectator),
            Attendance::Arrive,
            &announce,
            TTL,
        )
        .await
        .unwrap();
    assert_eq!(
        next().await,
        r#"{"type":"presence","game":"g-1_A","players":{"X":true,"O":false},"spectators":1,"away":{"X":null,"O":null}}"#
    );
    store
        .sweep_lease("gone", TTL, PresenceTemplate::new)
        .await
        .unwrap();
    assert_eq!(
        next().await,
        r#"{"type":"presence","game":"g-1_A","players":{"X":true,"O":false},"spectators":0,"away":{"X":null,"O":null}}"#
    );
    // A player who leaves: the absence is written in, reason and how long ago.
    store
        .presence_change(
            &g,
            &entry("i1", &ann, Role::X),
            Attendance::Leave(AwayReason::Left),
            &announce,
            TTL,
        )
        .await
        .unwrap();
    let left = next().await;
    let head = r#"{"type":"presence","game":"g-1_A","players":{"X":false,"O":false},"spectators":0,"away":{"X":{"reason":"left","for_ms":"#;
    assert!(left.starts_with(head), "{left}");
    assert!(left.ends_with(r#"},"O":null}}"#), "{left}");
}

async fn rate_buckets_allow_exactly_the_burst(store: Arc<dyn Store>) {
    let key = store.keys().rate("test", "10.0.0.1");
    let rule = Rule::per_second(1.0, 3);
    for _ in 0..3 {
        assert!(matches!(
            store.rate(&key, rule).await.unwrap(),
            Decision::Allow { .. }
        ));
    }
    match store.rate(&key, rule).await.unwrap() {
        Decision::Deny { retry_after_us } => {
            assert!(retry_after_us > 900_000 && retry_after_us <= 1_000_000)
        }
        other => panic!("{other:?}"),
    }
    let other = store.keys().rate("test", "10.0.0.2");
    assert!(matches!(
        store.rate(&other, rule).await.unwrap(),
        Decision::Allow { .. }
    ));
}

async fn a_refund_gives_back_one_request_and_no_more(store: Arc<dyn Store>) {
    let key = store.keys().rate("test", "10.0.0.3");
    // Slow enough that the clock refills nothing during the test.
    let rule = Rule::per_second(0.001, 2);
    let allowed = |d: Decision| matches!(d, Decision::Allow { .. });
    // A fresh bucket is full: nothing to give back, and still exactly the burst passes.
    store.rate_refund(&key, rule).await.unwrap();
    assert!(allowed(store.rate(&key, rule).await.unwrap()));
    assert!(allowed(store.rate(&key, rule).await.unwrap()));
    assert!(!allowed(store.rate(&key, rule).await.unwrap()));
    // One given back: one more passes, then none.
    store.rate_refund(&key, rule).await.unwrap();
    assert!(allowed(store.rate(&key, rule).await.unwrap()));
    assert!(!allowed(store.rate(&key, rule).await.unwrap()));
    // Given back more often than requests were allowed: back to the burst, not beyond it.
    for _ in 0..4 {
        store.rate_refund(&key, rule).await.unwrap();
    }
    assert!(allowed(store.rate(&key, rule).await.unwrap()));
    assert!(allowed(store.rate(&key, rule).await.unwrap()));
    assert!(!allowed(store.rate(&key, rule).await.unwrap()));
}

async fn presence_counts_connections_and_starts_clocks(store: Arc<dyn Store>) {
    let g = gid("g1");
    let announce = PresenceTemplate::new(&g);
    started_game(store.as_ref(), &g).await;
    let (ann, bob, sue) = (pid("ann"), pid("bob"), pid("sue"));
    let e = |lease, player, role| PresenceEntry {
        lease,
        player,
        role,
    };
    let c = store
        .presence_change(
            &g,
            &e("i1", &ann, Role::X),
            Attendance::Arrive,
            &announce,
            TTL,
        )
        .await
        .unwrap();
    assert!(c.presence.players.x && !c.presence.players.o);
    store
        .presence_change(
            &g,
            &e("i2", &bob, Role::O),
            Attendance::Arrive,
            &announce,
            TTL,
        )
        .await
        .unwrap();
    // One spectator with two connections on two instances counts once.
    store
        .presence_change(
            &g,
            &e("i1", &sue, Role::Spectator),
            Attendance::Arrive,
            &announce,
            TTL,
        )
        .await
        .unwrap();
    let c = store
        .presence_change(
            &g,
            &e("i2", &sue, Role::Spectator),
            Attendance::Arrive,
            &announce,
            TTL,
        )
        .await
        .unwrap();
    assert_eq!(c.presence.spectators, 1);
    assert_eq!(c.lease_entries, 2);
    // X's second connection, then one of them leaves: X is still here.
    store
        .presence_change(
            &g,
            &e("i1", &ann, Role::X),
            Attendance::Arrive,
            &announce,
            TTL,
        )
        .await
        .unwrap();
    let c = store
        .presence_change(
            &g,
            &e("i1", &ann, Role::X),
            Attendance::Leave(AwayReason::Disconnected),
            &announce,
            TTL,
        )
        .await
        .unwrap();
    assert!(c.presence.players.x && !c.left.x);
    let c = store
        .presence_change(
            &g,
            &e("i1", &ann, Role::X),
            Attendance::Leave(AwayReason::Disconnected),
            &announce,
            TTL,
        )
        .await
        .unwrap();
    assert!(!c.presence.players.x && c.left.x);
    // The emptied seat says why and since when; the present one says nothing.
    let away = c.presence.away.x.expect("X is away");
    assert_eq!(away.reason, AwayReason::Disconnected);
    assert!(away.for_ms < 60_000);
    assert_eq!(c.presence.away.o, None);
    let read = store.presence(&g).await.unwrap();
    assert_eq!(
        (read.players.clone(), read.spectators, read.away.o),
        (c.presence.players.clone(), c.presence.spectators, None)
    );
    assert_eq!(
        read.away.x.map(|a| a.reason),
        Some(AwayReason::Disconnected)
    );
    // Back, then leaving on purpose: told apart from a lost connection.
    let c = store
        .presence_change(
            &g,
            &e("i1", &ann, Role::X),
            Attendance::Arrive,
            &announce,
            TTL,
        )
        .await
        .unwrap();
    assert_eq!(c.presence.away.x, None);
    let c = store
        .presence_change(
            &g,
            &e("i1", &ann, Role::X),
            Attendance::Leave(AwayReason::Left),
            &announce,
            TTL,
        )
        .await
        .unwrap();
    assert_eq!(c.presence.away.x.map(|a| a.reason), Some(AwayReason::Left));
    assert_eq!(
        store.presence(&g).await.unwrap().away.x.map(|a| a.reason),
        Some(AwayReason::Left)
    );
    let view = store.inspect_seats(&g).await.unwrap().unwrap();
    assert_eq!(view.version, 2);
    assert!(view.seen.x && view.seen.o);
    assert!(!view.present.x && view.present.o);
    let since = view.away_since.x.expect("X's clock started");
    assert!(since <= view.now_ms && view.now_ms - since < 60_000);
    assert_eq!(view.away_since.o, None);
    assert!(store.inspect_seats(&gid("nope")).await.unwrap().is_none());
}

async fn a_dead_lease_is_swept(store: Arc<dyn Store>) {
    at_a_time_scale(|scale| a_dead_lease_is_swept_at(store.clone(), scale)).await;
}

async fn a_dead_lease_is_swept_at(store: Arc<dyn Store>, scale: u32) -> Result<(), TooSlow> {
    let g = gid(&format!("g{scale}"));
    let (dead, alive) = (format!("dead{scale}"), format!("alive{scale}"));
    let (dead, alive) = (dead.as_str(), alive.as_str());
    let short = Duration::from_millis(50) * scale;
    let announce = PresenceTemplate::new(&g);
    started_game(store.as_ref(), &g).await;
    let (ann, bob) = (pid("ann"), pid("bob"));
    let started = std::time::Instant::now();
    assert_eq!(
        store.renew_lease(dead, short).await.unwrap(),
        LeaseRenewal::Registered
    );
    let renewed = store.renew_lease(dead, short).await.unwrap();
    if started.elapsed() >= short / 2 {
        // Let it lapse and sweep it, so that the next attempt finds no other dead lease.
        tokio::time::sleep(short * 2).await;
        store
            .sweep_lease(dead, TTL, PresenceTemplate::new)
            .await
            .unwrap();
        return Err(TooSlow);
    }
    assert_eq!(
        renewed,
        LeaseRenewal::Renewed,
        "a lease renewed within its lifetime is known"
    );
    store.renew_lease(alive, TTL).await.unwrap();
    let e = |lease, player, role| PresenceEntry {
        lease,
        player,
        role,
    };
    store
        .presence_change(
            &g,
            &e(dead, &ann, Role::X),
            Attendance::Arrive,
            &announce,
            TTL,
        )
        .await
        .unwrap();
    store
        .presence_change(
            &g,
            &e(alive, &bob, Role::O),
            Attendance::Arrive,
            &announce,
            TTL,
        )
        .await
        .unwrap();
    let mut conn = bus_link(store.as_ref()).await;
    conn.sink
        .subscribe(&[store.keys().game_channel(&g)])
        .await
        .unwrap();
    tokio::time::sleep(short * 8 / 5).await;
    assert_eq!(
        store.claim_lapsed_leases(TTL).await.unwrap(),
        vec![dead.to_string()]
    );
    // Claimed once: another instance finds nothing to sweep, and the lapsed instance, if it
    // is alive after all, waits for the sweep to end.
    assert!(store.claim_lapsed_leases(TTL).await.unwrap().is_empty());
    assert_eq!(
        store.renew_lease(dead, TTL).await.unwrap(),
        LeaseRenewal::Sweeping
    );
    let swept = store
        .sweep_lease(dead, TTL, PresenceTemplate::new)
        .await
        .unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].0, g);
    assert!(swept[0].1.x && !swept[0].1.o);
    let p = store.presence(&g).await.unwrap();
    assert!(!p.players.x && p.players.o);
    assert_eq!(p.away.x.map(|a| a.reason), Some(AwayReason::Disconnected));
    // The change was announced on the game's channel, as the protocol's presence message.
    let msg = tokio::time::timeout(WAIT, conn.messages.next())
        .await
        .unwrap()
        .unwrap();
    let Ok(ServerMsg::Presence { presence, .. }) = serde_json::from_str(text(&msg.payload)) else {
        panic!("not a presence message: {}", text(&msg.payload));
    };
    assert!(!presence.players.x && presence.players.o);
    assert_eq!(
        presence.away.x.map(|a| a.reason),
        Some(AwayReason::Disconnected)
    );
    assert!(store.claim_lapsed_leases(TTL).await.unwrap().is_empty());
    // A swept lease that renews learns it was forgotten.
    assert_eq!(
        store.renew_lease(dead, TTL).await.unwrap(),
        LeaseRenewal::Registered
    );
    Ok(())
}

async fn a_lapsed_claim_is_taken_up_again(store: Arc<dyn Store>) {
    let lease = "dead";
    let short = Duration::from_millis(1);
    assert_eq!(
        store.renew_lease(lease, short).await.unwrap(),
        LeaseRenewal::Registered
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    // A sweeper that claims the lease and dies: its claim lapses, and another takes it up.
    assert_eq!(
        store.claim_lapsed_leases(short).await.unwrap(),
        vec![lease.to_string()]
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store.claim_lapsed_leases(TTL).await.unwrap(),
        vec![lease.to_string()]
    );
    assert!(store.claim_lapsed_leases(TTL).await.unwrap().is_empty());
    assert_eq!(
        store.renew_lease(lease, TTL).await.unwrap(),
        LeaseRenewal::Sweeping
    );
    store
        .sweep_lease(lease, TTL, PresenceTemplate::new)
        .await
        .unwrap();
    assert_eq!(
        store.renew_lease(lease, TTL).await.unwrap(),
        LeaseRenewal::Registered
    );
    assert_eq!(
        store.renew_lease(lease, TTL).await.unwrap(),
        LeaseRenewal::Renewed
    );
}

async fn presence_announced_again_counts_once(store: Arc<dyn Store>) {
    let g = gid("g");
    started_game(store.as_ref(), &g).await;
    let ann = pid("ann");
    let change = |attendance| {
        let store = store.clone();
        let g = g.clone();
        let ann = ann.clone();
        async move {
            let entry = PresenceEntry {
                lease: "i1",
                player: &ann,
                role: Role::X,
            };
            store
                .presence_change(&g, &entry, attendance, &PresenceTemplate::new(&g), TTL)
                .await
                .unwrap()
        }
    };
    // Two connections of ann's, then her presence announced again after a lapse whose sweep
    // missed them: the count is set, not added to.
    change(Attendance::Arrive).await;
    change(Attendance::Arrive).await;
    let announced = change(Attendance::Announce(2)).await;
    assert!(announced.presence.players.x);
    assert_eq!(announced.lease_entries, 1);
    change(Attendance::Leave(AwayReason::Disconnected)).await;
    assert!(store.presence(&g).await.unwrap().players.x);
    let gone = change(Attendance::Leave(AwayReason::Disconnected)).await;
    assert!(!gone.presence.players.x, "two connections, two departures");
    // Announced into a swept game presence: present again, and the away clock stopped.
    change(Attendance::Announce(1)).await;
    let p = store.presence(&g).await.unwrap();
    assert!(p.players.x);
    assert_eq!(p.away.x, None);
}

/// One Redis without WAIT records a change of status's lobby entry in the transition itself,
/// announced on the lobby's channel; a store that cannot leaves the lobby to the caller's
/// follow-up and does not touch it. A refused transition moves nothing either way.
async fn a_transition_moves_its_game_in_the_lobby_where_the_store_can(store: Arc<dyn Store>) {
    let g = gid("g1");
    let s1 = GameState::new("ann");
    let created = store
        .create_game(&g, &seats("ann", None), &s1, event(&g, 1, &s1), TTL, None)
        .await
        .unwrap();
    assert_eq!(created, Creation::Created);
    let record = |s: &GameState| LobbyRecord {
        game: g.clone(),
        status: s.status,
        players: s.players.clone(),
        round: s.round,
        terms: tictactoe_protocol::Terms::of(s),
    };
    lobby_update(store.as_ref(), &record(&s1)).await;
    let mut conn = bus_link(store.as_ref()).await;
    let lobby_channel = store.keys().lobby_channel();
    conn.sink
        .subscribe(std::slice::from_ref(&lobby_channel))
        .await
        .unwrap();

    let s2 = s1.seat_o("bob").unwrap();
    let change = LobbyChange {
        entry: record(&s2),
        event: Bytes::from_static(br#"{"type":"lobby_changed","entry":"g1 playing"}"#),
    };
    let t = Transition {
        game: &g,
        expected: 1,
        actor: &pid("bob"),
        seat: SeatCheck::Claims(Mark::O),
        state: &s2,
        event: event(&g, 2, &s2),
        ttl: TTL,
        limit: None,
        mid: None,
        lobby: Some(&change),
    };
    // Refused (stale): the lobby does not move.
    let stale = Transition {
        expected: 7,
        event: t.event.clone(),
        ..t
    };
    assert!(matches!(
        store.transition(&stale).await.unwrap(),
        Applied::Stale(_)
    ));
    assert_eq!(
        store.transition(&t).await.unwrap(),
        Applied::Ok { version: 2 }
    );
    let (open, live) = store.lobby_list(10, ANY, TTL).await.unwrap();
    let ids = |l: &[LobbyRecord]| l.iter().map(|e| e.game.to_string()).collect::<Vec<_>>();
    if store.lobby_with_transitions() {
        assert_eq!((ids(&open), ids(&live)), (vec![], vec!["g1".to_string()]));
        assert_eq!(live[0].players.o.as_deref(), Some("bob"));
        let announced = tokio::time::timeout(WAIT, async {
            loop {
                let m = conn.messages.next().await.expect("bus open");
                if m.channel == lobby_channel {
                    return m.payload;
                }
            }
        })
        .await
        .expect("the change announced");
        assert_eq!(announced, change.event);
    } else {
        assert_eq!((ids(&open), ids(&live)), (vec!["g1".to_string()], vec![]));
    }
}

async fn the_lobby_lists_open_and_live_games(store: Arc<dyn Store>) {
    let entry = |g: &str, status, o: Option<&str>| LobbyRecord {
        game: gid(g),
        status,
        players: Seats {
            x: Some("ann".into()),
            o: o.map(str::to_string),
        },
        round: 1,
        // A game being played is rated, with both ratings: kept as given.
        terms: tictactoe_protocol::Terms {
            rated: o.is_some(),
            computer: None,
            ratings: Seats {
                x: Some(1500),
                o: o.map(|_| 1490),
            },
        },
    };
    let mut conn = bus_link(store.as_ref()).await;
    conn.sink
        .subscribe(&[store.keys().lobby_channel()])
        .await
        .unwrap();
    lobby_update(store.as_ref(), &entry("g1", Status::Waiting, None)).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    lobby_update(store.as_ref(), &entry("g2", Status::Waiting, None)).await;
    lobby_update(store.as_ref(), &entry("g3", Status::Playing, Some("bob"))).await;
    let (open, live) = store.lobby_list(10, ANY, TTL).await.unwrap();
    assert_eq!(
        open.iter().map(|e| e.game.as_str()).collect::<Vec<_>>(),
        ["g2", "g1"]
    );
    assert_eq!(live.len(), 1);
    assert!(live[0].terms.rated && !open[0].terms.rated);
    assert_eq!(
        live[0].terms.ratings,
        Seats {
            x: Some(1500),
            o: Some(1490)
        }
    );
    assert_eq!(live[0].players.o.as_deref(), Some("bob"));
    // Filled, finished.
    lobby_update(store.as_ref(), &entry("g1", Status::Playing, Some("cy"))).await;
    lobby_update(store.as_ref(), &entry("g3", Status::Finished, Some("bob"))).await;
    let (open, live) = store.lobby_list(10, ANY, TTL).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        live.iter().map(|e| e.game.as_str()).collect::<Vec<_>>(),
        ["g1"]
    );
    let (open, _) = store.lobby_list(1, ANY, TTL).await.unwrap();
    assert_eq!(open.len(), 1);
    // Stale entries are pruned.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (open, live) = store
        .lobby_list(10, ANY, Duration::from_millis(10))
        .await
        .unwrap();
    assert!(open.is_empty() && live.is_empty());
    let msg = tokio::time::timeout(WAIT, conn.messages.next())
        .await
        .unwrap()
        .unwrap();
    assert!(text(&msg.payload).contains("\"type\":\"lobby_changed\""));
}

async fn the_lobby_shows_a_few_open_games_per_owner(store: Arc<dyn Store>) {
    let open = |g: &str| LobbyRecord {
        game: gid(g),
        terms: Default::default(),
        status: Status::Waiting,
        players: Seats {
            x: Some("ann".into()),
            o: None,
        },
        round: 1,
    };
    let (ann, bob) = (pid("p-ann"), pid("p-bob"));
    for g in ["a1", "a2", "a3", "a4"] {
        lobby_update_by(store.as_ref(), &open(g), Some(&ann)).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    lobby_update_by(store.as_ref(), &open("b1"), Some(&bob)).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    for g in ["a5", "a6"] {
        lobby_update_by(store.as_ref(), &open(g), Some(&ann)).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let ids = |v: Vec<LobbyRecord>| {
        v.into_iter()
            .map(|e| e.game.to_string())
            .collect::<Vec<_>>()
    };
    // Ann's two newest, then Bob's, though Ann has more recent ones.
    let (listed, _) = store.lobby_list(10, per_owner(2), TTL).await.unwrap();
    assert_eq!(ids(listed), ["a6", "a5", "b1"]);
    let (listed, _) = store.lobby_list(2, per_owner(1), TTL).await.unwrap();
    assert_eq!(ids(listed), ["a6", "b1"]);
    // Without a per-owner limit, the newest of all.
    let (listed, _) = store.lobby_list(3, ANY, TTL).await.unwrap();
    assert_eq!(ids(listed), ["a6", "a5", "b1"]);
    // A later update without an owner (the game's status changed) keeps the owner; a game
    // that filled leaves the open list, making room for Ann's next one.
    lobby_update(store.as_ref(), &open("a6")).await;
    let mut filled = open("a5");
    filled.status = Status::Playing;
    lobby_update(store.as_ref(), &filled).await;
    let (listed, live) = store.lobby_list(10, per_owner(2), TTL).await.unwrap();
    assert_eq!(ids(listed), ["a6", "b1", "a4"]);
    assert_eq!(ids(live), ["a5"]);
}

async fn the_lobby_shows_a_few_open_games_per_address(store: Arc<dyn Store>) {
    let open = |g: &str| LobbyRecord {
        game: gid(g),
        terms: Default::default(),
        status: Status::Waiting,
        players: Seats {
            x: Some("x".into()),
            o: None,
        },
        round: 1,
    };
    // Three players behind one address, one elsewhere.
    let (p1, p2, p3, p4) = (pid("p-1"), pid("p-2"), pid("p-3"), pid("p-4"));
    for (g, p, address) in [
        ("m1", &p1, "198.51.100.7"),
        ("m2", &p2, "198.51.100.7"),
        ("o1", &p4, "203.0.113.9"),
        ("m3", &p3, "198.51.100.7"),
        ("m4", &p1, "198.51.100.7"),
    ] {
        lobby_update_from(store.as_ref(), &open(g), Some(p), address).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let ids = |v: Vec<LobbyRecord>| {
        v.into_iter()
            .map(|e| e.game.to_string())
            .collect::<Vec<_>>()
    };
    let share = LobbyShare {
        per_owner: 2,
        per_address: 2,
    };
    // The address's two newest, and the other address's game, though older.
    let (listed, _) = store.lobby_list(10, share, TTL).await.unwrap();
    assert_eq!(ids(listed), ["m4", "m3", "o1"]);
    // Both limits at once: p1 has two games, the address lets one through.
    let share = LobbyShare {
        per_owner: 2,
        per_address: 1,
    };
    let (listed, _) = store.lobby_list(10, share, TTL).await.unwrap();
    assert_eq!(ids(listed), ["m4", "o1"]);
    // A status change without an owner keeps the address it was opened from.
    lobby_update(store.as_ref(), &open("m4")).await;
    let (listed, _) = store.lobby_list(10, share, TTL).await.unwrap();
    assert_eq!(ids(listed), ["m4", "o1"]);
    // Without a per-address limit, every owner's share.
    let (listed, _) = store.lobby_list(10, per_owner(2), TTL).await.unwrap();
    assert_eq!(ids(listed), ["m4", "m3", "o1", "m2", "m1"]);
}

/// No limit per owner or per address.
const ANY: LobbyShare = LobbyShare {
    per_owner: 0,
    per_address: 0,
};

fn per_owner(n: usize) -> LobbyShare {
    LobbyShare {
        per_owner: n,
        per_address: 0,
    }
}

async fn waiting_games_are_capped_per_player(store: Arc<dyn Store>) {
    let (ann, bob) = (pid("p-ann"), pid("p-bob"));
    for g in ["w1", "w2"] {
        assert_eq!(
            store.hold_waiting(&ann, &gid(g), 2, TTL).await.unwrap(),
            Hold::Held
        );
    }
    // Holding a held game again changes nothing and is fine.
    assert_eq!(
        store.hold_waiting(&ann, &gid("w2"), 2, TTL).await.unwrap(),
        Hold::Held
    );
    match store.hold_waiting(&ann, &gid("w3"), 2, TTL).await.unwrap() {
        Hold::Full(mut held) => {
            held.sort();
            assert_eq!(held, [gid("w1"), gid("w2")]);
        }
        Hold::Held => panic!("over the cap"),
    }
    // Another player has a cap of its own.
    assert_eq!(
        store.hold_waiting(&bob, &gid("w3"), 2, TTL).await.unwrap(),
        Hold::Held
    );
    // A released game makes room.
    store.release_waiting(&ann, &gid("w1")).await.unwrap();
    assert_eq!(
        store.hold_waiting(&ann, &gid("w3"), 2, TTL).await.unwrap(),
        Hold::Held
    );
    // Held games older than the lifetime no longer count.
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        store
            .hold_waiting(&ann, &gid("w4"), 1, Duration::from_millis(10))
            .await
            .unwrap(),
        Hold::Held
    );
}

/// A renamed ticket, and whether a player waits in the queue.
async fn a_rename_while_queued_is_the_name_the_pairing_gets(store: Arc<dyn Store>) {
    let ticket = |p: &str, name: &str| Ticket {
        player: pid(p),
        name: name.to_string(),
        lease: "i1".into(),
        conn: 1,
    };
    let fresh = Duration::from_secs(30);
    assert!(!store.match_rename(&pid("a"), "Annie").await.unwrap());
    assert!(!store.match_queued(&pid("a"), fresh).await.unwrap());
    store
        .match_enqueue(&ticket("a", "ann"), fresh)
        .await
        .unwrap();
    assert!(store.match_queued(&pid("a"), fresh).await.unwrap());
    assert!(store.match_rename(&pid("a"), "Annie").await.unwrap());
    assert_eq!(
        store
            .match_enqueue(&ticket("b", "bob"), fresh)
            .await
            .unwrap(),
        Some(ticket("a", "Annie"))
    );
    // Paired: no ticket left to rename.
    assert!(!store.match_rename(&pid("a"), "Anne").await.unwrap());
    assert!(!store.match_queued(&pid("a"), fresh).await.unwrap());
    // Queueing again carries the name as it is then, whatever came before.
    store
        .match_enqueue(&ticket("c", "cy"), fresh)
        .await
        .unwrap();
    assert!(store.match_rename(&pid("c"), "Cyrus").await.unwrap());
    assert!(store.match_cancel(&pid("c")).await.unwrap());
    store
        .match_enqueue(&ticket("c", "cy again"), fresh)
        .await
        .unwrap();
    assert_eq!(
        store
            .match_enqueue(&ticket("d", "di"), fresh)
            .await
            .unwrap(),
        Some(ticket("c", "cy again"))
    );
}

async fn quick_match_pairs_each_ticket_exactly_once(store: Arc<dyn Store>) {
    let ticket = |p: &str| Ticket {
        player: pid(p),
        name: p.to_string(),
        lease: "i1".into(),
        conn: 1,
    };
    let fresh = Duration::from_secs(30);
    assert_eq!(
        store.match_enqueue(&ticket("a"), fresh).await.unwrap(),
        None
    );
    // Queuing again only refreshes.
    assert_eq!(
        store.match_enqueue(&ticket("a"), fresh).await.unwrap(),
        None
    );
    assert_eq!(
        store.match_enqueue(&ticket("b"), fresh).await.unwrap(),
        Some(ticket("a"))
    );
    assert_eq!(
        store.match_enqueue(&ticket("c"), fresh).await.unwrap(),
        None
    );
    assert!(store.match_cancel(&pid("c")).await.unwrap());
    assert!(!store.match_cancel(&pid("c")).await.unwrap());
    assert_eq!(
        store.match_enqueue(&ticket("d"), fresh).await.unwrap(),
        None
    );
    // `a` was just paired: the news is on its way to a's instance, which must not queue a
    // again meanwhile. `c` withdrew: gone.
    assert_eq!(
        store
            .match_refresh(&[pid("d"), pid("a"), pid("c")], fresh)
            .await
            .unwrap(),
        vec![pid("c")]
    );

    // Many at once: everyone is paired exactly once.
    let n = 100;
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let t = Ticket {
                player: pid(&format!("q{i}")),
                name: format!("q{i}"),
                lease: "i1".into(),
                conn: i,
            };
            (
                t.player.clone(),
                store
                    .match_enqueue(&t, Duration::from_secs(30))
                    .await
                    .unwrap(),
            )
        }));
    }
    let mut paired = std::collections::HashSet::new();
    let mut pairs = 0;
    for t in tasks {
        let (me, other) = t.await.unwrap();
        if let Some(other) = other {
            pairs += 1;
            assert!(paired.insert(me.clone()), "{me} paired twice");
            assert!(
                paired.insert(other.player.clone()),
                "{} paired twice",
                other.player
            );
        }
    }
    // d was still waiting: 101 players, 50 pairs and one left in the queue.
    assert_eq!(pairs, 50);
    assert_eq!(paired.len(), 100);
    // Once the news had time to arrive, a paired player no longer counts as waiting.
    tokio::time::sleep(Duration::from_millis(60)).await;
    let left = store
        .match_refresh(
            &(0..n)
                .map(|i| pid(&format!("q{i}")))
                .chain([pid("d")])
                .collect::<Vec<_>>(),
            Duration::from_millis(30),
        )
        .await
        .unwrap();
    assert_eq!(left.len(), 100, "exactly one ticket still queued");

    // A ticket not refreshed within `fresh` is dropped instead of paired.
    let leftover = (0..n)
        .map(|i| pid(&format!("q{i}")))
        .chain([pid("d")])
        .find(|p| !left.contains(p))
        .unwrap();
    assert!(store.match_cancel(&leftover).await.unwrap());
    store.match_enqueue(&ticket("old"), fresh).await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        store
            .match_enqueue(&ticket("new"), Duration::from_millis(30))
            .await
            .unwrap(),
        None
    );
}

async fn deadlines_keep_the_earliest_and_settle_only_if_unchanged(store: Arc<dyn Store>) {
    let (g1, g2) = (gid("g1"), gid("g2"));
    let now = tictactoe::app::wall_ms();
    store.set_deadline(&g1, now - 1000).await.unwrap();
    store.set_deadline(&g1, now + 60_000).await.unwrap();
    store.set_deadline(&g2, now + 60_000).await.unwrap();
    let (store_now, due) = store.due_deadlines(10).await.unwrap();
    assert!(store_now + 5_000 > now);
    assert_eq!(due, vec![(g1.clone(), now - 1000)]);
    // Someone else moved it meanwhile: settling the old date changes nothing.
    assert!(!store.settle_deadline(&g1, now - 999, None).await.unwrap());
    assert!(
        store
            .settle_deadline(&g1, now - 1000, Some(now - 500))
            .await
            .unwrap()
    );
    assert_eq!(
        store.due_deadlines(10).await.unwrap().1,
        vec![(g1.clone(), now - 500)]
    );
    assert!(store.settle_deadline(&g1, now - 500, None).await.unwrap());
    assert!(store.due_deadlines(10).await.unwrap().1.is_empty());
}

async fn a_match_clock_is_apart_from_the_games_own_date(store: Arc<dyn Store>) {
    let g = gid("g1");
    let now = tictactoe::app::wall_ms();
    store.set_match_clock(&g, now - 3000).await.unwrap();
    // A forfeit clock set meanwhile is not merged into the earlier match date...
    store.set_deadline(&g, now + 60_000).await.unwrap();
    assert_eq!(
        store.due_deadlines(10).await.unwrap().1,
        vec![(g.clone(), now - 3000)]
    );
    // ...so clearing the match clock (both players arrived) leaves it in place.
    store.clear_match_clock(&g).await.unwrap();
    assert!(store.due_deadlines(10).await.unwrap().1.is_empty());
    store.set_deadline(&g, now - 1000).await.unwrap();
    store.set_match_clock(&g, now - 3000).await.unwrap();
    assert_eq!(
        store.due_deadlines(10).await.unwrap().1,
        vec![(g.clone(), now - 3000), (g.clone(), now - 1000)]
    );
    // Settling addresses the date that fell due, whichever clock holds it.
    assert!(
        store
            .settle_deadline(&g, now - 3000, Some(now - 2000))
            .await
            .unwrap()
    );
    assert_eq!(
        store.due_deadlines(10).await.unwrap().1,
        vec![(g.clone(), now - 2000), (g.clone(), now - 1000)]
    );
    assert!(store.settle_deadline(&g, now - 1000, None).await.unwrap());
    assert!(!store.settle_deadline(&g, now - 1000, None).await.unwrap());
    assert!(store.settle_deadline(&g, now - 2000, None).await.unwrap());
    assert!(store.due_deadlines(10).await.unwrap().1.is_empty());
}

/// A step of a real-time scenario took longer than the lifetime under test: on a loaded
/// machine (a replicated write waits for its replica) that says nothing about the store.
struct TooSlow;

/// Runs a scenario in which real time has to pass, with every duration multiplied by a
/// growing scale until no step was too slow for it. Its assertions hold at every scale, so a
/// wrong store fails at all of them; a slow machine only makes the run longer.
async fn at_a_time_scale<F, Fut>(mut scenario: F)
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<(), TooSlow>>,
{
    for scale in [1, 4, 16, 64] {
        if scenario(scale).await.is_ok() {
            return;
        }
    }
    panic!("every step was too slow even with lifetimes 64 times longer");
}

async fn keys_expire_with_their_ttl(store: Arc<dyn Store>) {
    at_a_time_scale(|scale| {
        let store = store.clone();
        async move {
            let g = gid(&format!("short{scale}"));
            let s = GameState::new("ann");
            let short = Duration::from_millis(100) * scale;
            let started = std::time::Instant::now();
            assert_eq!(
                store
                    .create_game(&g, &seats("ann", None), &s, event(&g, 1, &s), short, None)
                    .await
                    .unwrap(),
                Creation::Created
            );
            let appended = say(
                store.as_ref(),
                Some(&g),
                ANN,
                Some(Role::X),
                "hi",
                None,
                short,
            )
            .await;
            if started.elapsed() >= short / 2 {
                return Err(TooSlow);
            }
            assert!(
                matches!(appended, Appended::Line(_)),
                "the game vanished before its ttl"
            );
            tokio::time::sleep(short * 2).await;
            assert!(store.load_game(&g).await.unwrap().is_none());
            assert_eq!(
                store.events_since(&g, 0).await.unwrap(),
                Missed::UnknownGame
            );
            assert!(store.recent_chat(Some(&g), 10).await.unwrap().is_empty());
            Ok(())
        }
    })
    .await;
}

async fn move_ids_are_remembered_per_player(store: Arc<dyn Store>) {
    let g = gid("g1");
    let s2 = started_game(store.as_ref(), &g).await;
    let (ann, bob) = (pid("ann"), pid("bob"));
    let ev = event(&g, 3, &s2);
    let t = Transition {
        mid: Some("a-1"),
        ..step(&g, 2, &ann, &s2, &ev)
    };
    assert_eq!(
        store.transition(&t).await.unwrap(),
        Applied::Ok { version: 3 }
    );
    // More of the other player's moves than a player's window holds: ann's id stays known.
    let mut v = 3;
    for i in 0..6 {
        let id = format!("b-{i}");
        let t = Transition {
            mid: Some(&id),
            seat: SeatCheck::Holds(Mark::O),
            ..step(&g, v, &bob, &s2, &ev)
        };
        assert_eq!(
            store.transition(&t).await.unwrap(),
            Applied::Ok { version: v + 1 }
        );
        v += 1;
    }
    assert_eq!(store.applied_move(&g, &ann, "a-1").await.unwrap(), Some(3));
    assert_eq!(store.applied_move(&g, &bob, "b-0").await.unwrap(), None);
    assert_eq!(store.applied_move(&g, &bob, "b-5").await.unwrap(), Some(v));
    // Ids are compared whole, whatever characters they hold.
    for (i, id) in [",=", "a-1=3", "a-"].into_iter().enumerate() {
        assert_eq!(store.applied_move(&g, &ann, id).await.unwrap(), None, "{i}");
    }
}

async fn moves_keep_a_game_alive_for_its_ttl_and_a_shorter_ttl_applies_at_once(
    store: Arc<dyn Store>,
) {
    // Real time has to pass here: lifetimes run on Redis's clock.
    at_a_time_scale(|scale| {
        let store = store.clone();
        async move {
            let g = gid(&format!("alive{scale}"));
            let s2 = started_game(store.as_ref(), &g).await;
            let ann = pid("ann");
            let ev = event(&g, 3, &s2);
            let ttl = Duration::from_millis(800) * scale;
            let pause = Duration::from_millis(300) * scale;
            // A step slower than this could let the game lapse between two moves.
            let slow = Duration::from_millis(200) * scale;
            let mut v = 2;
            // A move every `pause` for longer than the ttl: the game outlives it.
            for _ in 0..4 {
                let t = Transition {
                    ttl,
                    seat: SeatCheck::None,
                    ..step(&g, v, &ann, &s2, &ev)
                };
                let started = std::time::Instant::now();
                let applied = store.transition(&t).await.unwrap();
                if started.elapsed() >= slow {
                    return Err(TooSlow);
                }
                assert_eq!(applied, Applied::Ok { version: v + 1 });
                v += 1;
                tokio::time::sleep(pause).await;
            }
            // One pause after the last move, well within the ttl.
            let started = std::time::Instant::now();
            let loaded = store.load_game(&g).await.unwrap();
            let replay = store.events_since(&g, v - 1).await.unwrap();
            if started.elapsed() >= slow {
                return Err(TooSlow);
            }
            assert_eq!(loaded.unwrap().version, v);
            assert!(matches!(replay, Missed::Events(e) if e.len() == 1));
            // A round ends: the shorter ttl of a finished game applies from this transition on.
            let t = Transition {
                ttl: ttl / 8,
                seat: SeatCheck::None,
                ..step(&g, v, &ann, &s2, &ev)
            };
            assert_eq!(
                store.transition(&t).await.unwrap(),
                Applied::Ok { version: v + 1 }
            );
            tokio::time::sleep(ttl / 2).await;
            assert!(store.load_game(&g).await.unwrap().is_none());
            assert_eq!(
                store.events_since(&g, 0).await.unwrap(),
                Missed::UnknownGame
            );
            Ok(())
        }
    })
    .await;
}

fn round<'a>(game: &'a GameId, n: u32, seats: Vec<RoundSeat<'a>>) -> RoundRecord<'a> {
    RoundRecord {
        game,
        round: n,
        seats,
        marker_ttl: TTL,
        history_len: 3,
    }
}

fn seat<'a>(
    player: &'a PlayerId,
    entry: &str,
    result: RoundResult,
    rating: Option<RatingWrite>,
) -> RoundSeat<'a> {
    RoundSeat {
        player,
        entry: entry.to_string(),
        result,
        rating,
    }
}

fn rated(expected_version: u64, rating: f64) -> Option<RatingWrite> {
    Some(RatingWrite {
        expected_version,
        rating: Rating {
            rating,
            deviation: 200.0,
            volatility: 0.06,
        },
    })
}

/// Every instance must key address hashes alike, or two profiles from one address would not
/// be seen as one (tests/it/profiles.rs plays that across two instances).
async fn the_address_salt_is_made_once_and_kept(store: Arc<dyn Store>) {
    let salt = store.address_salt().await.unwrap();
    assert!(salt.len() >= 32, "too short to be a secret: {salt:?}");
    let again = futures_util::future::join_all((0..4).map(|_| store.address_salt())).await;
    for s in again {
        assert_eq!(s.unwrap(), salt);
    }
}

async fn profiles_are_created_recovered_renamed_and_deleted(store: Arc<dyn Store>) {
    let ann = pid("p-ann");
    assert_eq!(store.profile_read(&ann, 20).await.unwrap(), None);
    assert!(!store.profile_new_code(&ann, "c0").await.unwrap());
    assert_eq!(
        store.profile_create(&ann, "Ann", "a1", "c1").await.unwrap(),
        ProfileCreation::Created
    );
    let read = store.profile_read(&ann, 20).await.unwrap().unwrap();
    assert_eq!(read.record.name, "Ann");
    assert_eq!(read.record.rating, Rating::new_player());
    assert_eq!(
        (read.record.wins, read.record.draws, read.record.losses),
        (0, 0, 0)
    );
    assert_eq!(read.record.address, "a1");
    assert_eq!((read.rank, read.history.len()), (None, 0));
    assert_eq!(
        store.profile_of_code("c1").await.unwrap(),
        Some(ann.clone())
    );
    // A second create keeps the profile and replaces the code.
    assert_eq!(
        store
            .profile_create(&ann, "Other", "a9", "c2")
            .await
            .unwrap(),
        ProfileCreation::Existed
    );
    assert_eq!(store.profile_of_code("c1").await.unwrap(), None);
    assert_eq!(
        store.profile_of_code("c2").await.unwrap(),
        Some(ann.clone())
    );
    assert!(store.profile_new_code(&ann, "c3").await.unwrap());
    assert_eq!(store.profile_of_code("c2").await.unwrap(), None);
    assert_eq!(
        store.profile_of_code("c3").await.unwrap(),
        Some(ann.clone())
    );
    store.profile_rename(&ann, "Annie").await.unwrap();
    let seen = store.profile_seen(&ann, "a2").await.unwrap().unwrap();
    assert_eq!((seen.name.as_str(), seen.address.as_str()), ("Annie", "a2"));
    assert!(
        seen.version > read.record.version,
        "every write bumps the version"
    );
    assert_eq!(
        store.profile_seen(&pid("p-nobody"), "a2").await.unwrap(),
        None
    );
    let records = store
        .profile_records(&[&pid("p-nobody"), &ann])
        .await
        .unwrap();
    assert_eq!(records, vec![None, Some(seen)]);
    assert!(store.profile_delete(&ann).await.unwrap());
    assert_eq!(store.profile_read(&ann, 20).await.unwrap(), None);
    assert_eq!(store.profile_of_code("c3").await.unwrap(), None);
    assert!(!store.profile_delete(&ann).await.unwrap());
    // Renaming or seeing a player without a profile makes none.
    store.profile_rename(&ann, "Ghost").await.unwrap();
    assert_eq!(store.profile_read(&ann, 20).await.unwrap(), None);
}

async fn a_finished_round_is_recorded_exactly_once(store: Arc<dyn Store>) {
    let (ann, bob, cy) = (pid("p-ann"), pid("p-bob"), pid("p-cy"));
    let g = gid("g1");
    for (p, name) in [(&ann, "Ann"), (&bob, "Bob"), (&cy, "Cy")] {
        store.profile_create(p, name, "a", name).await.unwrap();
    }
    let v = |r: &Option<ProfileRecord>| r.as_ref().unwrap().version;
    let before = store.profile_records(&[&ann, &bob]).await.unwrap();
    // A rating computed from a profile that changed since is not applied, and nothing is.
    let stale = round(
        &g,
        1,
        vec![
            seat(
                &ann,
                "{\"n\":1}",
                RoundResult::Win,
                rated(v(&before[0]) + 1, 1600.0),
            ),
            seat(
                &bob,
                "{\"n\":1}",
                RoundResult::Loss,
                rated(v(&before[1]), 1400.0),
            ),
        ],
    );
    assert_eq!(store.record_round(&stale).await.unwrap(), Recorded::Stale);
    assert_eq!(store.profile_records(&[&ann, &bob]).await.unwrap(), before);
    let good = round(
        &g,
        1,
        vec![
            seat(
                &ann,
                "{\"n\":1}",
                RoundResult::Win,
                rated(v(&before[0]), 1600.0),
            ),
            seat(
                &bob,
                "{\"n\":1}",
                RoundResult::Loss,
                rated(v(&before[1]), 1400.0),
            ),
        ],
    );
    assert_eq!(store.record_round(&good).await.unwrap(), Recorded::Done);
    assert_eq!(store.record_round(&good).await.unwrap(), Recorded::Already);
    let a = store.profile_read(&ann, 20).await.unwrap().unwrap();
    let b = store.profile_read(&bob, 20).await.unwrap().unwrap();
    assert_eq!(
        (a.record.wins, a.record.losses, a.record.rated_games),
        (1, 0, 1)
    );
    assert_eq!(
        (b.record.wins, b.record.losses, b.record.rated_games),
        (0, 1, 1)
    );
    assert_eq!(
        (a.record.rating.rating, b.record.rating.rating),
        (1600.0, 1400.0)
    );
    assert_eq!((a.rank, b.rank), (Some(1), Some(2)));
    assert_eq!(a.history, vec!["{\"n\":1}".to_string()]);
    // The next rounds: history newest first and bounded; a round without a rating change
    // counts but leaves the rating and the board alone (Cy is not on it).
    for n in 2..=5 {
        let entry = format!("{{\"n\":{n}}}");
        let r = round(
            &g,
            n,
            vec![
                seat(&ann, &entry, RoundResult::Draw, None),
                seat(&cy, &entry, RoundResult::Draw, None),
            ],
        );
        assert_eq!(store.record_round(&r).await.unwrap(), Recorded::Done);
    }
    let a = store.profile_read(&ann, 2).await.unwrap().unwrap();
    assert_eq!(
        a.history,
        vec!["{\"n\":5}".to_string(), "{\"n\":4}".to_string()]
    );
    assert_eq!(
        store
            .profile_read(&ann, 20)
            .await
            .unwrap()
            .unwrap()
            .history
            .len(),
        3
    );
    assert_eq!((a.record.draws, a.record.rating.rating), (4, 1600.0));
    assert_eq!(
        store.profile_read(&cy, 20).await.unwrap().unwrap().rank,
        None
    );
    // A profile deleted before its round is recorded gets nothing back.
    assert!(store.profile_delete(&bob).await.unwrap());
    let r = round(
        &g,
        6,
        vec![
            seat(&ann, "{}", RoundResult::Win, None),
            seat(&bob, "{}", RoundResult::Loss, None),
        ],
    );
    assert_eq!(store.record_round(&r).await.unwrap(), Recorded::Done);
    assert_eq!(store.profile_read(&bob, 20).await.unwrap(), None);
    assert_eq!(
        store
            .profile_read(&ann, 20)
            .await
            .unwrap()
            .unwrap()
            .record
            .wins,
        2
    );
    // Concurrent recorders of one round: exactly one records it.
    let g2 = gid("g2");
    let tries = (0..8).map(|_| {
        let store = store.clone();
        let (g2, ann, cy) = (g2.clone(), ann.clone(), cy.clone());
        tokio::spawn(async move {
            let r = round(
                &g2,
                1,
                vec![
                    seat(&ann, "{}", RoundResult::Loss, None),
                    seat(&cy, "{}", RoundResult::Win, None),
                ],
            );
            store.record_round(&r).await.unwrap()
        })
    });
    let results = futures_util::future::join_all(tries).await;
    let done = results
        .iter()
        .filter(|r| *r.as_ref().unwrap() == Recorded::Done)
        .count();
    assert_eq!(done, 1, "{results:?}");
    assert_eq!(
        store
            .profile_read(&cy, 20)
            .await
            .unwrap()
            .unwrap()
            .record
            .wins,
        1
    );
}

async fn the_leaderboard_ranks_by_rating_with_rows_around_a_player(store: Arc<dyn Store>) {
    let g = gid("g1");
    let players: Vec<PlayerId> = (0..15).map(|i| pid(&format!("p-{i:02}"))).collect();
    for (i, p) in players.iter().enumerate() {
        store
            .profile_create(p, &format!("N{i}"), "a", &format!("c{i}"))
            .await
            .unwrap();
        let version = store.profile_records(&[p]).await.unwrap()[0]
            .as_ref()
            .unwrap()
            .version;
        // Player i rated 1000 + 10 i: the last one leads.
        let r = round(
            &g,
            i as u32 + 1,
            vec![seat(
                p,
                "{}",
                RoundResult::Win,
                rated(version, 1000.0 + 10.0 * i as f64),
            )],
        );
        assert_eq!(store.record_round(&r).await.unwrap(), Recorded::Done);
    }
    let unrated = pid("p-zz");
    store
        .profile_create(&unrated, "Z", "a", "cz")
        .await
        .unwrap();
    let board = store.leaderboard(Some(&players[7]), 4, 5).await.unwrap();
    let names = |rows: &[tictactoe::store::profiles::BoardRecord]| {
        rows.iter()
            .map(|r| (r.rank, r.name.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&board.top),
        vec![
            (1, "N14".into()),
            (2, "N13".into()),
            (3, "N12".into()),
            (4, "N11".into())
        ]
    );
    assert_eq!(board.top[0].rating, 1140.0);
    assert_eq!(board.top[0].wins, 1);
    let me = board.me.clone().unwrap();
    assert_eq!((me.rank, me.name.as_str()), (8, "N7"));
    assert_eq!(
        names(&board.around),
        (3..=13)
            .map(|rank| (rank, format!("N{}", 15 - rank)))
            .collect::<Vec<_>>()
    );
    // Near the top and the bottom, the rows around stop at the ends.
    let board = store.leaderboard(Some(&players[14]), 2, 5).await.unwrap();
    assert_eq!(board.around.first().unwrap().rank, 1);
    assert_eq!(board.around.len(), 6);
    let board = store.leaderboard(Some(&players[0]), 0, 5).await.unwrap();
    assert!(board.top.is_empty());
    assert_eq!(board.around.last().unwrap().rank, 15);
    assert_eq!(board.around.len(), 6);
    // Without a rated round (or a profile) there is no row of one's own.
    let board = store.leaderboard(Some(&unrated), 100, 5).await.unwrap();
    assert_eq!(
        (board.top.len(), board.me, board.around.len()),
        (15, None, 0)
    );
    let board = store.leaderboard(None, 100, 5).await.unwrap();
    assert_eq!((board.top.len(), board.me), (15, None));
    // A deleted profile leaves the board.
    store.profile_delete(&players[14]).await.unwrap();
    let board = store.leaderboard(None, 1, 5).await.unwrap();
    assert_eq!(names(&board.top), vec![(1, "N13".into())]);
    let read = store.profile_read(&players[13], 0).await.unwrap().unwrap();
    assert_eq!(read.rank, Some(1));
}

/// A caller holding the board's top rows at its current version is sent only its own rows,
/// until a row the board shows changes: a rating, a count (a casual round of a listed
/// player too), a name, a profile gone. A store may always send them (the one in memory does):
/// then they are the current rows.
async fn the_leaderboards_top_is_read_again_only_once_a_row_changed(store: Arc<dyn Store>) {
    let g = gid("g1");
    let players: Vec<PlayerId> = (0..3).map(|i| pid(&format!("q-{i}"))).collect();
    let mut round_no = 0;
    let mut play = |p: &PlayerId, rating: Option<f64>| {
        round_no += 1;
        let (store, g, p) = (store.clone(), g.clone(), p.clone());
        let n = round_no;
        async move {
            let write = match rating {
                Some(r) => {
                    let version = store.profile_records(&[&p]).await.unwrap()[0]
                        .as_ref()
                        .unwrap()
                        .version;
                    rated(version, r)
                }
                None => None,
            };
            let r = round(&g, n, vec![seat(&p, "{}", RoundResult::Win, write)]);
            assert_eq!(store.record_round(&r).await.unwrap(), Recorded::Done);
        }
    };
    for (i, p) in players.iter().enumerate() {
        store
            .profile_create(p, &format!("Q{i}"), "a", &format!("k{i}"))
            .await
            .unwrap();
        play(p, Some(1200.0 + 10.0 * i as f64)).await;
    }
    let outsider = pid("q-out");
    store
        .profile_create(&outsider, "Out", "a", "kout")
        .await
        .unwrap();
    let full = store.leaderboard(None, 10, 0).await.unwrap();
    assert_eq!(full.top.len(), 3);
    assert!(!full.top_unchanged);
    // What a caller holding `held` at `version` sees next: the current top either way.
    let next = |held: tictactoe::store::profiles::BoardRead| {
        let store = store.clone();
        async move {
            let read = store
                .leaderboard_since(Some(&pid("q-0")), 10, 1, Some(held.version))
                .await
                .unwrap();
            assert!(read.me.is_some(), "a listed player's own row: {read:?}");
            let current = if read.top_unchanged {
                assert!(read.top.is_empty(), "{read:?}");
                assert_eq!(read.version, held.version);
                held.top.clone()
            } else {
                read.top.clone()
            };
            let fresh = store.leaderboard(None, 10, 0).await.unwrap();
            assert_eq!(current, fresh.top, "the rows held are the board's");
            (read, fresh)
        }
    };
    // Nothing changed; nor for a change the board does not show (the outsider's rename and
    // its casual round; a new recovery code).
    let (read, _) = next(full.clone()).await;
    let unchanged_seen = read.top_unchanged;
    store.profile_rename(&outsider, "Outer").await.unwrap();
    play(&outsider, None).await;
    store
        .profile_create(&players[0], "Q0", "a", "k-new")
        .await
        .unwrap();
    let (read, _) = next(full.clone()).await;
    assert_eq!(read.top_unchanged, unchanged_seen, "{read:?}");
    // Each change the board shows: the rows are read again, and are the new ones.
    let mut held = store.leaderboard(None, 10, 0).await.unwrap();
    store
        .profile_rename(&players[2], "Q2 renamed")
        .await
        .unwrap();
    let (read, fresh) = next(held.clone()).await;
    assert!(!read.top_unchanged);
    assert_eq!(fresh.top[0].name, "Q2 renamed");
    held = fresh;
    play(&players[1], None).await; // a casual win: the count shows
    let (read, fresh) = next(held.clone()).await;
    assert!(!read.top_unchanged);
    assert_eq!(fresh.top[1].wins, 2);
    held = fresh;
    play(&players[0], Some(1300.0)).await;
    let (read, fresh) = next(held.clone()).await;
    assert!(!read.top_unchanged);
    assert_eq!(fresh.top[0].name, "Q0");
    held = fresh;
    store.profile_delete(&players[1]).await.unwrap();
    let (read, fresh) = next(held.clone()).await;
    assert!(!read.top_unchanged);
    assert_eq!(fresh.top.len(), 2);
}
