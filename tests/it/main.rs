//! All integration tests, in one binary: they share the harness in `helpers` and start real
//! redis-server processes and real server instances on random free ports.

mod game_flow;
mod helpers;
mod loadgen;
mod protocol_doc;
