//! The tools behind the `tictactoe` command's subcommands, outside the server library: they
//! speak to instances and Redis only through the shared protocol crate.
//!
//! - [`audit`]: the load generator's audit mode, with the chaos run's proxies and control.
//! - [`checker`]: what an audited run recorded, checked against what Redis kept.
//! - [`loadgen`]: many WebSocket clients, playing or idle, and what they cost the servers.
//! - [`monitor`]: moves, boards and chat of live games, as they are published.

pub mod audit;
pub mod checker;
pub mod loadgen;
pub mod monitor;
