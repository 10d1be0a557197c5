//! What the server and its tools agree on: the ids, the wire messages of `docs/protocol.md`,
//! the names of the public Redis channels, and the reconnect backoff. The states the messages
//! carry are the rules' own (`tictactoe_rules`).
//!
//! - [`ids`]: game and player ids, parsed once.
//! - the crate root: the messages between browsers and instances, also published on Redis.
//! - [`channels`]: where events are published.
//! - [`backoff`]: how every client of the protocol waits before reconnecting.
//! - [`templates`]: the chat and presence events the store completes as it publishes them.

pub mod backoff;
pub mod channels;
pub mod ids;
mod messages;
pub mod templates;

pub use messages::*;
