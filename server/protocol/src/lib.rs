//! What the server and its tools agree on: the rules of the game, the ids, the wire messages
//! of `docs/protocol.md`, the names of the public Redis channels, and the reconnect backoff.
//!
//! - [`rules`]: the rules, pure (no async, no I/O, no clock).
//! - [`ids`]: game and player ids, parsed once.
//! - the crate root: the messages between browsers and instances, also published on Redis.
//! - [`channels`]: where events are published.
//! - [`backoff`]: how every client of the protocol waits before reconnecting.
//! - [`templates`]: the chat and presence events the store completes as it publishes them.

pub mod backoff;
pub mod channels;
pub mod ids;
mod messages;
pub mod rules;
pub mod templates;

pub use messages::*;
