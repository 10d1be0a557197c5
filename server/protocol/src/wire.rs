//! What every message shares: the protocol version, the close codes, request ids and the
//! roles a connection holds in a game.

use serde::{Deserialize, Serialize};
use tictactoe_rules::Mark;

pub const PROTOCOL_VERSION: u32 = 1;

/// WebSocket close codes sent by the server.
pub mod close {
    /// The peer broke the protocol's rules: no hello in time, or rate limits exceeded
    /// again and again. Do not reconnect at once.
    pub const POLICY: u16 = 1008;
    /// A message or frame over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// The instance is shutting down: reconnect (the load balancer picks another instance).
    pub const SERVICE_RESTART: u16 = 1012;
    /// Nothing heard from the client (not even a pong) for the idle timeout.
    pub const IDLE: u16 = 4000;
    /// The client did not read fast enough and its queue filled: reconnect and resync.
    pub const SLOW_CONSUMER: u16 = 4001;
}

/// A client's request id, echoed in the reply so requests and answers can be matched.
pub type Req = u64;

/// What a connection is in a game.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    X,
    O,
    #[serde(rename = "spectator")]
    Spectator,
}

impl Role {
    pub fn mark(self) -> Option<Mark> {
        match self {
            Role::X => Some(Mark::X),
            Role::O => Some(Mark::O),
            Role::Spectator => None,
        }
    }
}

impl From<Mark> for Role {
    fn from(m: Mark) -> Role {
        match m {
            Mark::X => Role::X,
            Mark::O => Role::O,
        }
    }
}
