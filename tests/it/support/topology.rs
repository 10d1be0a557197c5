//! The production topology as local processes: one Redis, instance processes `ttt-1`..`ttt-n`
//! sharing it, and nginx in front of them, so a test (or a browser) can pin itself to an
//! instance and still go through nginx.

use super::instances::test_config;
use super::nginx::Nginx;
use super::processes::ServerProcess;
use super::redis::RedisServer;
use std::net::SocketAddr;
use tictactoe::config::Config;

/// Redis, instance processes `ttt-1`..`ttt-n` and nginx in front of them.
pub struct Topology {
    // Field order is drop order: nginx first, then the instances, then Redis.
    pub nginx: Nginx,
    pub servers: Vec<ServerProcess>,
    /// Held for the topology's lifetime.
    pub redis: RedisServer,
}

impl Topology {
    pub async fn start(instances: usize) -> Topology {
        Topology::start_with(instances, |_| {}).await
    }

    /// Like [`Topology::start`], with `tune` changing the instances' settings first.
    pub async fn start_with(instances: usize, tune: impl FnOnce(&mut Config)) -> Topology {
        let redis = RedisServer::start();
        let mut config = test_config(Some(&redis));
        tune(&mut config);
        // nginx connects from here; X-Forwarded-For is believed from it only.
        config.trusted_proxies = vec!["127.0.0.1".into()];
        let servers: Vec<ServerProcess> = (1..=instances)
            .map(|i| ServerProcess::start(&config, &format!("ttt-{i}")))
            .collect();
        for s in &servers {
            s.wait_ready().await;
        }
        let backends: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
        let nginx = Nginx::start(&backends).await;
        Topology {
            nginx,
            servers,
            redis,
        }
    }

    /// Everything the processes logged, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = self.nginx.log();
        for s in &self.servers {
            out.push_str(&format!("--- {} ---\n{}\n", s.instance, s.log()));
        }
        out
    }
}
