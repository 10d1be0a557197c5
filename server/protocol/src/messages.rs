//! Wire protocol v1: the JSON messages between browsers and instances, and on Redis channels.
//!
//! `docs/protocol.md` is the specification; these types follow it field for field, and a test
//! parses every example in that document. Game events are published on Redis verbatim, so what
//! `redis-cli SUBSCRIBE` shows is exactly what clients receive.

use crate::ids::{GameId, PlayerId};
use serde::{Deserialize, Serialize};
use tictactoe_rules::{Cell, EndReason, GameState, Mark, Seats, Status};

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// A chat line in a game, or in the lobby when `game` is absent.
    Chat {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        game: Option<GameId>,
        text: String,
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
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Req>,
    },
}

impl ClientMsg {
    /// The request id, echoed in the reply.
    pub fn req(&self) -> Option<Req> {
        match self {
            ClientMsg::Hello { req, .. }
            | ClientMsg::Create { req }
            | ClientMsg::Join { req, .. }
            | ClientMsg::Rename { req, .. }
            | ClientMsg::Leave { req, .. }
            | ClientMsg::Move { req, .. }
            | ClientMsg::Resign { req, .. }
            | ClientMsg::Rematch { req, .. }
            | ClientMsg::Chat { req, .. }
            | ClientMsg::Sync { req, .. }
            | ClientMsg::Lobby { req, .. }
            | ClientMsg::QuickMatch { req }
            | ClientMsg::CancelMatch { req }
            | ClientMsg::Ping { req } => *req,
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
    "chat",
    "sync",
    "lobby",
    "quick_match",
    "cancel_match",
    "ping",
];

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
    /// Something unexpected; details are in the server log, not here.
    Internal,
}

/// Side effects of a request that succeeded, beyond `req`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckInfo {
    /// The game version the request produced (moves, rematch, resign).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// True when a move with this `mid` had already been applied: nothing new happened.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// The name now in effect, after cleaning (rename).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
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
            | ServerMsg::Pong { req } => *req,
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

/// Why a frame could not become a [`ClientMsg`], with whatever `req` could be salvaged.
#[derive(Debug, PartialEq)]
pub struct ParseError {
    pub req: Option<Req>,
    pub code: ErrorCode,
    pub message: String,
}

/// Parses a text frame, telling malformed JSON, unknown types and bad fields apart and
/// keeping the request id whenever the frame had one.
pub fn parse_client(text: &str) -> Result<ClientMsg, ParseError> {
    // Well-formed frames, the common case, parse in one pass; only a refused frame pays for
    // the slower diagnosis below.
    if let Ok(msg) = serde_json::from_str(text) {
        return Ok(msg);
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| ParseError {
        req: None,
        code: ErrorCode::BadJson,
        message: format!("not valid JSON: {e}"),
    })?;
    // A JSON object that repeats a key means whatever the parser that reads it decides: the
    // `Value` above keeps the last `type`, the typed parse refuses the repetition. Refuse it
    // here, before anything reads the value. (A key the protocol does not know is ignored,
    // and so are its repetitions, which the fast path lets through.)
    if let Some(key) = repeated_key(text) {
        let shown: String = key.chars().take(32).collect();
        let req = (key != "req")
            .then(|| value.get("req").and_then(serde_json::Value::as_u64))
            .flatten();
        return Err(ParseError {
            req,
            code: ErrorCode::BadJson,
            message: format!("key {shown:?} appears twice in one object"),
        });
    }
    let Some(obj) = value.as_object() else {
        return Err(ParseError {
            req: None,
            code: ErrorCode::BadJson,
            message: "a message is a JSON object".into(),
        });
    };
    let req = obj.get("req").and_then(serde_json::Value::as_u64);
    let ty = match obj.get("type") {
        Some(serde_json::Value::String(t)) => t.clone(),
        _ => {
            return Err(ParseError {
                req,
                code: ErrorCode::BadRequest,
                message: "missing string field \"type\"".into(),
            });
        }
    };
    if !CLIENT_TYPES.contains(&ty.as_str()) {
        let shown: String = ty.chars().take(32).collect();
        return Err(ParseError {
            req,
            code: ErrorCode::UnknownType,
            message: format!("unknown message type {shown:?}"),
        });
    }
    serde_json::from_value(value).map_err(|e| ParseError {
        req,
        code: ErrorCode::BadRequest,
        message: format!("invalid {ty} message: {e}"),
    })
}

/// The first key that appears twice in one object, anywhere in `text` (valid JSON).
fn repeated_key(text: &str) -> Option<String> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// Walks a JSON value, remembering the first repeated key it meets.
    struct Walk<'a>(&'a mut Option<String>);

    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Walk(&mut *self.0))?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) && self.0.is_none() {
                    *self.0 = Some(key);
                }
                map.next_value_seed(Walk(&mut *self.0))?;
            }
            Ok(())
        }
    }

    let mut found = None;
    let mut de = serde_json::Deserializer::from_str(text);
    Walk(&mut found).deserialize(&mut de).ok()?;
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_client_type_is_known_to_the_parser() {
        // A message of each type with its required fields, so CLIENT_TYPES cannot drift.
        let samples = [
            r#"{"type":"hello"}"#,
            r#"{"type":"create"}"#,
            r#"{"type":"join","game":"g1"}"#,
            r#"{"type":"rename","name":"Ann"}"#,
            r#"{"type":"leave","game":"g1"}"#,
            r#"{"type":"move","game":"g1","cell":4}"#,
            r#"{"type":"resign","game":"g1"}"#,
            r#"{"type":"rematch","game":"g1"}"#,
            r#"{"type":"chat","text":"hi"}"#,
            r#"{"type":"sync","game":"g1","since":3}"#,
            r#"{"type":"lobby","watch":true}"#,
            r#"{"type":"quick_match"}"#,
            r#"{"type":"cancel_match"}"#,
            r#"{"type":"ping"}"#,
        ];
        assert_eq!(samples.len(), CLIENT_TYPES.len());
        for s in samples {
            assert!(parse_client(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn malformed_frames_get_distinct_codes_and_keep_req() {
        let cases = [
            ("{not json", ErrorCode::BadJson, None),
            ("[1,2]", ErrorCode::BadJson, None),
            (r#"{"req":4}"#, ErrorCode::BadRequest, Some(4)),
            (r#"{"type":"fly","req":5}"#, ErrorCode::UnknownType, Some(5)),
            (
                r#"{"type":"move","req":6,"game":"g"}"#,
                ErrorCode::BadRequest,
                Some(6),
            ),
            (
                r#"{"type":"move","req":7,"game":"g","cell":"4"}"#,
                ErrorCode::BadRequest,
                Some(7),
            ),
            (
                r#"{"type":"join","req":8,"game":"a}b"}"#,
                ErrorCode::BadRequest,
                Some(8),
            ),
        ];
        for (text, code, req) in cases {
            let e = parse_client(text).unwrap_err();
            assert_eq!((e.code, e.req), (code, req), "{text}: {}", e.message);
        }
    }

    #[test]
    fn a_repeated_key_is_refused_as_bad_json() {
        for text in [
            r#"{"type":"ping","type":"create"}"#,
            r#"{"type":"create","type":"create"}"#,
            r#"{"type":"move","req":1,"game":"g","cell":4,"cell":5}"#,
            r#"{"type":"hello","resume":[{"game":"g","version":1,"version":2}]}"#,
            r#"{"req":1,"type":"create","req":2}"#,
        ] {
            let e = parse_client(text).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadJson, "{text}: {}", e.message);
        }
        // The request id is kept when it is not the repeated key itself.
        let e = parse_client(r#"{"type":"ping","req":3,"type":"create"}"#).unwrap_err();
        assert_eq!((e.code, e.req), (ErrorCode::BadJson, Some(3)));
        assert_eq!(repeated_key(r#"{"a":{"b":1},"c":{"b":2}}"#), None);
        assert_eq!(repeated_key(r#"[{"a":1,"a":2}]"#).as_deref(), Some("a"));
    }

    #[test]
    fn out_of_range_cells_parse_so_the_rules_can_name_the_error() {
        let m = parse_client(r#"{"type":"move","game":"g","cell":42}"#).unwrap();
        assert!(matches!(m, ClientMsg::Move { cell: 42, .. }));
    }

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

    /// Valid frames of every type, the seeds of the mutation tests.
    const SEEDS: &[&str] = &[
        r#"{"type":"hello","req":1,"token":"abc","name":"Ann","resume":[{"game":"g1","version":3}]}"#,
        r#"{"type":"create","req":2}"#,
        r#"{"type":"join","req":3,"game":"g1","spectate":true}"#,
        r#"{"type":"leave","req":4,"game":"g1"}"#,
        r#"{"type":"move","req":5,"game":"g1","cell":4,"mid":"m-1","version":7}"#,
        r#"{"type":"resign","req":6,"game":"g1"}"#,
        r#"{"type":"rematch","req":7,"game":"g1"}"#,
        r#"{"type":"chat","req":8,"game":"g1","text":"hi"}"#,
        r#"{"type":"sync","req":9,"game":"g1","since":3}"#,
        r#"{"type":"lobby","req":10,"watch":true}"#,
        r#"{"type":"quick_match","req":11}"#,
        r#"{"type":"cancel_match","req":12}"#,
        r#"{"type":"ping","req":13}"#,
    ];

    /// One edit of a frame, as a fuzzer makes them.
    #[derive(Clone, Debug)]
    enum Mutation {
        Flip(usize, u8),
        Truncate(usize),
        Insert(usize, char),
        Delete(usize, usize),
        /// Repeat the `n`th `"key":` with another value.
        RepeatKey(usize, &'static str),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
            any::<usize>().prop_map(Mutation::Truncate),
            (any::<usize>(), any::<char>()).prop_map(|(i, c)| Mutation::Insert(i, c)),
            (any::<usize>(), 1usize..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
            (
                any::<usize>(),
                prop::sample::select(&[r#""create""#, "1", "null", "[]", "{}", r#""g2""#][..])
            )
                .prop_map(|(i, v)| Mutation::RepeatKey(i, v)),
        ]
    }

    fn apply(frame: &str, m: &Mutation) -> String {
        let mut bytes = frame.as_bytes().to_vec();
        match *m {
            Mutation::Flip(i, b) => {
                let i = i % bytes.len();
                bytes[i] ^= b;
            }
            Mutation::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
            Mutation::Insert(i, c) => {
                let i = i % (bytes.len() + 1);
                let mut buf = [0u8; 4];
                bytes.splice(i..i, c.encode_utf8(&mut buf).bytes());
            }
            Mutation::Delete(i, n) => {
                let i = i % bytes.len();
                bytes.drain(i..(i + n).min(bytes.len()));
            }
            Mutation::RepeatKey(n, value) => {
                // A key of the top-level object, repeated at its end with `value`.
                let Ok(serde_json::Value::Object(obj)) = serde_json::from_str(frame) else {
                    return frame.to_string();
                };
                let Some(key) = obj.keys().nth(n % obj.len().max(1)) else {
                    return frame.to_string();
                };
                let body = frame.trim_end().strip_suffix('}').unwrap_or(frame);
                return format!("{body},{}:{value}}}", serde_json::json!(key));
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    proptest! {
        /// Whatever arrives, the parser answers: a message, or one of the three parse errors.
        #[test]
        fn any_text_gets_a_message_or_a_typed_error(text in any::<String>()) {
            check_parse(&text)?;
        }

        #[test]
        fn json_like_text_gets_a_message_or_a_typed_error(
            text in r#"\{("(type|req|game|cell|text|resume|version)":("[a-z_0-9]{0,6}"|-?[0-9]{1,20}|true|null|\[\]|\{\}),?){0,6}\}"#,
        ) {
            check_parse(&text)?;
        }

        #[test]
        fn mutated_frames_get_a_message_or_a_typed_error(
            seed in prop::sample::select(SEEDS),
            edits in proptest::collection::vec(mutation(), 1..4),
        ) {
            let mut frame = seed.to_string();
            for m in &edits {
                if frame.is_empty() {
                    break;
                }
                frame = apply(&frame, m);
            }
            check_parse(&frame)?;
        }

        #[test]
        fn a_frame_with_a_repeated_key_is_bad_json(
            seed in prop::sample::select(SEEDS),
            nth in any::<usize>(),
            value in prop::sample::select(&[r#""create""#, "1", "null", r#""g2""#][..]),
        ) {
            let frame = apply(seed, &Mutation::RepeatKey(nth, value));
            let e = parse_client(&frame).unwrap_err();
            prop_assert_eq!(e.code, ErrorCode::BadJson, "{}: {}", frame, e.message);
        }
    }

    /// A parse never panics; a message it accepts means the same once written out again.
    fn check_parse(text: &str) -> Result<(), TestCaseError> {
        match parse_client(text) {
            Ok(msg) => {
                let again = parse_client(&serde_json::to_string(&msg).unwrap());
                prop_assert_eq!(again.as_ref().ok(), Some(&msg), "{}", text);
            }
            Err(e) => {
                prop_assert!(
                    matches!(
                        e.code,
                        ErrorCode::BadJson | ErrorCode::BadRequest | ErrorCode::UnknownType
                    ),
                    "{text}: {e:?}"
                );
                prop_assert!(e.message.chars().count() < 400, "{}", e.message);
            }
        }
        Ok(())
    }
}
