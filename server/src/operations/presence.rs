//! Arriving in a game and leaving it: the seat taken on the way in, the game remembered in the
//! session, the presence entry counted in and out, and the forfeit clock when a seat empties.

use super::OpError;
use super::deadlines::start_forfeit_clock;
use super::games::claim_o;
use super::sessions::Identity;
use crate::app::{App, PendingLeave};
use crate::ratelimit::Decision;
use crate::store::Attendance;
use std::net::IpAddr;
use tictactoe_protocol::ids::{GameId, PlayerId};
use tictactoe_protocol::templates::PresenceTemplate;
use tictactoe_protocol::{AwayReason, ChatLine, Presence, Role};
use tictactoe_rules::Status;

/// A game entered: the role held in it, and what the client is shown of it besides the state.
#[derive(Debug)]
pub struct Entered {
    pub role: Role,
    pub chat: Vec<ChatLine>,
    pub presence: Presence,
}

/// Enters a game as its player, or takes the free O seat unless `spectate`, or watches (within
/// the session's and the address's spectating budgets: every arrival and departure reaches
/// the players as presence). The caller subscribes to the game first, so that no event after
/// the state read here is missed.
pub async fn enter(
    app: &App,
    game: &GameId,
    who: &Identity,
    spectate: bool,
    ip: IpAddr,
) -> Result<Entered, OpError> {
    let sg = app
        .store
        .load_game(game)
        .await?
        .ok_or(OpError::UnknownGame)?;
    app.hub.observe(game, sg.version, &sg.state);
    // Whether the game may still be waiting for its players to confirm the match: it began
    // with this very claim, or nobody has moved yet.
    let mut began =
        sg.state.status == Status::Playing && sg.state.round == 1 && sg.state.moves.is_empty();
    let role = match sg.seat_of(&who.player) {
        Some(m) => Role::from(m),
        None if !spectate && sg.state.status == Status::Waiting && sg.seats.o.is_none() => {
            match claim_o(app, game, &who.player, &who.name, (sg.version, sg.state)).await? {
                Some(_) => {
                    began = true;
                    Role::O
                }
                None => Role::Spectator,
            }
        }
        None => Role::Spectator,
    };
    if role == Role::Spectator {
        spectating_budget(app, who, ip).await?;
    }
    app.store
        .remember_game(&who.token, game, app.config.session_ttl)
        .await?;
    let chat = app
        .store
        .recent_chat(Some(game), app.config.chat_history)
        .await?;
    // Last, so that nothing can fail after the presence entry exists.
    let change = app
        .store
        .presence_change(
            game,
            &app.presence_entry(&who.player, role),
            Attendance::Arrive,
            &PresenceTemplate::new(game),
            app.config.game_ttl,
        )
        .await?;
    if began && role != Role::Spectator && change.presence.players.x && change.presence.players.o {
        match_confirmed(app, game).await;
    }
    Ok(Entered {
        role,
        chat: super::records::chat_lines(chat),
        presence: change.presence.into(),
    })
}

/// Both players of a game that just began are here: its match-confirmation clock has nothing
/// left to watch (from now on every seat that empties starts its own forfeit clock). Best
/// effort: a clock left in place resolves as before, finding both players here.
async fn match_confirmed(app: &App, game: &GameId) {
    if let Err(e) = app.store.clear_match_clock(game).await {
        tracing::debug!(%game, error = %e, "match clock left to resolve on its own");
    }
}

/// Charges one game watched to the session's budget and the address's, both in the store so
/// that neither reconnecting nor changing instance resets them.
async fn spectating_budget(app: &App, who: &Identity, ip: IpAddr) -> Result<(), OpError> {
    let key = app.store.keys().rate("spectate", who.player.as_str());
    if let Decision::Deny { retry_after_us } =
        app.store.rate(&key, app.config.spectate_rule()).await?
    {
        metrics::counter!("rate_limited_total", "rule" => "spectate").increment(1);
        return Err(OpError::RateLimited {
            retry_after_ms: Decision::retry_after_ms(retry_after_us),
        });
    }
    app.limit_ip("ip-spectate", ip, app.config.ip_spectate_rule())
        .await
        .map_err(|retry_after_ms| {
            metrics::counter!("rate_limited_total", "rule" => "ip-spectate").increment(1);
            OpError::RateLimited { retry_after_ms }
        })
}

/// Removes a connection from the game's presence (`why`: the player left, or the connection
/// went), starting the forfeit clock if a seat emptied. If the store cannot be reached the
/// decrement is retried later.
pub async fn leave(app: &App, player: &PlayerId, game: &GameId, role: Role, why: AwayReason) {
    let deferred = PendingLeave {
        game: game.clone(),
        player: player.clone(),
        role,
        why,
        epoch: app.lease_epoch.load(std::sync::atomic::Ordering::SeqCst),
    };
    if app.is_redis_lost() {
        // This instance is sending its clients elsewhere: waiting out a timeout per game would
        // only delay that.
        app.defer_leave(deferred);
        return;
    }
    let entry = app.presence_entry(player, role);
    match app
        .store
        .presence_change(
            game,
            &entry,
            Attendance::Leave(why),
            &PresenceTemplate::new(game),
            app.config.game_ttl,
        )
        .await
    {
        Ok(change) => start_forfeit_clock(app, game, &change).await,
        Err(e) => {
            tracing::warn!(%game, error = %e, "presence decrement deferred");
            app.defer_leave(deferred);
        }
    }
}
