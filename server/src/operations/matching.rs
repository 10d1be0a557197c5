//! Quick match: taking a game that already waits for an opponent, else queueing a ticket,
//! pairing it with the longest-waiting one, withdrawing it.

use super::OpError;
use super::games::{claim_o, create_matched};
use super::lobby::{LOBBY_MAX, share};
use crate::app::App;
use crate::hub::InstanceMsg;
use crate::store::Ticket;
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_rules::{Mark, Status};

/// Open games looked at before queueing: each costs a few reads, and a lobby full of games
/// nobody can take is not worth reading through.
const OPEN_GAMES_TRIED: usize = 10;

/// Seats `me` as O in a game that already waits for an opponent, or queues it for quick
/// match, or pairs it with the longest-waiting ticket: the game is then created with that
/// player as X, who hears of it through its instance's channel. `Some` when `me` sits as O
/// in a game now.
pub async fn quick_match(app: &App, me: &Ticket) -> Result<Option<GameId>, OpError> {
    if let Some(game) = take_open_game(app, me).await? {
        metrics::counter!("matches_total", "how" => "open_game").increment(1);
        return Ok(Some(game));
    }
    let fresh = app.config.lease_ttl;
    let Some(other) = app.store.match_enqueue(me, fresh).await? else {
        return Ok(None);
    };
    let created = create_matched(app, (&other.player, &other.name), (&me.player, &me.name)).await;
    let game = match created {
        Ok(game) => game,
        Err(e) => {
            // Put the other player back: it must not be lost because this instance failed.
            let _ = app.store.match_enqueue(&other, fresh).await;
            return Err(e);
        }
    };
    let msg = InstanceMsg::MatchFound {
        conn: other.conn,
        game: game.clone(),
        you: Mark::X,
    };
    let channel = app.store.keys().instance_channel(&other.lease);
    let json = serde_json::to_string(&msg).map_err(|e| OpError::Internal(e.to_string()))?;
    // If this publish is lost, the other player's ticket refresh notices it is no longer
    // queued and the match-confirmation clock aborts the game: nobody stays paired with a
    // player who never heard of it.
    if let Err(e) = app.store.publish(&channel, json.into()).await {
        tracing::warn!(%game, error = %e, "could not tell the matched player");
    }
    metrics::counter!("matches_total", "how" => "queue").increment(1);
    Ok(Some(game))
}

/// Takes the O seat of an open game, the longest-waiting first, as the queue pairs: whoever
/// opened a game is looking for an opponent as much as a queued player. Skipped: `me`'s own
/// games, games whose creator is not connected (the forfeit clock would end the round before
/// it began), and games whose creator waits in the queue too (the queue pairs them; taking
/// their game as well would seat them twice). The seat is claimed by the compare-and-set
/// every join uses, so of two quick matchers reaching for one game, one gets it and the other
/// looks further.
async fn take_open_game(app: &App, me: &Ticket) -> Result<Option<GameId>, OpError> {
    let (open, _) = app
        .store
        .lobby_list(LOBBY_MAX, share(app), app.config.game_ttl)
        .await?;
    for entry in open.iter().rev().take(OPEN_GAMES_TRIED) {
        let game = &entry.game;
        let Some(sg) = app.store.load_game(game).await? else {
            continue;
        };
        if sg.state.status != Status::Waiting || sg.seat_of(&me.player).is_some() {
            continue;
        }
        let Some(creator) = sg.seats.x.as_ref() else {
            continue;
        };
        if !app.store.presence(game).await?.players.x
            || app
                .store
                .match_queued(creator, app.config.lease_ttl)
                .await?
        {
            continue;
        }
        app.hub.observe(game, sg.version, &sg.state);
        let start = (sg.version, sg.state);
        match claim_o(app, game, &me.player, &me.name, start).await {
            Ok(Some(_)) => return Ok(Some(game.clone())),
            // Taken, cancelled or gone meanwhile: look further.
            // A rated game, for a player without a profile: not this one either.
            Ok(None)
            | Err(
                OpError::Rule(_) | OpError::UnknownGame | OpError::NotSeated | OpError::Profile(_),
            ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Keeps the tickets of `players` (this instance's waiting connections) fresh; returns those
/// whose ticket left the queue.
pub async fn refresh(app: &App, players: &[PlayerId]) -> Result<Vec<PlayerId>, OpError> {
    Ok(app
        .store
        .match_refresh(players, app.config.lease_ttl)
        .await?)
}

/// Withdraws `player`'s ticket, if it is still queued.
pub async fn cancel(app: &App, player: &PlayerId) -> Result<(), OpError> {
    app.store.match_cancel(player).await?;
    Ok(())
}

/// `player`, perhaps waiting for a match, is now called `name`: a pairing made from now on
/// uses it (the ticket carries the name it was queued with).
pub async fn rename(app: &App, player: &PlayerId, name: &str) -> Result<(), OpError> {
    app.store.match_rename(player, name).await?;
    Ok(())
}
