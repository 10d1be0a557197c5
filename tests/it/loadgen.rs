//! The load generator against two real instances sharing one Redis: what it reports must
//! be true of the run (players paired across instances, moves acknowledged, latencies
//! recorded, what the moves cost), whatever the speed of the machine.

use crate::support::WAIT;
use crate::support::instances::two_instances;
use futures_util::StreamExt;
use std::time::Duration;
use tictactoe_tools::loadgen::{LoadgenArgs, Mode, Report, run_with};
use tokio_util::sync::CancellationToken;

async fn load(flags: &[&str]) -> Report {
    let args = LoadgenArgs::try_parse_from(flags).expect("loadgen flags");
    // Set-up, two seconds of measurement and hang-up: well within this bound.
    tokio::time::timeout(
        Duration::from_secs(60),
        run_with(args, CancellationToken::new()),
    )
    .await
    .expect("the load generator stops by itself")
    .expect("loadgen run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn play_mode_pairs_players_across_instances_and_measures_moves() {
    let (redis, a, b) = two_instances().await;
    let urls = format!("{},{}", a.ws_url(), b.ws_url());
    // Both instances run in this test process: its pid stands for the first.
    let me = std::process::id().to_string();
    let r = load(&[
        "--urls",
        &urls,
        "--connections",
        "8",
        "--duration",
        "2s",
        "--think-ms",
        "0",
        "--source-ips",
        "127.0.0.1,127.0.0.2",
        "--seed",
        "1",
        "--server-pids",
        &me,
        "--redis-urls",
        &redis.url(),
        "--quiet",
    ])
    .await;
    let report = r.render();
    eprintln!("{report}");

    assert_eq!(r.mode, Mode::Play);
    assert_eq!(
        (r.connections_established, r.connections_failed),
        (8, 0),
        "{report}"
    );
    assert_eq!(r.games_planned, 4);
    assert_eq!(r.games_started, 4, "{report}");
    // Each instance named itself in its welcomes: every game had one player on each.
    assert_eq!(r.games_cross_instance, 4, "{report}");
    assert_eq!(r.instances.len(), 2);
    for inst in &r.instances {
        assert_eq!(inst.connections, 4, "{report}");
        assert_eq!(inst.names.len(), 1, "{report}");
    }
    assert_ne!(r.instances[0].names, r.instances[1].names);

    assert!(!r.interrupted);
    assert!(r.measured_secs >= 2.0, "{report}");
    assert!(r.moves > 0, "{report}");
    assert!(r.moves_per_sec > 0.0);
    // A round has at most 9 moves: a game with 10 in the window went through a rematch.
    if r.moves > 4 * 9 {
        assert!(r.rounds > 0, "games go on through rematches: {report}");
    }
    let l = &r.latency;
    assert!(l.samples > 0, "{report}");
    // Every measured move but the few in flight when the window closed reached the other
    // player; latencies are sampled from the same moves.
    assert!(l.samples <= r.moves + 4, "{report}");
    assert!(l.p50_ms > 0.0, "{report}");
    assert!(
        l.p50_ms <= l.p90_ms && l.p90_ms <= l.p99_ms && l.p99_ms <= l.max_ms,
        "{report}"
    );
    assert!(r.errors.is_empty(), "{report}");
    assert!(r.transport_errors.is_empty(), "{report}");
    assert_costs_were_measured(&r);

    // The JSON report is the same report (floats to within parsing's last bit).
    let json = serde_json::to_string(&r).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (back.moves, back.games_cross_instance, back.latency.samples),
        (r.moves, r.games_cross_instance, r.latency.samples)
    );
    assert!((back.moves_per_sec - r.moves_per_sec).abs() <= 1e-9 * r.moves_per_sec);
    assert!((back.latency.p99_ms - r.latency.p99_ms).abs() < 1e-9);
}

/// The cost figures are there and plausible; their values depend on the machine.
fn assert_costs_were_measured(r: &Report) {
    let report = r.render();
    // CPU: this process (instances and load generator together) worked for every move.
    let first = &r.instances[0];
    assert!(
        first
            .cpu
            .as_ref()
            .and_then(|c| c.us_per_move)
            .is_some_and(|us| us > 0.0),
        "{report}"
    );
    assert!(
        r.instances_cpu_us_per_move.is_some_and(|us| us > 0.0),
        "{report}"
    );
    assert!(r.instances[1].cpu.is_none(), "no pid, no CPU: {report}");
    let loadgen = r
        .loadgen_cpu
        .as_ref()
        .expect("the load generator's own CPU");
    assert!(
        loadgen.secs > 0.0 && loadgen.us_per_move.is_some(),
        "{report}"
    );
    // Redis, found by its INFO server pid: a move is at least one command and costs it CPU.
    assert_eq!(r.redis.len(), 1, "{report}");
    assert!(r.redis[0].pid.is_some(), "{report}");
    assert!(
        r.redis_cpu_us_per_move.is_some_and(|us| us > 0.0),
        "{report}"
    );
    assert!(
        r.redis_commands_per_move.is_some_and(|n| n >= 1.0),
        "{report}"
    );
    let evalsha = r.redis_commands.iter().find(|c| c.name == "evalsha");
    assert!(evalsha.is_some_and(|c| c.calls > 0), "{report}");
    // Round trips, from the instances' metrics: at least one per accepted move.
    assert!(
        r.redis_round_trips_per_move.is_some_and(|n| n >= 1.0),
        "{report}"
    );
    assert!(
        r.redis_round_trips_by_op.contains_key("transition"),
        "{report}"
    );
    for inst in &r.instances {
        assert!(inst.metrics_url.is_some(), "{report}");
        assert!(inst.accepted_moves.is_some_and(|m| m > 0), "{report}");
    }
    let v = serde_json::to_value(r).unwrap();
    assert!(v["redis_commands_per_move"].as_f64().is_some());
    assert!(v["instances"][0]["cpu"]["us_per_move"].as_f64().is_some());
    assert!(v["loadgen_cpu"]["cores"].as_f64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_offers_its_rate_and_measures_from_the_due_time() {
    let (redis, a, b) = two_instances().await;
    let urls = format!("{},{}", a.ws_url(), b.ws_url());
    let r = load(&[
        "--urls",
        &urls,
        "--mode",
        "open",
        "--rate",
        "50",
        "--arrivals",
        "poisson",
        "--connections",
        "20",
        "--duration",
        "2s",
        "--seed",
        "2",
        "--redis-urls",
        &redis.url(),
        "--quiet",
    ])
    .await;
    let report = r.render();
    eprintln!("{report}");
    assert_eq!(r.mode, Mode::Open);
    assert_eq!((r.rate, r.games_started), (Some(50.0), 10), "{report}");
    assert!(report.contains("offered           50.0 moves/s, poisson arrivals"));
    // Even a debug build keeps up with 50 moves/s: about what was offered is accepted, and
    // no more (a closed loop of 10 games without think time makes several times that).
    assert!(r.moves_per_sec > 20.0 && r.moves_per_sec < 80.0, "{report}");
    assert!(r.latency.samples > 0 && r.latency.p50_ms > 0.0, "{report}");
    assert!(
        r.errors.is_empty() && r.transport_errors.is_empty(),
        "{report}"
    );
    assert!(
        r.redis_commands_per_move.is_some_and(|n| n >= 1.0),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_mode_holds_its_connections_without_errors() {
    let (_redis, a, b) = two_instances().await;
    let urls = format!("{},{}", a.ws_url(), b.ws_url());
    let r = load(&[
        "--urls",
        &urls,
        "--mode",
        "idle",
        "--connections",
        "10",
        "--duration",
        "1s",
        "--ramp",
        "200",
        "--server-pids",
        &std::process::id().to_string(),
        "--quiet",
    ])
    .await;
    let report = r.render();
    eprintln!("{report}");
    assert_eq!(r.mode, Mode::Idle);
    assert_eq!(
        (r.connections_established, r.connections_failed),
        (10, 0),
        "{report}"
    );
    assert_eq!(r.instances[0].connections, 5);
    assert_eq!(r.instances[1].connections, 5);
    assert_eq!((r.moves, r.games_planned), (0, 0));
    assert!(r.errors.is_empty(), "{report}");
    assert!(r.transport_errors.is_empty(), "{report}");
    assert!(!r.interrupted && r.measured_secs >= 1.0, "{report}");
    // Memory is read for the process given (this one); none for the URL without a pid.
    let first = &r.instances[0];
    assert_eq!(first.pid, Some(std::process::id()));
    assert!(first.rss_before_kib.is_some() && first.rss_after_kib.is_some());
    assert!(first.kib_per_connection.is_some(), "{report}");
    assert_eq!(r.instances[1].rss_before_kib, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_early_still_reports() {
    let (redis, a, b) = two_instances().await;
    // Every game channel of this run (the key prefix is the test's own).
    let mut games = redis.client().get_async_pubsub().await.unwrap();
    games
        .psubscribe(format!("{}game:*", a.config.key_prefix))
        .await
        .unwrap();
    let urls = format!("{},{}", a.ws_url(), b.ws_url());
    let args = LoadgenArgs::try_parse_from([
        "--urls",
        &urls,
        "--connections",
        "4",
        "--duration",
        "1m",
        "--think-ms",
        "10",
        "--quiet",
    ])
    .unwrap();
    let stop = CancellationToken::new();
    let run = tokio::spawn(run_with(args, stop.clone()));
    // Stop once games are playing: the first move is published.
    let mut events = games.on_message();
    tokio::time::timeout(WAIT, async {
        loop {
            let m = events.next().await.expect("subscribed to the games");
            let event: serde_json::Value = serde_json::from_slice(m.get_payload_bytes()).unwrap();
            if event["type"] == "moved" {
                break;
            }
        }
    })
    .await
    .expect("a move is published");
    stop.cancel();
    let r = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("stops promptly after cancel")
        .expect("task")
        .expect("report");
    assert!(r.interrupted, "{}", r.render());
    assert!(r.measured_secs < 30.0);
    assert!(
        r.errors.is_empty() && r.transport_errors.is_empty(),
        "{}",
        r.render()
    );
}
