//! Client to server: the requests a browser (or a tool) sends, field for field as
//! `docs/protocol.md` specifies them.

use crate::ids::GameId;
use crate::wire::Req;
use serde::{Deserialize, Serialize};

/// A game the client was in and the last version it saw, offered on reconnect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeGame {
    pub game: GameId,
    pub version: u64,
}

/// Client to server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Must be the first message. Without a token (or with an expired one) a new session is
    /// issued; with a valid one the session's seats and games are restored.
    Hello {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        resume: Vec<ResumeGame>,
    },
    /// Create a game and sit as X.
    Create {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        /// Client create id: a retry with the same id creates nothing new and is answered
        /// with the game the first attempt created.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cid: Option<String>,
        /// Play the computer at this level: it takes O at once and the game starts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        computer: Option<tictactoe_rules::computer::Level>,
        /// A rated game: only a player with a profile may create it, or sit down in it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        rated: bool,
    },
    /// Join a game: take the free O seat, or watch when both are taken (or `spectate` is set).
    Join {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        game: GameId,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        spectate: bool,
    },
    /// Rename the session, and the player in every game where it holds a seat.
    Rename {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        name: String,
    },
    /// Stop receiving a game's events on this connection. A seat is kept.
    Leave {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        game: GameId,
    },
    Move {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        game: GameId,
        /// 0..=8; checked by the rules, so an out-of-range value gets its own error code.
        cell: i64,
        /// Client move id: a retry with the same id is applied at most once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mid: Option<String>,
        /// The game version the client's board shows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u64>,
    },
    Resign {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        game: GameId,
    },
    /// Ask for the next round; it starts when both players have asked.
    Rematch {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        game: GameId,
    },
    /// The creator takes back a game still waiting for an opponent: it ends as aborted.
    Cancel {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        game: GameId,
    },
    /// A chat line in a game, or in the lobby when `game` is absent.
    Chat {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        game: Option<GameId>,
        text: String,
        /// Client line id: a retry with the same id adds no second line and is acknowledged
        /// with the first one's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lid: Option<String>,
    },
    /// Ask for the events after `since`, or a snapshot when they are no longer kept.
    Sync {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        game: GameId,
        since: u64,
    },
    /// Start or stop receiving the lobby.
    Lobby {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        watch: bool,
    },
    QuickMatch {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
    },
    CancelMatch {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
    },
    /// Where a game stands, without joining it (no presence, no seat taken): for a page
    /// deciding what to offer someone who opened the game's link.
    Peek {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        game: GameId,
    },
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
    },
    /// Make the session's player a lasting profile (or get the one it has): answered with
    /// the profile and its recovery code.
    ProfileCreate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
    },
    /// The session's profile, with its recent rounds and rank.
    Profile {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
    },
    /// A new recovery code for the session's profile; the old one stops working.
    ProfileCode {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
    },
    /// A new session bound to the profile this recovery code belongs to.
    Recover {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        code: String,
    },
    /// Delete the session's profile: rating, record, history, code and leaderboard entry.
    ProfileDelete {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
    },
    /// The top of the leaderboard, and the session's place on it.
    Leaderboard {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
    },
}

impl ClientMsg {
    /// The request id, echoed in the reply.
    pub fn req(&self) -> Option<Req> {
        match self {
            ClientMsg::Hello { req, .. }
            | ClientMsg::Create { req, .. }
            | ClientMsg::Join { req, .. }
            | ClientMsg::Rename { req, .. }
            | ClientMsg::Leave { req, .. }
            | ClientMsg::Move { req, .. }
            | ClientMsg::Resign { req, .. }
            | ClientMsg::Rematch { req, .. }
            | ClientMsg::Cancel { req, .. }
            | ClientMsg::Chat { req, .. }
            | ClientMsg::Sync { req, .. }
            | ClientMsg::Lobby { req, .. }
            | ClientMsg::QuickMatch { req }
            | ClientMsg::CancelMatch { req }
            | ClientMsg::Peek { req, .. }
            | ClientMsg::Ping { req }
            | ClientMsg::ProfileCreate { req }
            | ClientMsg::Profile { req }
            | ClientMsg::ProfileCode { req }
            | ClientMsg::Recover { req, .. }
            | ClientMsg::ProfileDelete { req }
            | ClientMsg::Leaderboard { req } => *req,
        }
    }
}

/// The `type` values [`ClientMsg`] knows, to tell an unknown type from a malformed message.
pub const CLIENT_TYPES: &[&str] = &[
    "hello",
    "create",
    "join",
    "rename",
    "leave",
    "move",
    "resign",
    "rematch",
    "cancel",
    "chat",
    "sync",
    "lobby",
    "quick_match",
    "cancel_match",
    "peek",
    "ping",
    "profile_create",
    "profile",
    "profile_code",
    "recover",
    "profile_delete",
    "leaderboard",
];
