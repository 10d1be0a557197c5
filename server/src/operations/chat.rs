//! Chat lines, in a game or the lobby: the shared per-player budget, and a lifetime that never
//! outlasts the game the line belongs to.

use super::OpError;
use super::sessions::Identity;
use crate::app::App;
use crate::ratelimit::Decision;
use crate::store::{Appended, Author};
use tictactoe_protocol::Role;
use tictactoe_protocol::ids::GameId;
use tictactoe_protocol::templates::ChatTemplate;

/// A chat line that was posted.
#[derive(Debug)]
pub struct Posted {
    /// The line's id (for a retry: the id of the line the first attempt added).
    pub id: String,
    /// True when the line id had already been used: nothing was added.
    pub duplicate: bool,
}

/// Posts an already cleaned line as `from`, who holds `role` in `game` (none in the lobby).
/// `lid`, the client's line id, makes a retry add nothing.
pub async fn post(
    app: &App,
    game: Option<&GameId>,
    from: &Identity,
    role: Option<Role>,
    text: &str,
    lid: Option<&str>,
) -> Result<Posted, OpError> {
    // The budget lives in the store, so that reconnecting or spreading over instances does
    // not reset it.
    let key = app.store.keys().rate("chat", from.player.as_str());
    if let Decision::Deny { retry_after_us } = app.store.rate(&key, app.config.chat_rule()).await? {
        // A retry of a line that went in (its first attempt met `unavailable`) is answered
        // as the duplicate it is, not refused: the budget is spent before the line id is read.
        if let Some(lid) = lid
            && let Some(id) = app.store.chat_line_of(game, &from.player, lid).await?
        {
            return Ok(Posted {
                id,
                duplicate: true,
            });
        }
        return Err(OpError::RateLimited {
            retry_after_ms: Decision::retry_after_ms(retry_after_us),
        });
    }
    // A line must not keep a game's chat alive longer than the game itself.
    let ttl = match game {
        Some(g) if app.hub.cached(g).is_some_and(|(_, s)| s.is_over()) => {
            app.config.finished_game_ttl
        }
        Some(_) => app.config.game_ttl,
        None => app.config.session_ttl,
    };
    let event = ChatTemplate::new(game, &from.name, role, text);
    let author = Author {
        player: &from.player,
        name: &from.name,
        role,
    };
    match app
        .store
        .append_chat(game, &author, text, lid, &event, ttl)
        .await?
    {
        Appended::Line(line) => {
            metrics::counter!("chat_lines_total").increment(1);
            Ok(Posted {
                id: line.id,
                duplicate: false,
            })
        }
        Appended::Duplicate { id } => {
            // A retry of a line that went in adds nothing, so it costs nothing of the shared
            // budget: the client's own retries after `unavailable` (often from another
            // connection, after a reconnect) must not make its next line wait. The
            // connection's own limiter stays charged, which bounds a flood of retries.
            if let Err(e) = app.store.rate_refund(&key, app.config.chat_rule()).await {
                tracing::debug!(error = %e, "chat budget not given back");
            }
            Ok(Posted {
                id,
                duplicate: true,
            })
        }
        Appended::UnknownGame => Err(OpError::UnknownGame),
    }
}
