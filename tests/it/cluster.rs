//! The same server on a Redis Cluster (three masters): the multi-instance game, races,
//! subscriptions, chat, limits and resume run here as well as on one Redis, plus what only a
//! cluster can do to a game: lose and regain the master holding it.

use crate::support::backend::Backend;
use crate::support::client::{ack_version, error_code, seat_pair};
use crate::support::cluster::RedisCluster;
use crate::support::instances::{Instance, test_config};
use crate::support::processes::ServerProcess;
use crate::{failover, game_flow, limits, social};
use serde_json::json;

use tictactoe_protocol::ErrorCode;

#[tokio::test]
async fn a_game_across_instances() {
    game_flow::x_on_instance_a_beats_o_on_instance_b_on(Backend::cluster()).await;
}

#[tokio::test]
async fn racing_moves_are_accepted_exactly_once() {
    game_flow::racing_moves_on(Backend::cluster(), 100).await;
}

#[tokio::test]
async fn each_instance_holds_one_sharded_subscription_per_game() {
    game_flow::subscriptions_on(Backend::cluster()).await;
}

#[tokio::test]
async fn only_instances_whose_clients_watch_the_lobby_subscribe_to_its_sharded_channel() {
    game_flow::lobby_subscriptions_on(Backend::cluster()).await;
}

#[tokio::test]
async fn chat_across_instances() {
    social::game_chat_on(Backend::cluster()).await;
}

#[tokio::test]
async fn the_move_budget_holds_across_instances() {
    limits::move_budget_on(Backend::cluster()).await;
}

#[tokio::test]
async fn an_instance_killed_mid_game_costs_only_a_reconnect() {
    failover::killed_instance_on(Backend::cluster()).await;
}

#[tokio::test]
async fn the_master_holding_a_game_restarts_mid_game_and_the_game_goes_on() {
    let mut cluster = RedisCluster::start();
    let config = tictactoe::config::Config {
        redis_cluster_urls: cluster.urls(),
        ..test_config(None)
    };
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config.clone()).await;
    let (mut x, mut o, game) = seat_pair(a.connect().await, b.connect().await).await;
    ack_version(&x.play(&game, 0).await); // v3
    ack_version(&o.play(&game, 4).await); // v4

    let node = cluster.node_of(&format!("{}game:{{{game}}}", config.key_prefix));
    cluster.stop_node(node);
    let m = x
        .request(json!({"type":"move","game":game,"cell":1,"mid":"m-1"}))
        .await;
    assert_eq!(error_code(&m), ErrorCode::Unavailable);
    cluster.start_node(node);

    // The same move id, retried until the shard answers: applied once, seen on the other
    // instance through the resubscribed shard channel.
    let retry = json!({"type":"move","game":game,"cell":1,"mid":"m-1"});
    let version = ack_version(&x.request_until_available(retry).await);
    assert_eq!(version, 5, "no acknowledged move lost, none applied twice");
    let seen = o.event(&game, 5).await;
    assert_eq!(seen.state().unwrap().board.to_string(), "XX..O....");
    ack_version(&o.play(&game, 8).await);
    ack_version(&x.play(&game, 2).await);
    let end = o.event(&game, 7).await;
    assert_eq!(
        end.state().unwrap().result.unwrap().winner,
        Some(tictactoe_rules::Mark::X)
    );
}

#[tokio::test]
async fn a_games_subscriptions_follow_its_slot_to_another_master() {
    let cluster = RedisCluster::start();
    let config = tictactoe::config::Config {
        redis_cluster_urls: cluster.urls(),
        ..test_config(None)
    };
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config.clone()).await;
    let (mut x, mut o, game) = seat_pair(a.connect().await, b.connect().await).await;
    ack_version(&x.play(&game, 0).await); // v3
    o.event(&game, 3).await;

    let key = format!("{}game:{{{game}}}", config.key_prefix);
    let before = cluster.node_of(&key);
    let after = cluster.migrate_slot_of(&key);
    assert_ne!(before, after);
    assert_eq!(cluster.node_of(&key), after);

    // Both instances still see every move of the game, now published on the new owner.
    ack_version(&o.play(&game, 4).await); // v4
    x.event(&game, 4).await;
    ack_version(&x.play(&game, 1).await); // v5
    let seen = o.event(&game, 5).await;
    assert_eq!(seen.state().unwrap().board.to_string(), "XX..O....");
    // And the subscriptions now live on the new owner.
    let channel = format!("{}game:{{{game}}}:events", config.key_prefix);
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(&channel)
        .query(&mut cluster.conn(after))
        .unwrap();
    assert_eq!(n, 2);
}

/// Nodes behind a password: the instances take it from the URLs in REDIS_CLUSTER_URLS, for
/// every node the client finds and for the sharded pub/sub, and a game goes across them; an
/// instance whose URLs lack it stays unready and says why.
#[tokio::test]
async fn a_password_protected_cluster_is_reached_with_the_urls_credentials() {
    let cluster = RedisCluster::start_with_password("cluster-secret");
    let config = tictactoe::config::Config {
        redis_cluster_urls: cluster.urls(),
        ..test_config(None)
    };
    let a = Instance::start(config.clone()).await;
    let b = Instance::start(config).await;
    let (mut x, mut o, game) = seat_pair(a.connect().await, b.connect().await).await;
    ack_version(&x.play(&game, 4).await); // v3
    o.event(&game, 3).await;
    ack_version(&o.play(&game, 0).await); // v4
    x.event(&game, 4).await;

    let bare: Vec<String> = cluster
        .urls()
        .iter()
        .map(|u| u.replace(":cluster-secret@", ""))
        .collect();
    let without = ServerProcess::start(
        &tictactoe::config::Config {
            redis_cluster_urls: bare,
            ..test_config(None)
        },
        "cluster-no-password",
    );
    let body = without.wait_unready_for(&["NOAUTH", "uthentication"]).await;
    assert!(body.contains("\"ready\":false"), "{body}");
}
