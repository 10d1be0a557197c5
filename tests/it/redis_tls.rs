//! Redis over TLS (`rediss://`), as managed Redis services require: a real redis-server with
//! a TLS port and a certificate from a throwaway CA, which the instances trust through
//! `SSL_CERT_FILE` (read by the TLS library's loading of the system's roots), and refuse
//! without it.

use crate::support::client::{ack_version, seat_pair};
use crate::support::cluster::RedisCluster;
use crate::support::instances::test_config;
use crate::support::processes::ServerProcess;
use crate::support::redis::{RedisServer, client_list};
use crate::support::sentinel::{MASTER_NAME, SentinelSet};
use crate::support::tls::make_certificates;
use crate::support::{TempDir, free_port};
use std::collections::HashMap;
use std::path::Path;
use tictactoe::config::Config;

/// Two instances reach Redis only through its TLS port and carry a game between them.
#[tokio::test]
async fn instances_play_through_a_redis_reached_over_tls() {
    let (certs, redis, tls_port) = tls_redis(None);
    let mut config = test_config(Some(&redis));
    config.redis_url = Some(format!("rediss://127.0.0.1:{tls_port}/"));
    let _instances = play_across_two_instances(&config, &certs.0, "tls").await;
    // Every connection the instances hold to Redis came in on the TLS port: its plain port
    // serves only this test's own client.
    let tls_clients = tls_clients(&mut redis.sync_conn(), redis.port).len();
    assert!(tls_clients >= 2, "TLS connections: {tls_clients}");
}

/// A managed Redis's usual terms, TLS and an ACL user with a password in one URL
/// (`rediss://user:password@host:port`): the instances log in as that user on every
/// connection, and with a wrong password stay unready and say why.
#[tokio::test]
async fn instances_log_in_as_the_acl_user_of_a_rediss_url() {
    let (certs, redis, tls_port) = tls_redis(Some(("app", "s3cret")));
    let mut config = test_config(Some(&redis));
    config.redis_url = Some(format!("rediss://app:s3cret@127.0.0.1:{tls_port}/"));
    let _instances = play_across_two_instances(&config, &certs.0, "tls-user").await;
    let on_tls = tls_clients(&mut redis.sync_conn(), redis.port);
    let lines = || {
        on_tls
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(on_tls.len() >= 2, "TLS connections:\n{}", lines());
    assert!(
        on_tls
            .iter()
            .all(|(f, _)| f.get("user").map(String::as_str) == Some("app")),
        "a TLS connection not logged in as app:\n{}",
        lines()
    );

    config.redis_url = Some(format!("rediss://app:n0t-the-Pa55@127.0.0.1:{tls_port}/"));
    let ca = ca_file(&certs.0);
    let wrong =
        ServerProcess::start_with_env(&config, "tls-wrong-password", &[("SSL_CERT_FILE", &ca)]);
    let body = wrong.wait_unready_for(&["WRONGPASS"]).await;
    assert!(body.contains("\"ready\":false"), "{body}");
    // The password is in neither what /readyz shows nor the log.
    let log = wrong.log();
    assert!(
        !body.contains("n0t-the-Pa55") && !log.contains("n0t-the-Pa55"),
        "the password leaked:\n{body}\n{log}"
    );
}

/// A certificate the instance cannot verify is refused, and /readyz says why.
#[tokio::test]
async fn a_redis_certificate_from_an_unknown_issuer_is_refused_and_named() {
    let (_certs, redis, tls_port) = tls_redis(None);
    let mut config = test_config(Some(&redis));
    config.redis_url = Some(format!("rediss://127.0.0.1:{tls_port}/"));
    let p = ServerProcess::start(&config, "tls-untrusted");
    let body = p.wait_unready_for(&["certificate"]).await;
    assert!(body.contains("UnknownIssuer"), "{body}");
    // (No count of the server's TLS clients here: Redis lists a connection whose handshake
    // is under way, so it would race the instance's retries.)
}

/// Two instance processes with `config`, trusting the CA in `certs` through SSL_CERT_FILE
/// (set for them alone), and a game between them: X on the first, O on the second, a move
/// each way. Returned so that their connections outlive the game.
async fn play_across_two_instances(
    config: &Config,
    certs: &Path,
    name: &str,
) -> (ServerProcess, ServerProcess) {
    let ca = ca_file(certs);
    let env = [("SSL_CERT_FILE", ca.as_str())];
    let a = ServerProcess::start_with_env(config, &format!("{name}-a"), &env);
    let b = ServerProcess::start_with_env(config, &format!("{name}-b"), &env);
    a.wait_ready().await;
    b.wait_ready().await;
    let (mut x, mut o, game) = seat_pair(a.connect().await, b.connect().await).await;
    ack_version(&x.play(&game, 4).await); // v3
    o.event(&game, 3).await;
    ack_version(&o.play(&game, 0).await); // v4
    x.event(&game, 4).await;
    (a, b)
}

/// A redis-server that also speaks TLS on a port of its own (its plain port stays for the
/// harness), with an ACL user (name, password) when `user` is given: the throwaway CA and
/// certificates, the server, and its TLS port.
fn tls_redis(user: Option<(&str, &str)>) -> (TempDir, RedisServer, u16) {
    let certs = TempDir::new("tls");
    make_certificates(&certs.0);
    let tls_port = free_port();
    let redis = match user {
        Some((name, password)) => {
            RedisServer::start_tls_with_user(&certs.0, tls_port, name, password)
        }
        None => RedisServer::start_tls(&certs.0, tls_port),
    };
    (certs, redis, tls_port)
}

/// The CA file in `certs`, as SSL_CERT_FILE takes it.
fn ca_file(certs: &Path) -> String {
    certs.join("ca.crt").to_string_lossy().into_owned()
}

/// The clients of the node behind `conn` that came in through its TLS port: every one whose
/// local address is not its plain port, with its `CLIENT LIST` fields and line.
fn tls_clients(
    conn: &mut redis::Connection,
    plain_port: u16,
) -> Vec<(HashMap<String, String>, String)> {
    let plain = format!("127.0.0.1:{plain_port}");
    client_list(conn)
        .into_iter()
        .filter(|(fields, _)| fields.get("laddr") != Some(&plain))
        .collect()
}

/// A Redis Cluster over TLS (`tls-cluster yes`): the instances take `rediss://` seeds, reach
/// every node and the sharded pub/sub on the TLS ports, and carry a game between them.
#[tokio::test]
async fn instances_play_through_a_cluster_reached_over_tls() {
    let certs = TempDir::new("tls");
    make_certificates(&certs.0);
    let cluster = RedisCluster::start_with_tls(&certs.0);
    let mut config = test_config(None);
    config.redis_cluster_urls = cluster.tls_urls();
    let _instances = play_across_two_instances(&config, &certs.0, "tls-cluster").await;
    // Every node's clients other than the harness's own came in on its TLS port.
    for node in 0..3 {
        let on_tls = tls_clients(&mut cluster.conn(node), cluster.ports[node]).len();
        assert!(on_tls >= 2, "node {node}: {on_tls} TLS clients");
    }
}

/// Sentinel over TLS (`tls-replication yes`): the instances ask the Sentinels over TLS
/// (`rediss://` in REDIS_SENTINELS), reach the primary they name over TLS too, and carry a
/// game between them.
#[tokio::test]
async fn instances_play_through_a_sentinel_set_reached_over_tls() {
    let certs = TempDir::new("tls");
    make_certificates(&certs.0);
    let set = SentinelSet::start_with_tls(1, &certs.0);
    let mut config = test_config(None);
    config.redis_sentinels = set.sentinel_addrs();
    config.redis_sentinel_master = Some(MASTER_NAME.into());
    assert!(
        config
            .redis_sentinels
            .iter()
            .all(|u| u.starts_with("rediss://"))
    );
    let _instances = play_across_two_instances(&config, &certs.0, "tls-sentinel").await;
    // The instances' connections to the primary came in on its TLS port.
    let primary = set.primary().expect("a primary");
    let plain_port: u16 = set
        .url(primary)
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let on_tls = tls_clients(&mut set.conn(primary), plain_port);
    // Not the replica's link, nor the Sentinels' own (they name their connections).
    let instances: Vec<&str> = on_tls
        .iter()
        .filter(|(f, _)| {
            !f.get("flags").is_some_and(|x| x.starts_with('S'))
                && !f.get("name").is_some_and(|n| n.starts_with("sentinel-"))
        })
        .map(|(_, line)| line.as_str())
        .collect();
    assert!(
        instances.len() >= 2,
        "TLS clients of the primary:\n{}",
        instances.join("\n")
    );
}
