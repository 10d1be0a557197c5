//! All integration tests, in one binary: they share the harness in `helpers` and start real
//! redis-server processes and real server instances on random free ports.

mod browser;
mod browser_runner;
mod compose;
mod game_flow;
mod helpers;
mod load_balancer;
mod protocol_doc;
mod topology;
