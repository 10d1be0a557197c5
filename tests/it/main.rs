//! All integration tests, in one binary: they share the harness in `helpers` and start real
//! redis-server processes and real server instances on random free ports.

mod browser;
mod browser_runner;
mod cluster;
mod compose;
mod failover;
mod game_flow;
mod helpers;
mod limits;
mod load_balancer;
mod loadgen;
mod observability;
mod protocol_doc;
mod social;
mod store_conformance;
mod topology;
