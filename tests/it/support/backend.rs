//! Where a test keeps its state: one Redis or a Redis Cluster, so that one test body runs
//! against both (the cluster tests call the single-Redis tests' bodies with a cluster).

use super::cluster::RedisCluster;
use super::instances::test_config;
use super::redis::RedisServer;
use tictactoe::config::Config;

/// Where the tests keep their state: one Redis, or a Redis Cluster.
pub enum Backend {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl Backend {
    pub fn single() -> Backend {
        Backend::Single(RedisServer::start())
    }

    pub fn cluster() -> Backend {
        Backend::Cluster(RedisCluster::start())
    }

    /// [`test_config`] pointed at this backend.
    pub fn config(&self) -> Config {
        match self {
            Backend::Single(r) => test_config(Some(r)),
            Backend::Cluster(c) => Config {
                redis_cluster_urls: c.urls(),
                ..test_config(None)
            },
        }
    }

    /// A connection to the node holding `key` (any node for a single Redis).
    pub fn conn_for(&self, key: &str) -> redis::Connection {
        match self {
            Backend::Single(r) => r.sync_conn(),
            Backend::Cluster(c) => c.conn(c.node_of(key)),
        }
    }
}
