//! The lobby: where each game stands, for the list players pick games from, and the list
//! itself with the lobby's chat.

use super::OpError;
use super::records::{chat_lines, lobby_games};
use crate::app::App;
use crate::store::{LobbyChange, LobbyOwner, LobbyRecord, LobbyShare, StoreError};
use std::net::IpAddr;
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::{ChatLine, LobbyGame, ServerMsg};
use tictactoe_rules::GameState;

/// Most games per lobby list.
pub const LOBBY_MAX: usize = 50;

/// Where a game stands, as the lobby keeps it.
pub fn lobby_entry(game: &GameId, state: &GameState) -> LobbyRecord {
    LobbyRecord {
        game: game.clone(),
        status: state.status,
        players: state.players.clone(),
        round: state.round,
        terms: tictactoe_protocol::Terms::of(state),
    }
}

/// Records where a game stands in the lobby and announces the change to every instance.
/// `owner` is the player who opened a game still waiting for an opponent, and their address:
/// the lobby shows only a few open games per player and per address.
pub async fn update_lobby(
    app: &App,
    game: &GameId,
    state: &GameState,
    owner: Option<(&PlayerId, IpAddr)>,
) -> Result<(), StoreError> {
    let LobbyChange { entry, event } = lobby_change(game, state);
    let address = owner.map(|(_, ip)| crate::admission::budget_key(ip).to_string());
    let owner = owner
        .zip(address.as_deref())
        .map(|((player, _), address)| LobbyOwner { player, address });
    app.store.lobby_update(&entry, owner, event).await
}

/// Where a game stands in the lobby, and the message announcing it.
pub fn lobby_change(game: &GameId, state: &GameState) -> LobbyChange {
    let entry = lobby_entry(game, state);
    let event = ServerMsg::LobbyChanged {
        entry: LobbyGame::from(entry.clone()),
    }
    .to_json()
    .into();
    LobbyChange { entry, event }
}

/// Where one game stands, as the lobby would list it, without joining it: from this
/// instance's newest state of it, or from the store.
pub async fn peek(app: &App, game: &GameId) -> Result<LobbyGame, OpError> {
    let state = match app.hub.cached(game) {
        Some((_, state)) => state,
        None => super::games::load(app, game).await?.1,
    };
    Ok(lobby_entry(game, &state).into())
}

/// How much of the lobby one player and one address may fill.
pub fn share(app: &App) -> LobbyShare {
    LobbyShare {
        per_owner: app.config.lobby_per_player,
        per_address: app.config.lobby_per_address,
    }
}

/// What a player who starts watching the lobby is shown first.
#[derive(Debug)]
pub struct Listing {
    pub open: Vec<LobbyGame>,
    pub live: Vec<LobbyGame>,
    pub chat: Vec<ChatLine>,
}

/// Sends the lobby list to this instance's watchers if it changed since the last push; after
/// a failure the change stays pending for the next one.
pub async fn push_changes(app: &App) {
    if !app.hub.take_lobby_change() {
        return;
    }
    match app
        .store
        .lobby_list(LOBBY_MAX, share(app), app.config.game_ttl)
        .await
    {
        Ok((open, live)) => app.hub.send_lobby(ServerMsg::Lobby {
            open: lobby_games(open),
            live: lobby_games(live),
        }),
        Err(e) => {
            app.hub.lobby_changed();
            tracing::warn!(error = %e, "could not refresh the lobby");
        }
    }
}

/// Drops the lobby's entries older than a game's lifetime (listing prunes them), even when
/// nobody watches it.
pub async fn prune(app: &App) {
    if let Err(e) = app
        .store
        .lobby_list(1, LobbyShare::default(), app.config.game_ttl)
        .await
    {
        tracing::debug!(error = %e, "could not prune the lobby");
    }
}

pub async fn list(app: &App) -> Result<Listing, OpError> {
    let (open, live) = app
        .store
        .lobby_list(LOBBY_MAX, share(app), app.config.game_ttl)
        .await?;
    let chat = app.store.recent_chat(None, app.config.chat_history).await?;
    Ok(Listing {
        open: lobby_games(open),
        live: lobby_games(live),
        chat: chat_lines(chat),
    })
}
