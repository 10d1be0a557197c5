//! One WebSocket connection: a single `select!` loop over the socket, the connection's
//! bounded queue (fed by the hub), and shutdown. Requests are answered in order; expected
//! failures become typed protocol errors and the connection stays open; only a dead peer,
//! abuse, an oversize frame, a slow reader or shutdown end it.
//!
//! The session is generic over the socket (`Stream` + `Sink` of messages) so that it does not
//! depend on axum's upgrade machinery.

use crate::app::{App, PendingLeave, wall_ms};
use crate::hub::{Client, ConnId, Outbound, Subscriber};
use crate::ids::{GameId, PlayerId};
use crate::operations::{self, OpError};
use crate::protocol::templates::{ChatTemplate, PresenceTemplate};
use crate::protocol::{
    AckInfo, ClientMsg, ErrorCode, PROTOCOL_VERSION, Req, ResumeGame, Role, ServerMsg, close,
    parse_client,
};
use crate::ratelimit::LocalLimiter;
use crate::rules::{Cell, Mark, Status};
use crate::session::{SessionToken, TokenHash};
use crate::store::{PresenceChange, Replay, SessionRecord, Ticket};
use crate::text::{clean_chat, clean_name};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A write that takes longer than this means the peer stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a move id may be.
const MAX_MID: usize = 64;

/// Why the loop ends.
#[derive(Debug, PartialEq, Eq)]
enum Closing {
    /// The peer went away; nothing to send.
    Gone,
    /// Close with this code and reason.
    Close(u16, &'static str),
}

type Step = Result<(), Closing>;

struct Identity {
    token: TokenHash,
    player: PlayerId,
    name: String,
}

struct Joined {
    role: Role,
    /// The last version this client has been sent.
    last: u64,
}

enum Frame {
    Msg(ServerMsg),
    Raw(Utf8Bytes),
}

pub struct Session<S> {
    app: Arc<App>,
    socket: S,
    conn: ConnId,
    ip: IpAddr,
    client: Client,
    identity: Option<Identity>,
    games: HashMap<GameId, Joined>,
    /// Every frame, before parsing.
    msg_limit: LocalLimiter,
    /// First tier of the move and chat budgets: floods stop here, before Redis.
    move_limit: LocalLimiter,
    chat_limit: LocalLimiter,
    /// Rate-limited requests; when it runs dry the connection is closed.
    abuse: LocalLimiter,
    queued: bool,
    watching_lobby: bool,
}

/// Runs a connection to its end, then leaves every game it was in.
pub async fn serve<S>(app: Arc<App>, socket: S, ip: IpAddr)
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    let conn = app.next_conn_id();
    let (tx, mut rx) = mpsc::channel(app.config.outbound_queue);
    let kill = CancellationToken::new();
    let client = Client::new(tx, kill.clone());
    app.hub.register(conn, client.clone());
    metrics::counter!("connections_total").increment(1);
    let config = &app.config;
    let mut session = Session {
        msg_limit: LocalLimiter::new(config.msg_rule()),
        move_limit: LocalLimiter::new(config.move_rule()),
        chat_limit: LocalLimiter::new(config.chat_rule()),
        abuse: LocalLimiter::new(config.abuse_rule()),
        app: app.clone(),
        socket,
        conn,
        ip,
        client,
        identity: None,
        games: HashMap::new(),
        queued: false,
        watching_lobby: false,
    };
    let span = tracing::info_span!(
        "conn",
        conn,
        instance = %app.instance,
        player = tracing::field::Empty
    );
    async {
        let closing = session.run(&mut rx, &kill).await;
        tracing::debug!(?closing, "connection ending");
        session.cleanup().await;
        app.hub.unregister(conn);
        if let Closing::Close(code, reason) = closing {
            if code == close::SLOW_CONSUMER {
                tracing::info!("closing a client that does not keep up");
            }
            let frame = Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            }));
            let _ = tokio::time::timeout(Duration::from_secs(1), session.socket.send(frame)).await;
        }
    }
    .instrument(span)
    .await;
}

impl<S> Session<S>
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    async fn run(
        &mut self,
        rx: &mut mpsc::Receiver<Outbound>,
        kill: &CancellationToken,
    ) -> Closing {
        let hello_deadline = tokio::time::Instant::now() + self.app.config.hello_timeout;
        let idle = self.app.config.idle_timeout;
        let mut ping = tokio::time::interval(idle / 3);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        let mut last_heard = Instant::now();
        let mut renewed = Instant::now();
        let shutdown = self.app.shutdown.clone();
        loop {
            // Biased, and the queue before the socket: `select!` otherwise starts at a random
            // branch but then polls in order, so a client with requests always waiting would
            // see its own queue served a fraction of the time, fill up, and be closed as slow.
            // Requests wait instead; they are rate-limited anyway.
            let step = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    Err(Closing::Close(close::SERVICE_RESTART, "server restarting: reconnect"))
                }
                _ = kill.cancelled() => {
                    Err(Closing::Close(close::SLOW_CONSUMER, "too slow: outbound queue full"))
                }
                _ = tokio::time::sleep_until(hello_deadline), if self.identity.is_none() => {
                    Err(Closing::Close(close::POLICY, "no hello"))
                }
                // The handlers are boxed: their state then exists only while a message is
                // handled, instead of inflating every idle connection's future.
                Some(out) = rx.recv() => Box::pin(self.on_outbound(out)).await,
                frame = self.socket.next() => {
                    last_heard = Instant::now();
                    Box::pin(self.on_frame(frame)).await
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > idle {
                        Err(Closing::Close(close::IDLE, "idle"))
                    } else {
                        self.renew_session(&mut renewed).await;
                        self.write(Message::Ping(Default::default())).await
                    }
                }
            };
            if let Err(closing) = step {
                return closing;
            }
        }
    }

    /// A session lives `SESSION_TTL_SECS` after its last use: a connection open for longer
    /// than that must keep it alive, or its seats would be lost on the next reconnect.
    async fn renew_session(&mut self, renewed: &mut Instant) {
        let ttl = self.app.config.session_ttl;
        let Some(id) = &self.identity else { return };
        if renewed.elapsed() < ttl / 4 {
            return;
        }
        match self.app.store.open_session(&id.token, None, ttl).await {
            Ok(_) => *renewed = Instant::now(),
            Err(e) => tracing::debug!(error = %e, "session renewal failed; will retry"),
        }
    }

    async fn on_frame(&mut self, frame: Option<Result<Message, axum::Error>>) -> Step {
        let msg = match frame {
            None | Some(Ok(Message::Close(_))) => return Err(Closing::Gone),
            Some(Err(e)) => {
                return Err(if is_too_big(&e) {
                    metrics::counter!("oversize_frames_total").increment(1);
                    Closing::Close(close::TOO_BIG, "message too big")
                } else {
                    Closing::Gone
                });
            }
            Some(Ok(m)) => m,
        };
        if let Err(wait) = self.msg_limit.check() {
            return self
                .limited(None, wait.as_millis() as u64 + 1, "messages")
                .await;
        }
        match msg {
            Message::Text(t) => self.on_text(t.as_str()).await,
            Message::Binary(_) => {
                self.send(ServerMsg::error(
                    None,
                    ErrorCode::BadJson,
                    "binary frames are not supported: send JSON text",
                ))
                .await
            }
            // Pongs prove liveness; pings are answered by the WebSocket layer.
            _ => Ok(()),
        }
    }

    async fn on_text(&mut self, text: &str) -> Step {
        let msg = match parse_client(text) {
            Ok(m) => m,
            Err(e) => {
                metrics::counter!("bad_requests_total", "code" => format!("{:?}", e.code))
                    .increment(1);
                return self
                    .send(ServerMsg::Error {
                        req: e.req,
                        game: None,
                        code: e.code,
                        message: e.message,
                        retry_after_ms: None,
                    })
                    .await;
            }
        };
        if self.identity.is_none()
            && !matches!(msg, ClientMsg::Hello { .. } | ClientMsg::Ping { .. })
        {
            return self
                .send(ServerMsg::error(
                    msg.req(),
                    ErrorCode::HelloRequired,
                    "say hello first",
                ))
                .await;
        }
        match msg {
            ClientMsg::Hello {
                req,
                token,
                name,
                resume,
            } => self.hello(req, token, name, resume).await,
            ClientMsg::Ping { req } => self.send(ServerMsg::Pong { req }).await,
            ClientMsg::Create { req } => self.create(req).await,
            ClientMsg::Join {
                req,
                game,
                spectate,
            } => {
                let r = self.join(req, game, spectate, None).await;
                self.finish(req, r).await
            }
            ClientMsg::Leave { req, game } => self.leave(req, game).await,
            ClientMsg::Move {
                req,
                game,
                cell,
                mid,
                version,
            } => self.play(req, game, cell, mid, version).await,
            ClientMsg::Resign { req, game } => {
                self.seat_action(req, game, SeatAction::Resign).await
            }
            ClientMsg::Rematch { req, game } => {
                self.seat_action(req, game, SeatAction::Rematch).await
            }
            ClientMsg::Chat { req, game, text } => self.chat(req, game, text).await,
            ClientMsg::Sync { req, game, since } => self.sync(req, game, since).await,
            ClientMsg::Lobby { req, watch } => self.lobby(req, watch).await,
            ClientMsg::QuickMatch { req } => self.quick_match(req).await,
            ClientMsg::CancelMatch { req } => self.cancel_match(req).await,
        }
    }

    async fn hello(
        &mut self,
        req: Option<Req>,
        token: Option<String>,
        name: Option<String>,
        resume: Vec<ResumeGame>,
    ) -> Step {
        if self.identity.is_some() {
            return self
                .send(ServerMsg::error(
                    req,
                    ErrorCode::BadRequest,
                    "hello was already said",
                ))
                .await;
        }
        let app = self.app.clone();
        let name = name.as_deref().and_then(clean_name);
        let ttl = app.config.session_ttl;
        let mut opened = None;
        if let Some(token) = token.as_deref().and_then(SessionToken::parse) {
            let hash = token.hash();
            match app.store.open_session(&hash, name.as_deref(), ttl).await {
                Ok(Some(open)) => opened = Some((hash, open)),
                Ok(None) => {}
                Err(e) => return self.op_error(req, e.into()).await,
            }
        }
        let (identity, new_token, games) = match opened {
            Some((token, open)) => (
                Identity {
                    token,
                    player: open.record.player,
                    name: open.record.name,
                },
                None,
                open.games,
            ),
            None => {
                // Minting sessions is limited per IP, or it would be a way around every
                // per-session budget.
                if let Err(ms) = app
                    .limit_ip("ip-session", self.ip, app.config.ip_session_rule())
                    .await
                {
                    return self.limited(req, ms, "sessions").await;
                }
                let token = SessionToken::generate();
                let player = PlayerId::generate();
                let name = name.unwrap_or_else(|| default_name(&player));
                let record = SessionRecord {
                    player: player.clone(),
                    name: name.clone(),
                };
                if let Err(e) = app.store.create_session(&token.hash(), &record, ttl).await {
                    return self.op_error(req, e.into()).await;
                }
                metrics::counter!("sessions_created_total").increment(1);
                (
                    Identity {
                        token: token.hash(),
                        player,
                        name,
                    },
                    Some(token.expose().to_string()),
                    Vec::new(),
                )
            }
        };
        tracing::Span::current().record("player", identity.player.as_str());
        let resumed = new_token.is_none();
        tracing::debug!(resumed, games = games.len(), "hello");
        self.send(ServerMsg::Welcome {
            req,
            token: new_token,
            player: identity.player.clone(),
            name: identity.name.clone(),
            resumed,
            instance: app.instance.clone(),
            protocol: PROTOCOL_VERSION,
            chat_max_chars: app.config.chat_max_chars,
            forfeit_grace_ms: app.config.forfeit_grace.as_millis() as u64,
        })
        .await?;
        self.identity = Some(identity);

        // Back into every game of the session, and any the client says it was watching,
        // catching up from the version the client last saw.
        let since: HashMap<GameId, u64> = resume.into_iter().map(|r| (r.game, r.version)).collect();
        let mut all = games;
        for g in since.keys() {
            if !all.contains(g) {
                all.push(g.clone());
            }
        }
        for game in all {
            let from = since.get(&game).copied();
            match self.join(None, game.clone(), true, from).await {
                Ok(frames) => self.send_all(frames).await?,
                Err(OpError::UnknownGame) => {
                    if let Some(id) = &self.identity {
                        let _ = app.store.forget_game(&id.token, &game).await;
                    }
                    // Say so: the client may still be showing it.
                    self.send(ServerMsg::Error {
                        req: None,
                        game: Some(game.clone()),
                        code: ErrorCode::UnknownGame,
                        message: format!("game {game} has expired"),
                        retry_after_ms: None,
                    })
                    .await?;
                }
                Err(e) => {
                    tracing::warn!(%game, error = %e, "could not restore a game");
                    let mut msg = e.to_msg(None);
                    if let ServerMsg::Error {
                        message, game: g, ..
                    } = &mut msg
                    {
                        *message = format!("could not restore game {game}: {message}");
                        *g = Some(game.clone());
                    }
                    self.send(msg).await?;
                }
            }
        }
        Ok(())
    }

    async fn create(&mut self, req: Option<Req>) -> Step {
        let Some(id) = &self.identity else {
            return Ok(());
        };
        let (player, name) = (id.player.clone(), id.name.clone());
        let r = async {
            let (game, _, _) = operations::create(&self.app, (&player, &name), None).await?;
            self.join(req, game, false, None).await
        }
        .await;
        self.finish(req, r).await
    }

    /// Joins a game: subscribes, takes the free O seat unless `spectate` (or when resuming),
    /// announces presence, and returns the frames that bring the client up to date: a
    /// snapshot, or with `since` the missed events when the log still has them.
    async fn join(
        &mut self,
        req: Option<Req>,
        game: GameId,
        spectate: bool,
        since: Option<u64>,
    ) -> Result<Vec<Frame>, OpError> {
        let Some(id) = &self.identity else {
            return Err(OpError::Internal("join before hello".into()));
        };
        let (player, name, token) = (id.player.clone(), id.name.clone(), id.token.clone());
        let app = self.app.clone();
        if let Some(j) = self.games.get(&game) {
            let role = j.role;
            return Ok(vec![self.snapshot(req, &game, role).await?]);
        }
        let sub = Subscriber {
            conn: self.conn,
            client: self.client.clone(),
            player: player.clone(),
            role: Role::Spectator,
        };
        app.hub
            .join(&game, sub.clone(), app.config.redis_timeout)
            .await
            .map_err(|_| OpError::Unavailable)?;
        let joined = async {
            let sg = app
                .store
                .load_game(&game)
                .await?
                .ok_or(OpError::UnknownGame)?;
            app.hub.observe(&game, sg.version, &sg.state);
            let role = match sg.seat_of(&player) {
                Some(m) => Role::from(m),
                None if !spectate && sg.state.status == Status::Waiting && sg.seats.o.is_none() => {
                    match operations::claim_o(&app, &game, &player, &name, (sg.version, sg.state))
                        .await?
                    {
                        Some(_) => Role::O,
                        None => Role::Spectator,
                    }
                }
                None => Role::Spectator,
            };
            app.store
                .remember_game(&token, &game, app.config.session_ttl)
                .await?;
            let chat = app
                .store
                .recent_chat(Some(&game), app.config.chat_history)
                .await?;
            // Last, so that nothing can fail after the presence entry exists.
            let change = app
                .store
                .presence_change(
                    &game,
                    &app.presence_entry(&player, role),
                    1,
                    &PresenceTemplate::new(&game),
                    app.config.game_ttl,
                )
                .await?;
            Ok::<_, OpError>((role, chat, change))
        }
        .await;
        let (role, chat, change) = match joined {
            Ok(j) => j,
            Err(e) => {
                app.hub.leave(&game, self.conn);
                return Err(e);
            }
        };
        app.hub
            .join(&game, Subscriber { role, ..sub }, app.config.redis_timeout)
            .await
            .map_err(|_| OpError::Unavailable)?;
        let (version, state) = app
            .hub
            .cached(&game)
            .ok_or_else(|| OpError::Internal("joined game has no state".into()))?;
        metrics::counter!("joins_total", "role" => role_label(role)).increment(1);
        tracing::debug!(%game, ?role, version, "joined");

        if let Some(since) = since
            && since <= version
            && let Replay::Events(events) = app.store.events_since(&game, since).await?
        {
            let last = since + events.len() as u64;
            self.games.insert(game.clone(), Joined { role, last });
            let mut frames: Vec<Frame> = events
                .into_iter()
                .map(|e| Frame::Raw(event_text(e)))
                .collect();
            frames.push(Frame::Msg(ServerMsg::Presence {
                game: game.clone(),
                presence: change.presence,
            }));
            frames.push(Frame::Msg(ServerMsg::ChatHistory {
                game: Some(game),
                lines: chat,
            }));
            return Ok(frames);
        }
        self.games.insert(
            game.clone(),
            Joined {
                role,
                last: version,
            },
        );
        Ok(vec![Frame::Msg(ServerMsg::Snapshot {
            req,
            game,
            version,
            you: role,
            state,
            presence: change.presence,
            chat,
        })])
    }

    /// A fresh snapshot of a joined game.
    async fn snapshot(
        &mut self,
        req: Option<Req>,
        game: &GameId,
        role: Role,
    ) -> Result<Frame, OpError> {
        let app = self.app.clone();
        let (version, state) = operations::load(&app, game).await?;
        let presence = app.store.presence(game).await?;
        let chat = app
            .store
            .recent_chat(Some(game), app.config.chat_history)
            .await?;
        if let Some(j) = self.games.get_mut(game) {
            j.last = j.last.max(version);
        }
        Ok(Frame::Msg(ServerMsg::Snapshot {
            req,
            game: game.clone(),
            version,
            you: role,
            state,
            presence,
            chat,
        }))
    }

    async fn leave(&mut self, req: Option<Req>, game: GameId) -> Step {
        let Some(j) = self.games.remove(&game) else {
            return self.not_in_game(req, &game).await;
        };
        self.app.hub.leave(&game, self.conn);
        self.announce_leave(&game, j.role).await;
        if let Some(id) = &self.identity
            && let Err(e) = self.app.store.forget_game(&id.token, &game).await
        {
            tracing::warn!(%game, error = %e, "could not forget a left game");
        }
        self.send(ServerMsg::ack(req, AckInfo::default())).await
    }

    async fn announce_leave(&mut self, game: &GameId, role: Role) {
        if let Some(id) = &self.identity {
            announce_leave(&self.app, &id.player, game, role).await;
        }
    }

    async fn play(
        &mut self,
        req: Option<Req>,
        game: GameId,
        cell: i64,
        mid: Option<String>,
        hint: Option<u64>,
    ) -> Step {
        let Some(mark) = self.seat(&game) else {
            return self.seatless(req, &game).await;
        };
        if let Err(wait) = self.move_limit.check() {
            return self
                .limited(req, wait.as_millis() as u64 + 1, "moves")
                .await;
        }
        let cell = match Cell::new(cell) {
            Ok(c) => c,
            Err(e) => return self.op_error(req, e.into()).await,
        };
        if mid
            .as_ref()
            .is_some_and(|m| m.is_empty() || m.len() > MAX_MID)
        {
            return self
                .send(ServerMsg::error(
                    req,
                    ErrorCode::BadRequest,
                    "mid must be 1 to 64 characters",
                ))
                .await;
        }
        let Some(id) = &self.identity else {
            return Ok(());
        };
        let player = id.player.clone();
        let r = operations::play(&self.app, &game, &player, mark, cell, mid.as_deref(), hint).await;
        self.done(req, r).await
    }

    async fn seat_action(&mut self, req: Option<Req>, game: GameId, action: SeatAction) -> Step {
        let Some(mark) = self.seat(&game) else {
            return self.seatless(req, &game).await;
        };
        let Some(id) = &self.identity else {
            return Ok(());
        };
        let player = id.player.clone();
        let r = match action {
            SeatAction::Resign => operations::resign(&self.app, &game, &player, mark).await,
            SeatAction::Rematch => operations::rematch(&self.app, &game, &player, mark).await,
        };
        self.done(req, r).await
    }

    async fn chat(&mut self, req: Option<Req>, game: Option<GameId>, text: String) -> Step {
        let app = self.app.clone();
        let Some(text) = clean_chat(&text, app.config.chat_max_chars) else {
            let msg = format!(
                "chat text must have 1 to {} characters after cleaning",
                app.config.chat_max_chars
            );
            return self
                .send(ServerMsg::error(req, ErrorCode::InvalidText, msg))
                .await;
        };
        let role = match &game {
            Some(g) => match self.games.get(g) {
                Some(j) => Some(j.role),
                None => return self.not_in_game(req, g).await,
            },
            None => None,
        };
        if let Err(wait) = self.chat_limit.check() {
            return self.limited(req, wait.as_millis() as u64 + 1, "chat").await;
        }
        let Some(id) = &self.identity else {
            return Ok(());
        };
        let (player, name) = (id.player.clone(), id.name.clone());
        let key = app.store.keys().rate("chat", player.as_str());
        match app.store.rate(&key, app.config.chat_rule()).await {
            Ok(crate::ratelimit::Decision::Deny { retry_after_us }) => {
                let ms = crate::ratelimit::Decision::retry_after_ms(retry_after_us);
                return self.limited(req, ms, "chat").await;
            }
            Ok(_) => {}
            Err(e) => return self.op_error(req, e.into()).await,
        }
        // A line must not keep a game's chat alive longer than the game itself.
        let ttl = match &game {
            Some(g) if app.hub.cached(g).is_some_and(|(_, s)| s.is_over()) => {
                app.config.finished_game_ttl
            }
            Some(_) => app.config.game_ttl,
            None => app.config.session_ttl,
        };
        let event = ChatTemplate::new(game.as_ref(), &name, role, &text);
        match app
            .store
            .append_chat(game.as_ref(), &name, role, &text, &event, ttl)
            .await
        {
            Ok(Some(_)) => {
                metrics::counter!("chat_lines_total").increment(1);
                self.send(ServerMsg::ack(req, AckInfo::default())).await
            }
            Ok(None) => self.op_error(req, OpError::UnknownGame).await,
            Err(e) => self.op_error(req, e.into()).await,
        }
    }

    async fn sync(&mut self, req: Option<Req>, game: GameId, since: u64) -> Step {
        if !self.games.contains_key(&game) {
            return self.not_in_game(req, &game).await;
        }
        if let Some(j) = self.games.get_mut(&game) {
            j.last = since.min(j.last);
        }
        self.resync(&game).await?;
        self.send(ServerMsg::ack(req, AckInfo::default())).await
    }

    async fn lobby(&mut self, req: Option<Req>, watch: bool) -> Step {
        let app = self.app.clone();
        if !watch {
            self.watching_lobby = false;
            app.hub.unwatch_lobby(self.conn);
            return self.send(ServerMsg::ack(req, AckInfo::default())).await;
        }
        self.watching_lobby = true;
        app.hub.watch_lobby(self.conn, self.client.clone());
        let listed = app.store.lobby_list(LOBBY_MAX, app.config.game_ttl).await;
        let chat = app.store.recent_chat(None, app.config.chat_history).await;
        match (listed, chat) {
            (Ok((open, live)), Ok(lines)) => {
                self.send(ServerMsg::ack(req, AckInfo::default())).await?;
                self.send(ServerMsg::Lobby { open, live }).await?;
                self.send(ServerMsg::ChatHistory { game: None, lines })
                    .await
            }
            (Err(e), _) | (_, Err(e)) => self.op_error(req, e.into()).await,
        }
    }

    async fn quick_match(&mut self, req: Option<Req>) -> Step {
        if self.queued {
            return self
                .send(ServerMsg::error(
                    req,
                    ErrorCode::AlreadyQueued,
                    "already waiting for a match",
                ))
                .await;
        }
        let Some(id) = &self.identity else {
            return Ok(());
        };
        let ticket = Ticket {
            player: id.player.clone(),
            name: id.name.clone(),
            lease: self.app.lease.clone(),
            conn: self.conn,
        };
        match operations::quick_match(&self.app, &ticket).await {
            Ok(None) => {
                self.queued = true;
                self.app.waiting.insert(self.conn, ticket.player);
                self.send(ServerMsg::ack(req, AckInfo::default())).await
            }
            Ok(Some(game)) => {
                self.send(ServerMsg::ack(req, AckInfo::default())).await?;
                self.matched(game, Mark::O).await
            }
            Err(e) => self.op_error(req, e).await,
        }
    }

    async fn cancel_match(&mut self, req: Option<Req>) -> Step {
        if self.queued {
            self.queued = false;
            self.app.waiting.remove(&self.conn);
            if let Some(id) = &self.identity
                && let Err(e) = self.app.store.match_cancel(&id.player).await
            {
                return self.op_error(req, e.into()).await;
            }
        }
        self.send(ServerMsg::ack(req, AckInfo::default())).await
    }

    /// Paired: say so, then join the game (seated by the pairing).
    async fn matched(&mut self, game: GameId, you: Mark) -> Step {
        self.queued = false;
        self.app.waiting.remove(&self.conn);
        self.send(ServerMsg::MatchFound {
            game: game.clone(),
            you,
        })
        .await?;
        let r = self.join(None, game, true, None).await;
        self.finish(None, r).await
    }

    async fn on_outbound(&mut self, out: Outbound) -> Step {
        match out {
            Outbound::Game(event) => {
                let Some(j) = self.games.get_mut(&event.game) else {
                    return Ok(());
                };
                match event.version {
                    None => self.write(Message::Text(event.payload.clone())).await,
                    Some(v) if v <= j.last => Ok(()),
                    Some(v) if v == j.last + 1 => {
                        j.last = v;
                        self.write(Message::Text(event.payload.clone())).await
                    }
                    // A hole: events were lost on the way (the bus reconnected).
                    Some(_) => self.resync(&event.game).await,
                }
            }
            Outbound::Resync(game) => self.resync(&game).await,
            Outbound::Lobby(frame) if self.watching_lobby => self.write(Message::Text(frame)).await,
            Outbound::Lobby(_) => Ok(()),
            Outbound::Matched { game, you } => self.matched(game, you).await,
            Outbound::Requeue if self.queued => {
                self.queued = false;
                self.quick_match(None).await
            }
            Outbound::Requeue => Ok(()),
        }
    }

    /// Sends what this client missed of a game: the logged events after its last version,
    /// or a snapshot when the log no longer reaches back that far.
    async fn resync(&mut self, game: &GameId) -> Step {
        let Some(j) = self.games.get(game) else {
            return Ok(());
        };
        let (last, role) = (j.last, j.role);
        let app = self.app.clone();
        match app.store.events_since(game, last).await {
            Ok(Replay::UpToDate) => Ok(()),
            Ok(Replay::Events(events)) => {
                if let Some(j) = self.games.get_mut(game) {
                    j.last = last + events.len() as u64;
                }
                if let Some(state) = events
                    .last()
                    .and_then(|e| serde_json::from_slice::<ServerMsg>(e).ok())
                    && let (Some((_, v)), Some(s)) = (state.game_version(), state.state())
                {
                    app.hub.observe(game, v, s);
                }
                for e in events {
                    self.write(Message::Text(event_text(e))).await?;
                }
                Ok(())
            }
            Ok(Replay::TooOld) => match self.snapshot(None, game, role).await {
                Ok(frame) => self.send_all(vec![frame]).await,
                Err(e) => {
                    tracing::warn!(%game, error = %e, "resync snapshot failed");
                    Ok(())
                }
            },
            Ok(Replay::UnknownGame) => {
                self.games.remove(game);
                app.hub.leave(game, self.conn);
                self.send(ServerMsg::Error {
                    req: None,
                    game: Some(game.clone()),
                    code: ErrorCode::UnknownGame,
                    message: format!("game {game} has expired"),
                    retry_after_ms: None,
                })
                .await
            }
            Err(e) => {
                // The next event (or the bus's own resync) tries again.
                tracing::warn!(%game, error = %e, "resync failed");
                Ok(())
            }
        }
    }

    /// Leaves every game and the match queue; runs whatever way the connection ended.
    async fn cleanup(&mut self) {
        let app = self.app.clone();
        if self.queued {
            app.waiting.remove(&self.conn);
            if let Some(id) = &self.identity
                && let Err(e) = app.store.match_cancel(&id.player).await
            {
                tracing::warn!(error = %e, "could not withdraw the match ticket");
            }
        }
        app.hub.unwatch_lobby(self.conn);
        let games: Vec<(GameId, Role)> = self.games.drain().map(|(g, j)| (g, j.role)).collect();
        for (game, role) in games {
            app.hub.leave(&game, self.conn);
            self.announce_leave(&game, role).await;
        }
    }

    fn seat(&self, game: &GameId) -> Option<Mark> {
        self.games.get(game).and_then(|j| j.role.mark())
    }

    async fn seatless(&mut self, req: Option<Req>, game: &GameId) -> Step {
        if self.games.contains_key(game) {
            self.send(ServerMsg::error(
                req,
                ErrorCode::NotYourSeat,
                "spectators cannot play",
            ))
            .await
        } else {
            self.not_in_game(req, game).await
        }
    }

    async fn not_in_game(&mut self, req: Option<Req>, game: &GameId) -> Step {
        self.send(ServerMsg::error(
            req,
            ErrorCode::NotInGame,
            format!("join game {game} first"),
        ))
        .await
    }

    /// Answers a request that produced frames (or failed).
    async fn finish(&mut self, req: Option<Req>, r: Result<Vec<Frame>, OpError>) -> Step {
        match r {
            Ok(frames) => self.send_all(frames).await,
            Err(e) => self.op_error(req, e).await,
        }
    }

    /// Answers a committed (or refused) transition.
    async fn done(&mut self, req: Option<Req>, r: Result<operations::Done, OpError>) -> Step {
        match r {
            Ok(d) => {
                let info = AckInfo {
                    version: Some(d.version),
                    duplicate: d.duplicate,
                };
                self.send(ServerMsg::ack(req, info)).await
            }
            Err(OpError::RateLimited { retry_after_ms }) => {
                self.limited(req, retry_after_ms, "moves").await
            }
            Err(e) => self.op_error(req, e).await,
        }
    }

    async fn op_error(&mut self, req: Option<Req>, e: OpError) -> Step {
        match &e {
            OpError::Internal(cause) => tracing::error!(%cause, "request failed"),
            OpError::Unavailable => metrics::counter!("unavailable_total").increment(1),
            _ => {}
        }
        self.send(e.to_msg(req)).await
    }

    /// Refuses a request over budget. Repeated refusals use up the abuse budget, and then
    /// the connection is closed as a policy violation.
    async fn limited(&mut self, req: Option<Req>, retry_after_ms: u64, rule: &'static str) -> Step {
        metrics::counter!("rate_limited_total", "rule" => rule).increment(1);
        if self.abuse.check().is_err() {
            tracing::info!(rule, "closing an abusive connection");
            return Err(Closing::Close(
                close::POLICY,
                "rate limits exceeded repeatedly",
            ));
        }
        self.send(ServerMsg::Error {
            req,
            game: None,
            code: ErrorCode::RateLimited,
            message: format!("too many {rule}: retry after {retry_after_ms} ms"),
            retry_after_ms: Some(retry_after_ms.max(1)),
        })
        .await
    }

    async fn send_all(&mut self, frames: Vec<Frame>) -> Step {
        for f in frames {
            match f {
                Frame::Msg(m) => self.send(m).await?,
                Frame::Raw(r) => self.write(Message::Text(r)).await?,
            }
        }
        Ok(())
    }

    async fn send(&mut self, msg: ServerMsg) -> Step {
        self.write(Message::Text(msg.to_json().into())).await
    }

    async fn write(&mut self, msg: Message) -> Step {
        match tokio::time::timeout(WRITE_TIMEOUT, self.socket.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Closing::Gone),
            Err(_) => Err(Closing::Close(
                close::SLOW_CONSUMER,
                "too slow: write timed out",
            )),
        }
    }
}

/// Removes a connection from the game's presence, starting the forfeit clock if a seat
/// emptied. If the store cannot be reached the decrement is retried later.
async fn announce_leave(app: &App, player: &PlayerId, game: &GameId, role: Role) {
    let entry = app.presence_entry(player, role);
    match app
        .store
        .presence_change(
            game,
            &entry,
            -1,
            &PresenceTemplate::new(game),
            app.config.game_ttl,
        )
        .await
    {
        Ok(change) => start_forfeit_clock(app, game, &change).await,
        Err(e) => {
            tracing::warn!(%game, error = %e, "presence decrement deferred");
            app.defer_leave(PendingLeave {
                game: game.clone(),
                player: player.clone(),
                role,
            });
        }
    }
}

enum SeatAction {
    Resign,
    Rematch,
}

/// Most games per lobby list.
pub const LOBBY_MAX: usize = 50;

/// A seat emptied: the player forfeits if not back within the grace period.
pub async fn start_forfeit_clock(app: &App, game: &GameId, change: &PresenceChange) {
    if !(change.left.x || change.left.o) {
        return;
    }
    let at = wall_ms() + app.config.forfeit_grace.as_millis() as u64;
    if let Err(e) = app.store.set_deadline(game, at).await {
        tracing::warn!(%game, error = %e, "could not start the forfeit clock");
    }
}

/// A logged event as a text frame. Instances log only the JSON they render, so this never
/// copies; were an entry damaged, the client still gets that version (its text mangled)
/// rather than a gap it would never notice.
fn event_text(event: Bytes) -> Utf8Bytes {
    Utf8Bytes::try_from(event.clone())
        .unwrap_or_else(|_| String::from_utf8_lossy(&event).into_owned().into())
}

fn role_label(role: Role) -> &'static str {
    match role {
        Role::X => "x",
        Role::O => "o",
        Role::Spectator => "spectator",
    }
}

fn default_name(player: &PlayerId) -> String {
    let tail: String = player.as_str().chars().rev().take(4).collect();
    format!("Player-{}", tail.chars().rev().collect::<String>())
}

/// Whether a socket error is tungstenite refusing a frame or message over the size limit.
fn is_too_big(e: &axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error as WsError;
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<WsError>())
        .is_some_and(|e| matches!(e, WsError::Capacity(_)))
}
