//! What can be done to games, chat, presence, the lobby, quick match, sessions and profiles:
//! the only way from a connection (or a background task) to the store. Operations return
//! typed results and [`OpError`]s; whoever speaks to the client renders them.

pub mod chat;
pub mod computer;
pub mod deadlines;
pub mod games;
pub mod leases;
pub mod lobby;
pub mod matching;
pub mod presence;
pub mod profiles;
pub mod records;
pub mod sessions;

use crate::store::StoreError;
use bytes::Bytes;
use tictactoe_protocol::{ErrorCode, ServerMsg};
use tictactoe_rules::RuleError;

/// Why an operation did not happen. Everything except `Internal` is an expected answer.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    Rule(#[from] RuleError),
    #[error("no such game")]
    UnknownGame,
    #[error("that is not your seat")]
    NotSeated,
    #[error("too many requests")]
    RateLimited { retry_after_ms: u64 },
    #[error("this connection is in {max} games, the most it may be in: leave one first")]
    TooManyGames { max: usize },
    #[error("you have {max} games waiting for an opponent: wait until one is joined")]
    TooManyWaiting { max: usize },
    /// The store did not answer (in time). A write may or may not have been applied: a
    /// timed-out command can still run once Redis gets to it.
    #[error(
        "the game service did not answer: the request may or may not have taken effect \
         (retry a move with the same mid to find out)"
    )]
    Unavailable,
    /// The game kept changing under the request (other writers won every compare-and-set):
    /// nothing was applied; retrying is safe.
    #[error("the game kept changing under this request: nothing was applied, retry")]
    Contended,
    #[error("games against the computer are never rated")]
    ComputerNotRated,
    #[error("{0}")]
    Profile(#[from] profiles::ProfileError),
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Unconfirmed { .. } => OpError::Unavailable,
            other => OpError::Internal(other.to_string()),
        }
    }
}

impl OpError {
    pub fn code(&self) -> ErrorCode {
        match self {
            OpError::Rule(r) => match r {
                RuleError::CellOutOfRange => ErrorCode::CellOutOfRange,
                RuleError::CellOccupied => ErrorCode::CellOccupied,
                RuleError::NotYourTurn => ErrorCode::NotYourTurn,
                RuleError::NotStarted => ErrorCode::NotStarted,
                RuleError::GameOver => ErrorCode::GameOver,
                RuleError::StaleBoard => ErrorCode::StaleBoard,
                RuleError::RoundInProgress => ErrorCode::RoundInProgress,
                RuleError::SeatTaken => ErrorCode::NotYourSeat,
                RuleError::Aborted => ErrorCode::Aborted,
                RuleError::SeatEmpty => ErrorCode::NotYourSeat,
                // `rematch` answers it as a duplicate; nothing else asks for a rematch.
                RuleError::RematchAsked => ErrorCode::GameOver,
            },
            OpError::UnknownGame => ErrorCode::UnknownGame,
            OpError::NotSeated => ErrorCode::NotYourSeat,
            OpError::RateLimited { .. } => ErrorCode::RateLimited,
            OpError::TooManyGames { .. } => ErrorCode::TooManyGames,
            OpError::TooManyWaiting { .. } => ErrorCode::TooManyWaiting,
            // Both mean "retry"; a client needs no other handling for contention.
            OpError::Unavailable | OpError::Contended => ErrorCode::Unavailable,
            OpError::ComputerNotRated => ErrorCode::ComputerNotRated,
            OpError::Profile(p) => match p {
                profiles::ProfileError::NoProfile => ErrorCode::NoProfile,
                profiles::ProfileError::BadCode => ErrorCode::BadCode,
                profiles::ProfileError::Required => ErrorCode::ProfileRequired,
            },
            OpError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The error as the client sees it: internals stay in the log.
    pub fn to_msg(&self, req: Option<u64>) -> ServerMsg {
        let message = match self {
            OpError::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        };
        ServerMsg::Error {
            req,
            game: None,
            code: self.code(),
            message,
            retry_after_ms: match self {
                OpError::RateLimited { retry_after_ms } => Some(*retry_after_ms),
                _ => None,
            },
        }
    }
}

/// A committed transition.
#[derive(Debug)]
pub struct Done {
    pub version: u64,
    /// True when the move id had already been applied: nothing new happened.
    pub duplicate: bool,
    /// The event this transition published (none for a duplicate), as the JSON sent on the
    /// game's channel: the actor's own connection can send it with the ack instead of
    /// waiting for its copy from pub/sub.
    pub event: Option<Bytes>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_their_codes_without_leaking_internals() {
        let e = OpError::Internal("redis said: secret detail".into());
        let msg = e.to_msg(Some(3)).to_json();
        assert!(msg.contains("\"code\":\"internal\""));
        assert!(!msg.contains("secret"));
        let e = OpError::RateLimited {
            retry_after_ms: 250,
        };
        assert!(e.to_msg(None).to_json().contains("\"retry_after_ms\":250"));
        assert_eq!(
            OpError::from(RuleError::CellOccupied).code(),
            ErrorCode::CellOccupied
        );
    }
}
