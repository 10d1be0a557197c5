//! Sessions, the logins kept in the store: resuming one by its token, minting one (limited
//! per IP), keeping it alive, and the games it remembers.

use super::OpError;
use crate::app::App;
use crate::ratelimit::{Decision, Rule};
use crate::session::{SessionToken, TokenHash};
use crate::store::SessionRecord;
use std::net::IpAddr;
use tictactoe_protocol::ids::{GameId, PlayerId};

/// Renames per session: each may publish an event in every game of the session, so a few in
/// a row (fixing a typo), then one every ten seconds, however many connections ask.
pub const RENAME_RULE: Rule = Rule {
    interval_us: 10_000_000,
    burst: 3,
};

/// Renames per client address, over all its sessions (sessions are cheap to make).
pub const IP_RENAME_RULE: Rule = Rule {
    interval_us: 2_000_000,
    burst: 10,
};

/// Who a session's connection speaks for.
#[derive(Clone, Debug)]
pub struct Identity {
    pub token: TokenHash,
    pub player: PlayerId,
    pub name: String,
    /// Whether this connection knows the player to have a profile (from the `welcome`, or
    /// its own profile requests): a hint that spares anonymous games a profile lookup per
    /// round, never a check.
    pub has_profile: bool,
}

/// A session opened by `hello`.
#[derive(Debug)]
pub struct Opened {
    pub identity: Identity,
    /// Set when the session was just minted: the client must keep it to resume later.
    pub new_token: Option<SessionToken>,
    /// The session's games, most recently joined first (none for a new session).
    pub games: Vec<GameId>,
}

/// Resumes the session `token` proves (renaming it to `name`), or mints a new one when there
/// is no token or it names no live session.
pub async fn open(
    app: &App,
    token: Option<&str>,
    name: Option<String>,
    ip: IpAddr,
) -> Result<Opened, OpError> {
    let ttl = app.config.session_ttl;
    if let Some(token) = token.and_then(SessionToken::parse) {
        let hash = token.hash();
        if let Some(open) = app.store.open_session(&hash, name.as_deref(), ttl).await? {
            return Ok(Opened {
                identity: Identity {
                    token: hash,
                    player: open.record.player,
                    name: open.record.name,
                    has_profile: false,
                },
                new_token: None,
                games: open.games,
            });
        }
    }
    // Minting sessions is limited per IP, or it would be a way around every per-session
    // budget.
    app.limit_ip("ip-session", ip, app.config.ip_session_rule())
        .await
        .map_err(|retry_after_ms| OpError::RateLimited { retry_after_ms })?;
    let token = SessionToken::generate();
    let player = PlayerId::generate();
    let name = name.unwrap_or_else(|| default_name(&player));
    let record = SessionRecord {
        player: player.clone(),
        name: name.clone(),
    };
    app.store
        .create_session(&token.hash(), &record, ttl)
        .await?;
    metrics::counter!("sessions_created_total").increment(1);
    Ok(Opened {
        identity: Identity {
            token: token.hash(),
            player,
            name,
            has_profile: false,
        },
        new_token: Some(token),
        games: Vec::new(),
    })
}

/// A session lives `session_ttl` after its last use: a connection open for longer than that
/// must renew it, or its seats would be lost on the next reconnect.
pub async fn renew(app: &App, token: &TokenHash) -> Result<(), OpError> {
    app.store
        .open_session(token, None, app.config.session_ttl)
        .await?;
    Ok(())
}

/// Renames the session, its quick-match ticket if it waits for a match, then its player in
/// every game of the session (and in `joined`, the games its connection is in) where it holds
/// a seat, within the session's and the address's rename budgets (kept in the store: more
/// connections or instances do not add to them). `name` is already cleaned.
pub async fn rename(
    app: &App,
    who: &Identity,
    name: &str,
    joined: impl IntoIterator<Item = GameId>,
    ip: IpAddr,
) -> Result<(), OpError> {
    let key = app.store.keys().rate("rename", who.player.as_str());
    if let Decision::Deny { retry_after_us } = app.store.rate(&key, RENAME_RULE).await? {
        return Err(OpError::RateLimited {
            retry_after_ms: Decision::retry_after_ms(retry_after_us),
        });
    }
    app.limit_ip("ip-rename", ip, IP_RENAME_RULE)
        .await
        .map_err(|retry_after_ms| OpError::RateLimited { retry_after_ms })?;
    let ttl = app.config.session_ttl;
    let mut games = match app.store.open_session(&who.token, Some(name), ttl).await? {
        Some(open) => open.games,
        // The session expired under a live connection: the games it joined remain.
        None => Vec::new(),
    };
    for g in joined {
        if !games.contains(&g) {
            games.push(g);
        }
    }
    // The ticket may be waiting on any instance, queued by any connection of the session.
    super::matching::rename(app, &who.player, name).await?;
    super::profiles::rename(app, &who.player, name).await?;
    super::games::rename(app, &who.player, name, &games).await
}

/// Drops a game from the session's list, so that the next `hello` does not restore it.
pub async fn forget_game(app: &App, token: &TokenHash, game: &GameId) -> Result<(), OpError> {
    app.store.forget_game(token, game).await?;
    Ok(())
}

fn default_name(player: &PlayerId) -> String {
    let tail: String = player.as_str().chars().rev().take(4).collect();
    format!("Player-{}", tail.chars().rev().collect::<String>())
}
