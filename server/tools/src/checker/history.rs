//! What an audited run recorded, and what Redis held at its end: the checker's two inputs.
//!
//! Times are milliseconds since the run started, on the load generator's one clock, so the
//! clients' records and the fault windows line up.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tictactoe_rules::{EndReason, Mark};

/// Everything the clients of one audited run saw, and the faults injected meanwhile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Wall-clock time of the run's start (ms since the Unix epoch), to compare with Redis
    /// stream ids (chat lines).
    pub start_epoch_ms: u64,
    /// When the load stopped: no move was attempted after it.
    pub end_ms: u64,
    pub players: Vec<PlayerHistory>,
    pub faults: Vec<FaultWindow>,
}

/// One seat of one game, over every connection its client made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlayerHistory {
    pub game: String,
    pub mark: Mark,
    /// Each connection that got a `welcome`, in order; `Received::conn` indexes this.
    pub connections: Vec<Connection>,
    /// Every versioned game event and every snapshot of the game, in the order received.
    pub received: Vec<Received>,
    /// Every move the client decided to make, in order.
    pub moves: Vec<MoveAttempt>,
    /// Chat lines the server acknowledged.
    pub chats: Vec<AckedChat>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// The instance named in the `welcome`.
    pub instance: String,
    /// When the `welcome` arrived: the server had the session (and its presence) by then.
    pub welcomed_ms: u64,
    /// When the client noticed the connection was gone (none: open at the end of the run).
    pub closed_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceivedKind {
    /// A versioned game event.
    Event,
    /// A whole-game snapshot (set-up, resume or catch-up): it resynchronises the client.
    Snapshot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    pub conn: usize,
    pub at_ms: u64,
    pub version: u64,
    pub kind: ReceivedKind,
}

/// One move (one `mid`), however many times it was sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveAttempt {
    pub mid: String,
    pub cell: u8,
    /// The version the client's board showed when it chose the move (the move's `version`
    /// field): played as chosen, the move produces the next one.
    pub based_on: u64,
    /// When the player wanted to move (its think time over): the start of its wait.
    pub intent_ms: u64,
    /// How many times it was sent.
    pub sends: u32,
    /// When it was settled: acknowledged, or refused for good (none: still open at the end).
    pub resolved_ms: Option<u64>,
    pub ack: Option<MoveAck>,
    /// The server's last error for it, if it was never acknowledged (`not_your_turn`, ...).
    pub refused: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveAck {
    pub at_ms: u64,
    pub version: u64,
    pub duplicate: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckedChat {
    pub text: String,
    pub at_ms: u64,
}

/// Which instances a fault cuts off from Redis while it lasts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisCut {
    #[default]
    None,
    /// Every instance (Redis itself stopped, killed or failing over).
    All,
    /// One instance's link to Redis.
    Instance(String),
}

/// One injected fault, from its start to the end of its recovery as the injector saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultWindow {
    pub kind: String,
    pub target: Option<String>,
    pub start_ms: u64,
    /// None: still on at the end of the run.
    pub end_ms: Option<u64>,
    pub cut: RedisCut,
}

impl FaultWindow {
    pub fn end_or(&self, run_end: u64) -> u64 {
        self.end_ms.unwrap_or(run_end)
    }
}

/// One entry of a game's log, as read from Redis at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Logged {
    Moved {
        mark: Mark,
        cell: u8,
    },
    Conceded {
        mark: Mark,
        reason: EndReason,
    },
    Aborted,
    /// Anything else (created, seated, rematch, new round, rename): versions only.
    Other,
}

/// A game as Redis holds it at the end of the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredGame {
    /// The game's log by version (the run sets `EVENT_LOG_LEN` high enough to keep it all).
    pub log: BTreeMap<u64, Logged>,
    /// The game's version (field `v` of its hash): the log must reach it.
    pub version: Option<u64>,
    /// Chat history: (stream id's milliseconds, text), oldest first.
    pub chat: Vec<(u64, String)>,
}
