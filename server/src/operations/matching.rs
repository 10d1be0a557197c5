//! Quick match: queueing a ticket, pairing it with the longest-waiting one, withdrawing it.

use super::OpError;
use super::games::create_matched;
use crate::app::App;
use crate::hub::InstanceMsg;
use crate::store::Ticket;
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_rules::Mark;

/// Queues `me` for quick match, or pairs it with the longest-waiting ticket: the game is
/// created with that player as X, who hears of it through its instance's channel.
pub async fn quick_match(app: &App, me: &Ticket) -> Result<Option<GameId>, OpError> {
    let fresh = app.config.lease_ttl;
    let Some(other) = app.store.match_enqueue(me, fresh).await? else {
        return Ok(None);
    };
    let created = create_matched(app, (&other.player, &other.name), (&me.player, &me.name)).await;
    let game = match created {
        Ok((game, _, _)) => game,
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
    metrics::counter!("matches_total").increment(1);
    Ok(Some(game))
}

/// Withdraws `player`'s ticket, if it is still queued.
/// Keeps the tickets of `players` (this instance's waiting connections) fresh; returns those
/// whose ticket left the queue.
pub async fn refresh(app: &App, players: &[PlayerId]) -> Result<Vec<PlayerId>, OpError> {
    Ok(app
        .store
        .match_refresh(players, app.config.lease_ttl)
        .await?)
}

pub async fn cancel(app: &App, player: &PlayerId) -> Result<(), OpError> {
    app.store.match_cancel(player).await?;
    Ok(())
}
