//! What the server and its tools agree on: the ids, the wire messages of `docs/protocol.md`,
//! the names of the public Redis channels, and the reconnect backoff. The states the messages
//! carry are the rules' own (`tictactoe_rules`).
//!
//! - [`ids`]: game and player ids, parsed once.
//! - [`wire`]: what every message shares (version, close codes, request ids, roles).
//! - [`client`]: the requests, client to server.
//! - [`server`]: replies and events, server to client, also published on Redis.
//! - [`parse`]: a client's text frame into a request, or a typed error.
//! - [`profiles`]: what a profile, its history and the leaderboard look like on the wire.
//! - [`channels`]: where events are published.
//! - [`backoff`]: how every client of the protocol waits before reconnecting.
//! - [`templates`]: the chat and presence events the store completes as it publishes them.

pub mod backoff;
pub mod channels;
pub mod client;
pub mod ids;
pub mod parse;
pub mod profiles;
pub mod server;
pub mod templates;
pub mod wire;

pub use client::*;
pub use parse::*;
pub use server::*;
pub use wire::*;
