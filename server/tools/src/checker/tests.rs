//! The checker on histories made by hand: a clean run passes, and each kind of violation is
//! found (and counted once per client, move or game).

use super::history::*;
use super::*;
use tictactoe_rules::Mark;

const GAME: &str = "g1";

/// A clean game: created (v1), O seated (v2), then X plays 4, O 0, X 8 (v3..v5), each event
/// received by both players on their one connection, each move acknowledged.
fn clean() -> (History, BTreeMap<String, StoredGame>) {
    let moves = [(Mark::X, 4u8), (Mark::O, 0), (Mark::X, 8)];
    let mut log = BTreeMap::from([(1, Logged::Other), (2, Logged::Other)]);
    let mut players: Vec<PlayerHistory> = [Mark::X, Mark::O]
        .into_iter()
        .map(|mark| PlayerHistory {
            game: GAME.into(),
            mark,
            connections: vec![Connection {
                instance: "ttt-1".into(),
                welcomed_ms: 0,
                closed_ms: None,
            }],
            received: vec![Received {
                conn: 0,
                at_ms: 10,
                version: if mark == Mark::X { 1 } else { 2 },
                kind: ReceivedKind::Snapshot,
            }],
            moves: vec![],
            chats: vec![],
        })
        .collect();
    for p in players.iter_mut().filter(|p| p.mark == Mark::X) {
        p.received.push(received(2, 20));
    }
    for (i, (mark, cell)) in moves.iter().enumerate() {
        let v = 3 + i as u64;
        let at = 1_000 * v;
        log.insert(
            v,
            Logged::Moved {
                mark: *mark,
                cell: *cell,
            },
        );
        for p in players.iter_mut() {
            p.received.push(received(v, at + 5));
            if p.mark == *mark {
                p.moves.push(MoveAttempt {
                    mid: format!("m{v}"),
                    cell: *cell,
                    based_on: v - 1,
                    intent_ms: at - 2,
                    sends: 1,
                    resolved_ms: Some(at),
                    ack: Some(MoveAck {
                        at_ms: at,
                        version: v,
                        duplicate: false,
                    }),
                    refused: None,
                });
            }
        }
    }
    players[0].chats.push(AckedChat {
        text: "hello".into(),
        at_ms: 3_500,
    });
    let stored = StoredGame {
        log,
        version: Some(5),
        chat: vec![(1_003_500, "hello".into())],
    };
    let history = History {
        start_epoch_ms: 1_000_000,
        end_ms: 6_000,
        players,
        faults: vec![],
    };
    (history, BTreeMap::from([(GAME.to_string(), stored)]))
}

fn received(version: u64, at_ms: u64) -> Received {
    Received {
        conn: 0,
        at_ms,
        version,
        kind: ReceivedKind::Event,
    }
}

const ALL: Required = Required {
    durable_moves: true,
    durable_chat: true,
};

fn run(h: &History, s: &BTreeMap<String, StoredGame>) -> Findings {
    check(h, s, &Settings::default())
}

#[test]
fn a_clean_history_passes_and_is_counted() {
    let (h, s) = clean();
    let f = run(&h, &s);
    assert_eq!(f.violations(ALL), vec![]);
    assert_eq!((f.games, f.players, f.connections), (1, 2, 2));
    assert_eq!(f.moves_acked, 3);
    assert_eq!(f.events_received, 7);
    assert_eq!(f.chats_acked, 1);
    assert_eq!(f.acked_moves_missing + f.acked_chats_missing, 0);
    assert!(f.examples.is_empty());
    assert!(f.render(ALL).contains("moves applied twice"));
}

#[test]
fn an_acknowledged_move_overwritten_in_the_log_is_missing() {
    let (h, mut s) = clean();
    // A failover lost v5 (X at 8) and the next move of X took that version at 6.
    let g = s.get_mut(GAME).unwrap();
    g.log.insert(
        5,
        Logged::Moved {
            mark: Mark::X,
            cell: 6,
        },
    );
    let f = run(&h, &s);
    assert_eq!(f.acked_moves_missing, 1);
    assert_eq!(
        f.violations(ALL),
        vec![("moves_applied_twice", 1), ("acked_moves_missing", 1)]
    );
    // Without durability required, the loss is reported but not a violation... the
    // unexplained move at v5 still is.
    let lenient = Required {
        durable_moves: false,
        durable_chat: false,
    };
    assert_eq!(f.violations(lenient), vec![("moves_applied_twice", 1)]);
}

#[test]
fn an_acknowledged_move_beyond_the_log_is_missing() {
    let (h, mut s) = clean();
    let g = s.get_mut(GAME).unwrap();
    g.log.remove(&5);
    g.version = Some(4);
    let f = run(&h, &s);
    assert_eq!(f.acked_moves_missing, 1);
    assert_eq!(f.games_log_incomplete, 0);
    assert_eq!(f.violations(ALL), vec![("acked_moves_missing", 1)]);
}

#[test]
fn a_retry_applied_a_second_time_is_found() {
    let (h, mut s) = clean();
    // X's move of v3 (cell 4) applied again as v6 after O's v5... seen as X at 4 on v6,
    // which X chose at v2 only.
    let g = s.get_mut(GAME).unwrap();
    g.log.insert(
        6,
        Logged::Moved {
            mark: Mark::X,
            cell: 4,
        },
    );
    g.version = Some(6);
    let f = run(&h, &s);
    assert_eq!(f.moves_applied_twice, 1);
    assert!(f.examples["moves_applied_twice"][0].contains("v6"));
}

#[test]
fn one_mid_acknowledged_at_two_versions_is_applied_twice() {
    let (mut h, s) = clean();
    let mut again = h.players[0].moves[0].clone();
    again.ack = Some(MoveAck {
        at_ms: 5_500,
        version: 5,
        duplicate: false,
    });
    h.players[0].moves.push(again);
    let f = run(&h, &s);
    assert_eq!(f.moves_applied_twice, 1);
    // The second ack names v5, which holds X at 8, not 4: missing too.
    assert_eq!(f.acked_moves_missing, 1);
}

#[test]
fn an_event_received_twice_is_found_once_per_client() {
    let (mut h, s) = clean();
    let o = &mut h.players[1];
    o.received.insert(3, received(3, 3_006));
    o.received.push(received(4, 6_000));
    let f = run(&h, &s);
    assert_eq!(f.clients_event_twice, 1);
    assert_eq!(f.clients_out_of_order, 0);
    assert_eq!(f.violations(ALL), vec![("clients_event_twice", 1)]);
}

#[test]
fn an_event_after_a_later_one_is_out_of_order() {
    let (mut h, s) = clean();
    // O gets v4 before v3.
    let o = &mut h.players[1];
    o.received.swap(1, 2);
    let f = run(&h, &s);
    assert_eq!(f.clients_out_of_order, 1);
    // v3 came late, so v4 first skipped it: that gap was never covered by a snapshot.
    assert_eq!(f.clients_unfilled_gap, 1);
    assert_eq!(f.clients_event_twice, 0);
}

#[test]
fn a_gap_counts_unless_a_later_snapshot_covers_it() {
    let (mut h, s) = clean();
    let o = &mut h.players[1];
    o.received.retain(|r| r.version != 4);
    let f = run(&h, &s);
    assert_eq!(f.clients_unfilled_gap, 1);
    assert_eq!(
        f.examples["clients_unfilled_gap"][0],
        "g1 O: versions 4..=4 never received nor covered by a snapshot"
    );

    // The same gap, then a resume that came back with a snapshot of v5: filled.
    let o = &mut h.players[1];
    o.connections.push(Connection {
        instance: "ttt-2".into(),
        welcomed_ms: 5_100,
        closed_ms: None,
    });
    o.received.push(Received {
        conn: 1,
        at_ms: 5_110,
        version: 5,
        kind: ReceivedKind::Snapshot,
    });
    let f = run(&h, &s);
    assert_eq!(f.violations(ALL), vec![]);
}

/// The clean game, then O forfeits round 1 at v6, first seen by X at `seen_at`.
fn with_forfeit(seen_at: u64) -> (History, BTreeMap<String, StoredGame>) {
    let (mut h, mut s) = clean();
    let g = s.get_mut(GAME).unwrap();
    g.log.insert(
        6,
        Logged::Conceded {
            mark: Mark::O,
            reason: EndReason::Forfeit,
        },
    );
    g.version = Some(6);
    h.players[0].received.push(received(6, seen_at));
    h.end_ms = seen_at + 1_000;
    (h, s)
}

#[test]
fn a_forfeit_of_a_player_connected_all_along_is_a_violation() {
    let (h, s) = with_forfeit(40_000);
    let f = run(&h, &s);
    assert_eq!(f.forfeits, 1);
    assert_eq!(f.forfeits_while_connected, 1);
    assert_eq!(
        f.violations(ALL),
        vec![("forfeits_while_connected", 1), ("games_stuck", 1)]
    );
}

#[test]
fn a_forfeit_of_a_player_who_was_away_or_cut_off_is_not() {
    // O's connection closed at 9 s and it never came back in time.
    let (mut h, s) = with_forfeit(40_000);
    h.players[1].connections[0].closed_ms = Some(9_000);
    assert_eq!(run(&h, &s).forfeits_while_connected, 0);

    // O came back a moment before the forfeit was seen: the two raced, within the slack.
    h.players[1].connections.push(Connection {
        instance: "ttt-2".into(),
        welcomed_ms: 39_000,
        closed_ms: None,
    });
    assert_eq!(run(&h, &s).forfeits_while_connected, 0);

    // Connected, but the resume never brought the connection back into the game: nothing
    // of the game arrived on it, so the server was right to count the player away.
    let (mut h, s) = with_forfeit(40_000);
    h.players[1].connections[0].closed_ms = Some(9_000);
    h.players[1].connections.push(Connection {
        instance: "ttt-2".into(),
        welcomed_ms: 12_000,
        closed_ms: None,
    });
    assert_eq!(run(&h, &s).forfeits_while_connected, 0);
    // Once an event of the game reached that connection, the player was there.
    h.players[1].received.push(Received {
        conn: 1,
        at_ms: 12_100,
        version: 5,
        kind: ReceivedKind::Snapshot,
    });
    assert_eq!(run(&h, &s).forfeits_while_connected, 1);

    // Connected all along, but its instance's Redis link was frozen before the clock ran.
    let (mut h, s) = with_forfeit(40_000);
    h.faults.push(FaultWindow {
        kind: "freeze_redis_link".into(),
        target: Some("ttt-1".into()),
        start_ms: 6_000,
        end_ms: Some(12_000),
        cut: RedisCut::Instance("ttt-1".into()),
    });
    assert_eq!(run(&h, &s).forfeits_while_connected, 0);
    // A cut of another instance does not excuse it.
    h.faults[0].cut = RedisCut::Instance("ttt-2".into());
    assert_eq!(run(&h, &s).forfeits_while_connected, 1);
    // Redis itself down does.
    h.faults[0].cut = RedisCut::All;
    assert_eq!(run(&h, &s).forfeits_while_connected, 0);
}

#[test]
fn a_forfeit_nobody_saw_is_placed_between_its_neighbours() {
    let (mut h, s) = with_forfeit(40_000);
    // Nobody received v6; v5 was seen at 5 s and the run ended at 41 s: O, connected from
    // 0 to 20 s only, was not there all that time.
    h.players[0].received.pop();
    // Something after it was seen (at 40.5 s): it happened before that.
    h.players[0].received.push(received(7, 40_500));
    h.players[1].connections[0].closed_ms = Some(20_000);
    assert_eq!(run(&h, &s).forfeits_while_connected, 0);
    h.players[1].connections[0].closed_ms = None;
    assert_eq!(run(&h, &s).forfeits_while_connected, 1);
}

#[test]
fn a_forfeit_nobody_saw_at_the_end_is_not_judged() {
    // Nobody saw v6, nor anything after it: it may have come after the load ended and the
    // clients hung up (their connections still open in the record), once the grace ran out.
    let (mut h, s) = with_forfeit(40_000);
    h.players[0].received.pop();
    let f = run(&h, &s);
    assert_eq!(f.forfeits, 1);
    assert_eq!(f.forfeits_after_load, 1);
    assert_eq!(f.forfeits_while_connected, 0);
}

#[test]
fn a_game_without_progress_for_too_long_is_stuck() {
    let (mut h, s) = clean();
    h.end_ms = 5_000 + 30_001 + 10;
    let f = run(&h, &s);
    assert_eq!(f.games_stuck, 1);
    assert_eq!(f.longest_stall_ms, 30_011);
    // Within the setting it is not.
    h.end_ms = 5_000 + 29_000;
    let f = run(&h, &s);
    assert_eq!(f.games_stuck, 0);
}

#[test]
fn an_aborted_game_has_ended_and_is_not_stuck() {
    let (mut h, mut s) = clean();
    let g = s.get_mut(GAME).unwrap();
    g.log.insert(6, Logged::Aborted);
    g.version = Some(6);
    h.players[0].received.push(received(6, 5_500));
    h.end_ms = 100_000;
    assert_eq!(run(&h, &s).games_stuck, 0);
}

#[test]
fn an_acknowledged_chat_line_missing_from_history_is_found_unless_trimmed() {
    let (h, mut s) = clean();
    s.get_mut(GAME).unwrap().chat.clear();
    let f = run(&h, &s);
    assert_eq!(f.acked_chats_missing, 1);
    let lenient = Required {
        durable_moves: true,
        durable_chat: false,
    };
    assert_eq!(f.violations(lenient), vec![]);
    assert_eq!(f.violations(ALL), vec![("acked_chats_missing", 1)]);

    // A full history whose oldest line is newer than the ack: trimmed, not lost.
    let settings = Settings {
        chat_kept: 2,
        ..Settings::default()
    };
    s.get_mut(GAME).unwrap().chat = vec![(1_004_000, "a".into()), (1_004_100, "b".into())];
    assert_eq!(check(&h, &s, &settings).acked_chats_missing, 0);
    // Not full: nothing was trimmed, so the line is missing.
    s.get_mut(GAME).unwrap().chat.pop();
    assert_eq!(check(&h, &s, &settings).acked_chats_missing, 1);
}

#[test]
fn a_log_with_holes_cannot_be_audited_whole() {
    let (h, mut s) = clean();
    s.get_mut(GAME).unwrap().log.remove(&1);
    let f = run(&h, &s);
    assert_eq!(f.games_log_incomplete, 1);
    assert_eq!(f.violations(ALL), vec![("games_log_incomplete", 1)]);
}

#[test]
fn the_report_keeps_many_examples_and_prints_a_few() {
    let mut f = Findings::default();
    for i in 0..120 {
        f.example("games_stuck", format!("g{i}: no progress"));
    }
    assert_eq!(f.examples["games_stuck"].len(), EXAMPLES);
    let text = f.render(Required::default());
    assert_eq!(text.matches("e.g. games_stuck").count(), PRINTED);
    assert!(text.contains(&format!(
        "({} more games_stuck in the JSON report)",
        EXAMPLES - PRINTED
    )));
}
