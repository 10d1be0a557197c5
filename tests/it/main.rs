//! All integration tests, in one binary: they share the harness in `support` and start real
//! redis-server processes and real server instances on random free ports.

mod browser;
mod chaos;
mod cluster;
mod compose;
mod computer;
mod connection_limits;
mod dockerfile;
mod failover;
mod floods;
mod game_flow;
mod hardening;
mod limits;
mod load_balancer;
mod loadgen;
mod observability;
mod profiles;
mod protocol_doc;
mod redis_failover;
mod redis_link;
mod redis_tls;
mod retries;
mod social;
mod store_conformance;
mod support;
mod topology_script;
