//! The lobby: where each game stands, for the list players pick games from, and the list
//! itself with the lobby's chat.

use super::OpError;
use crate::app::App;
use crate::ids::GameId;
use crate::protocol::{ChatLine, LobbyGame};
use crate::rules::GameState;

/// Most games per lobby list.
pub const LOBBY_MAX: usize = 50;

pub fn lobby_entry(game: &GameId, state: &GameState) -> LobbyGame {
    LobbyGame {
        game: game.clone(),
        status: state.status,
        players: state.players.clone(),
        round: state.round,
    }
}

/// What a player who starts watching the lobby is shown first.
#[derive(Debug)]
pub struct Listing {
    pub open: Vec<LobbyGame>,
    pub live: Vec<LobbyGame>,
    pub chat: Vec<ChatLine>,
}

pub async fn list(app: &App) -> Result<Listing, OpError> {
    let (open, live) = app.store.lobby_list(LOBBY_MAX, app.config.game_ttl).await?;
    let chat = app.store.recent_chat(None, app.config.chat_history).await?;
    Ok(Listing { open, live, chat })
}
