//! Server to client: replies, game events (also what is published on a game's Redis channel,
//! verbatim), presence, chat and the lobby; and the little an instance reads of a channel
//! message to route it.

use crate::ids::{GameId, PlayerId};
use crate::profiles::{BoardRow, ProfileBadge, ProfileView};
use crate::wire::{Req, Role};
use serde::{Deserialize, Serialize};
use tictactoe_rules::{Cell, EndReason, GameState, Mark, Seats, Status};

/// Error codes. Stable strings: clients switch on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not a JSON object.
    BadJson,
    /// Valid JSON, known type, but a field is missing or has the wrong type or shape.
    BadRequest,
    UnknownType,
    /// Only `hello` (and `ping`) may come before `hello`.
    HelloRequired,
    UnknownGame,
    /// The request names a game this connection has not joined.
    NotInGame,
    /// Spectators cannot move, resign or ask for a rematch.
    NotYourSeat,
    NotYourTurn,
    CellOccupied,
    CellOutOfRange,
    NotStarted,
    GameOver,
    /// The move was chosen on a board that has changed since (its `version` is below the
    /// round's last move): catch up and choose again.
    StaleBoard,
    RoundInProgress,
    Aborted,
    /// Chat text empty after cleaning, or longer than the limit.
    InvalidText,
    /// A name empty after cleaning, or longer than the limit.
    InvalidName,
    AlreadyQueued,
    RateLimited,
    /// The connection is in as many games as it may be (`MAX_GAMES_PER_CONN`), or a `hello`
    /// listed more games to resume than are restored (`MAX_RESUME`).
    TooManyGames,
    /// The session already has `MAX_WAITING_GAMES` games waiting for an opponent.
    TooManyWaiting,
    /// Redis did not answer (in time). A write may or may not have taken effect: a move
    /// retried with the same `mid` tells which. Retry later.
    Unavailable,
    /// A rated game (creating one, or sitting down in one) needs a profile.
    ProfileRequired,
    /// A rated game against the computer: the computer is never rated against people.
    ComputerNotRated,
    /// The request needs a profile and the session's player has none.
    NoProfile,
    /// No profile has this recovery code (a wrong code, or one replaced since).
    BadCode,
    /// Something unexpected; details are in the server log, not here.
    Internal,
}

/// Side effects of a request that succeeded, beyond `req`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckInfo {
    /// The game version the request produced (moves, rematch, resign, cancel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// True when a request with this client id (a move's `mid`, a chat line's `lid`) had
    /// already been applied: nothing new happened.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// The name now in effect, after cleaning (rename).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The id of the chat line the request added (or, for a retry, had added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Quick match: after this long in the queue, offer the player a game against the
    /// computer (`QUICK_MATCH_COMPUTER_MS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_computer_ms: Option<u64>,
}

/// How a seated player came to be absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AwayReason {
    /// The player left the game (`leave`); the seat is still theirs.
    Left,
    /// The player's connection went (closed, lost, or its instance died).
    Disconnected,
}

/// A seated player who is not connected to the game.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Away {
    pub reason: AwayReason,
    /// How long ago the player went, when this was sent: the forfeit falls due
    /// `forfeit_grace_ms` after that, if the round is being played.
    pub for_ms: u64,
}

/// Who is connected to a game right now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub players: Seats<bool>,
    pub spectators: u32,
    /// For each seat whose player was here and is not now: why and since when.
    #[serde(default)]
    pub away: Seats<Option<Away>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    /// Redis stream id of the line: increasing within a game (or the lobby).
    pub id: String,
    pub from: String,
    /// The sender's role in the game; absent in the lobby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    pub text: String,
    /// Milliseconds since the Unix epoch, from the Redis clock.
    pub ts: u64,
}

/// A game as listed in the lobby.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LobbyGame {
    pub game: GameId,
    pub status: Status,
    pub players: Seats<Option<String>>,
    pub round: u32,
    #[serde(flatten)]
    pub terms: Terms,
}

/// What kind of game a lobby entry is, beside who plays it: each field absent when it has its
/// default, as in the game's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rated: bool,
    /// The computer's level, in a game against it (which holds O).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer: Option<tictactoe_rules::computer::Level>,
    /// The players' ratings as of the round's start (see the state's `ratings`).
    #[serde(default, skip_serializing_if = "Seats::is_empty")]
    pub ratings: Seats<Option<u32>>,
}

impl Terms {
    pub fn of(state: &tictactoe_rules::GameState) -> Terms {
        Terms {
            rated: state.rated,
            computer: state.computer.map(|c| c.level),
            ratings: state.ratings.clone(),
        }
    }
}

/// Server to client. The variants from `Created` to `Presence` are also what is published on
/// the game's Redis channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Welcome {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        /// Present only when a new session was issued: keep it and send it in the next hello.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        player: PlayerId,
        name: String,
        resumed: bool,
        instance: String,
        protocol: u32,
        /// Longest chat line accepted, in characters (after cleaning).
        chat_max_chars: usize,
        /// How long a seated player may be away during a round before forfeiting it.
        forfeit_grace_ms: u64,
        /// The player's rating, when it has a profile.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile: Option<ProfileBadge>,
    },
    /// The whole of a game as this connection sees it.
    Snapshot {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        game: GameId,
        version: u64,
        you: Role,
        state: GameState,
        presence: Presence,
        chat: Vec<ChatLine>,
        /// True when answering a `create` retried with the `cid` of one that already created
        /// this game: nothing new was created.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        duplicate: bool,
    },
    Ack {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        #[serde(flatten)]
        info: AckInfo,
    },
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        /// The game concerned, when the error is not the answer to a request (a game that
        /// could not be restored on resume, or that expired).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        game: Option<GameId>,
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
    },
    /// The reply to `peek`: where the game stands, as the lobby would list it.
    GameInfo {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        #[serde(flatten)]
        entry: LobbyGame,
    },

    // Versioned game events: each carries the version it produced and the state after it.
    Created {
        game: GameId,
        version: u64,
        state: GameState,
    },
    Seated {
        game: GameId,
        version: u64,
        mark: Mark,
        state: GameState,
    },
    Moved {
        game: GameId,
        version: u64,
        mark: Mark,
        cell: Cell,
        state: GameState,
    },
    RematchRequested {
        game: GameId,
        version: u64,
        mark: Mark,
        state: GameState,
    },
    RoundStarted {
        game: GameId,
        version: u64,
        round: u32,
        state: GameState,
    },
    /// `mark` lost the round without a line: it resigned or was away too long.
    Conceded {
        game: GameId,
        version: u64,
        mark: Mark,
        reason: EndReason,
        state: GameState,
    },
    /// A quick-match game that did not start because a player never arrived.
    Aborted {
        game: GameId,
        version: u64,
        state: GameState,
    },
    /// The player holding `mark` is now called `name`.
    Renamed {
        game: GameId,
        version: u64,
        mark: Mark,
        name: String,
        state: GameState,
    },

    // Unversioned messages on the game (or lobby) channel.
    Chat {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        game: Option<GameId>,
        #[serde(flatten)]
        line: ChatLine,
    },
    Presence {
        game: GameId,
        #[serde(flatten)]
        presence: Presence,
    },

    // Direct messages.
    /// Recent chat of a game (or of the lobby), oldest first; replaces what the client shows.
    ChatHistory {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        game: Option<GameId>,
        lines: Vec<ChatLine>,
    },
    Lobby {
        open: Vec<LobbyGame>,
        live: Vec<LobbyGame>,
    },
    /// On the lobby channel only: a game entered, moved within or left the lobby. Instances
    /// coalesce these into `lobby` messages for their clients.
    LobbyChanged {
        #[serde(flatten)]
        entry: LobbyGame,
    },
    /// Quick match paired this client; a snapshot of the game follows.
    MatchFound { game: GameId, you: Mark },
    /// The session's profile. `code` is the recovery code, present only right after it was
    /// made (`profile_create`, `profile_code`): the server keeps only its hash.
    Profile {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        profile: ProfileView,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    /// A recovery code worked: a new session of the profile's player. Reconnect with `token`.
    Recovered {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        token: String,
        player: PlayerId,
        name: String,
    },
    /// The top of the leaderboard; the session's own row (`None` without a rated round) and
    /// the rows around it.
    Leaderboard {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        top: Vec<BoardRow>,
        me: Option<BoardRow>,
        around: Vec<BoardRow>,
    },
}

impl ServerMsg {
    pub fn error(req: Option<Req>, code: ErrorCode, message: impl Into<String>) -> ServerMsg {
        ServerMsg::Error {
            req,
            game: None,
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    pub fn ack(req: Option<Req>, info: AckInfo) -> ServerMsg {
        ServerMsg::Ack { req, info }
    }

    /// The game and version of a versioned game event.
    pub fn game_version(&self) -> Option<(&GameId, u64)> {
        match self {
            ServerMsg::Created { game, version, .. }
            | ServerMsg::Seated { game, version, .. }
            | ServerMsg::Moved { game, version, .. }
            | ServerMsg::RematchRequested { game, version, .. }
            | ServerMsg::RoundStarted { game, version, .. }
            | ServerMsg::Conceded { game, version, .. }
            | ServerMsg::Aborted { game, version, .. }
            | ServerMsg::Renamed { game, version, .. } => Some((game, *version)),
            _ => None,
        }
    }

    /// The state a versioned game event produced (or a snapshot holds).
    pub fn state(&self) -> Option<&GameState> {
        match self {
            ServerMsg::Created { state, .. }
            | ServerMsg::Seated { state, .. }
            | ServerMsg::Moved { state, .. }
            | ServerMsg::RematchRequested { state, .. }
            | ServerMsg::RoundStarted { state, .. }
            | ServerMsg::Conceded { state, .. }
            | ServerMsg::Aborted { state, .. }
            | ServerMsg::Renamed { state, .. }
            | ServerMsg::Snapshot { state, .. } => Some(state),
            _ => None,
        }
    }

    /// The request id a direct reply echoes.
    pub fn reply_req(&self) -> Option<Req> {
        match self {
            ServerMsg::Welcome { req, .. }
            | ServerMsg::Snapshot { req, .. }
            | ServerMsg::Ack { req, .. }
            | ServerMsg::Error { req, .. }
            | ServerMsg::Pong { req }
            | ServerMsg::GameInfo { req, .. }
            | ServerMsg::Profile { req, .. }
            | ServerMsg::Recovered { req, .. }
            | ServerMsg::Leaderboard { req, .. } => *req,
            _ => None,
        }
    }

    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: no maps with non-string keys, no foreign types.
        serde_json::to_string(self).expect("server messages always serialize")
    }
}

/// The parts of a channel message every instance reads: its type and game version. The state
/// it carries is only skipped over here; [`event_state`] reads it when it is needed.
#[derive(Debug, Deserialize)]
pub struct ChannelPeek {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub version: Option<u64>,
    #[serde(default)]
    state: Option<serde::de::IgnoredAny>,
}

impl ChannelPeek {
    /// The version of a game event that carries the game's state.
    pub fn versioned(&self) -> Option<u64> {
        match (self.version, &self.state) {
            (Some(v), Some(_)) if self.kind != "snapshot" => Some(v),
            _ => None,
        }
    }
}

/// The game state a game event carries.
pub fn event_state(json: &str) -> Option<GameState> {
    #[derive(Deserialize)]
    struct WithState {
        state: GameState,
    }
    serde_json::from_str::<WithState>(json)
        .ok()
        .map(|w| w.state)
}

/// Message types that travel on game channels.
pub const CHANNEL_TYPES: &[&str] = &[
    "created",
    "seated",
    "moved",
    "rematch_requested",
    "round_started",
    "conceded",
    "aborted",
    "renamed",
    "chat",
    "presence",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_peek_reads_what_a_full_parse_reads() {
        let g = GameId::try_from("g1".to_string()).unwrap();
        let state = GameState::new("ann").seat_o("bob").unwrap();
        let cell = Cell::new(4).unwrap();
        let full = ServerMsg::Moved {
            game: g.clone(),
            version: 3,
            mark: Mark::X,
            cell,
            state: state.play(Mark::X, cell).unwrap(),
        };
        let peek: ChannelPeek = serde_json::from_str(&full.to_json()).unwrap();
        assert_eq!(peek.versioned(), Some(3));
        assert_eq!(event_state(&full.to_json()).as_ref(), full.state());
        let presence = ServerMsg::Presence {
            game: g,
            presence: Presence::default(),
        };
        let peek: ChannelPeek = serde_json::from_str(&presence.to_json()).unwrap();
        assert_eq!((peek.kind.as_str(), peek.versioned()), ("presence", None));
        assert_eq!(event_state(&presence.to_json()), None);
        // Every versioned event is a channel type.
        for t in [
            "created",
            "seated",
            "moved",
            "rematch_requested",
            "round_started",
            "conceded",
            "aborted",
            "renamed",
        ] {
            assert!(CHANNEL_TYPES.contains(&t));
        }
    }

    #[test]
    fn events_report_their_game_and_version() {
        let e = ServerMsg::Created {
            game: GameId::try_from("g1".to_string()).unwrap(),
            version: 1,
            state: GameState::new("ann"),
        };
        let json = e.to_json();
        let back: ServerMsg = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.game_version().map(|(g, v)| (g.as_str(), v)),
            Some(("g1", 1))
        );
        assert!(ServerMsg::Pong { req: None }.game_version().is_none());
    }
}
