//! The Redis store. Each operation is one Lua script (or one command), hence one round trip;
//! every script touches the keys of a single hash slot.
//!
//! Commands share one multiplexed, self-reconnecting connection; every call is bounded by the
//! operation timeout, so an outage turns into [`StoreError::Unavailable`] within that bound
//! instead of a hang. Pub/sub uses a dedicated connection per instance ([`RedisBus`]).

use super::*;
use crate::protocol::ServerMsg;
use crate::rules::Mark;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Script, ServerErrorKind, Value};
use futures_util::StreamExt;
use std::future::Future;
use std::sync::LazyLock;
use std::time::Instant;

struct Scripts {
    transition: Script,
    create_game: Script,
    events_since: Script,
    rate: Script,
    open_session: Script,
    remember_game: Script,
    chat: Script,
    presence: Script,
    lease: Script,
    lobby: Script,
    matching: Script,
    deadline: Script,
}

/// Hashed once; `Script` sends EVALSHA and loads the source only after a NOSCRIPT (for
/// example after Redis restarted).
static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    transition: Script::new(include_str!("scripts/transition.lua")),
    create_game: Script::new(include_str!("scripts/create_game.lua")),
    events_since: Script::new(include_str!("scripts/events_since.lua")),
    rate: Script::new(include_str!("scripts/rate.lua")),
    open_session: Script::new(include_str!("scripts/open_session.lua")),
    remember_game: Script::new(include_str!("scripts/remember_game.lua")),
    chat: Script::new(include_str!("scripts/chat.lua")),
    presence: Script::new(include_str!("scripts/presence.lua")),
    lease: Script::new(include_str!("scripts/lease.lua")),
    lobby: Script::new(include_str!("scripts/lobby.lua")),
    matching: Script::new(include_str!("scripts/match.lua")),
    deadline: Script::new(include_str!("scripts/deadline.lua")),
});

pub struct RedisStore {
    keys: Keys,
    limits: StoreLimits,
    backend: Backend,
    bus: Arc<dyn Bus>,
    op_timeout: Duration,
}

/// One Redis, or a Redis Cluster.
enum Backend {
    Single(ConnectionManager),
    /// Connected on first use and kept: the cluster client follows slot moves and
    /// reconnects to nodes by itself, but its first connection needs the cluster up.
    Cluster(Box<LazyCluster>),
}

struct LazyCluster {
    client: ClusterClient,
    conn: tokio::sync::OnceCell<ClusterConnection>,
}

/// A connection to either kind of backend, for the commands and scripts.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ::redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisStore {
    /// Prepares the connection without waiting for Redis: an instance can start while Redis
    /// is down and become ready when it comes up.
    pub fn connect(
        url: &str,
        keys: Keys,
        limits: StoreLimits,
        op_timeout: Duration,
    ) -> StoreResult<RedisStore> {
        let info = ::redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| StoreError::Config(format!("invalid Redis URL: {e}")))?
            .set_tcp_settings(tcp_settings());
        let client = ::redis::Client::open(info)
            .map_err(|e| StoreError::Config(format!("invalid Redis URL: {e}")))?;
        // Few retries per reconnect attempt: a command waiting on a reconnect should fail
        // within the operation timeout; the next command starts a new attempt.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(op_timeout))
            .set_response_timeout(Some(op_timeout));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(RedisStore {
            keys,
            limits,
            backend: Backend::Single(conn),
            bus: Arc::new(RedisBus { client, op_timeout }),
            op_timeout,
        })
    }

    /// A store on a Redis Cluster, from seed node URLs. Nothing is connected until first use.
    pub fn connect_cluster(
        nodes: &[String],
        keys: Keys,
        limits: StoreLimits,
        op_timeout: Duration,
    ) -> StoreResult<RedisStore> {
        let client = cluster_client(nodes, op_timeout, None)?;
        Ok(RedisStore {
            keys,
            limits,
            backend: Backend::Cluster(Box::new(LazyCluster {
                client,
                conn: tokio::sync::OnceCell::new(),
            })),
            bus: Arc::new(ClusterBus {
                nodes: nodes.to_vec(),
                op_timeout,
            }),
            op_timeout,
        })
    }

    /// Runs one Redis call under the operation timeout, timing it for the latency histogram.
    async fn call<T>(
        &self,
        op: &'static str,
        f: impl Future<Output = Result<T, RedisError>>,
    ) -> StoreResult<T> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.op_timeout, f).await;
        metrics::histogram!("redis_command_seconds", "op" => op)
            .record(started.elapsed().as_secs_f64());
        match result {
            Err(_) => {
                metrics::counter!("redis_errors_total", "op" => op, "kind" => "timeout")
                    .increment(1);
                Err(StoreError::Unavailable(format!("{op}: timed out")))
            }
            Ok(Err(e)) => {
                let err = classify(e);
                let kind = match err {
                    StoreError::Unavailable(_) => "unavailable",
                    _ => "other",
                };
                metrics::counter!("redis_errors_total", "op" => op, "kind" => kind).increment(1);
                Err(err)
            }
            Ok(Ok(v)) => Ok(v),
        }
    }

    async fn conn(&self) -> StoreResult<Conn> {
        match &self.backend {
            Backend::Single(c) => Ok(Conn::Single(c.clone())),
            Backend::Cluster(lazy) => {
                let connect = lazy
                    .conn
                    .get_or_try_init(|| lazy.client.get_async_connection());
                match tokio::time::timeout(self.op_timeout, connect).await {
                    Ok(Ok(c)) => Ok(Conn::Cluster(c.clone())),
                    Ok(Err(e)) => Err(classify(e)),
                    Err(_) => Err(StoreError::Unavailable("cluster connect timed out".into())),
                }
            }
        }
    }

    /// Sharded pub/sub on a cluster: a message then travels only within its slot's shard
    /// (every channel shares its game's hash tag) instead of to every node.
    fn publish_cmd(&self) -> &'static str {
        match self.backend {
            Backend::Single(_) => "PUBLISH",
            Backend::Cluster(_) => "SPUBLISH",
        }
    }

    async fn presence_script(
        &self,
        game: &GameId,
        args: &[&str],
        ttl: Duration,
    ) -> StoreResult<(Presence, Seats<bool>, u64)> {
        let k = &self.keys;
        let mut inv = SCRIPTS.presence.prepare_invoke();
        inv.key(k.game_presence(game)).key(k.game(game));
        for a in args {
            inv.arg(*a);
        }
        inv.arg(ttl_ms(ttl))
            .arg(k.game_channel(game))
            .arg(game.as_str())
            .arg(self.publish_cmd());
        let mut conn = self.conn().await?;
        let v: Vec<i64> = self.call("presence", inv.invoke_async(&mut conn)).await?;
        match v.as_slice() {
            [x, o, n, xl, ol, mine] => Ok((
                presence_of(*x, *o, *n),
                Seats {
                    x: *xl == 1,
                    o: *ol == 1,
                },
                u64::try_from(*mine).unwrap_or(0),
            )),
            other => Err(corrupt("presence", other)),
        }
    }
}

/// A move is one small script call whose reply someone is waiting for: it must not sit in
/// Nagle's buffer (redis-rs leaves `TCP_NODELAY` off by default).
fn tcp_settings() -> ::redis::io::tcp::TcpSettings {
    ::redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

fn presence_of(x: i64, o: i64, n: i64) -> Presence {
    Presence {
        players: Seats {
            x: x == 1,
            o: o == 1,
        },
        spectators: u32::try_from(n).unwrap_or(0),
    }
}

fn seat_field(m: Mark) -> &'static str {
    match m {
        Mark::X => "x",
        Mark::O => "o",
    }
}

/// Connection trouble is `Unavailable` (retry later); anything else is a bug or bad data.
fn classify(e: RedisError) -> StoreError {
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
            ) | ErrorKind::ClusterConnectionNotFound
        )
        || matches!(e.code(), Some("MISCONF" | "BUSY" | "LOADING"));
    if transient {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Corrupt(e.to_string())
    }
}

fn corrupt(what: &str, got: impl std::fmt::Debug) -> StoreError {
    StoreError::Corrupt(format!("{what}: unexpected reply {got:?}"))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

fn items(v: Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

fn texts(v: Value) -> Option<Vec<String>> {
    items(v)?.iter().map(text).collect()
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> StoreResult<T> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what}: not a number: {s:?}")))
}

fn parse_state(json: &str) -> StoreResult<GameState> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("game state: {e}")))
}

fn player(s: Option<String>) -> StoreResult<Option<PlayerId>> {
    match s.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => PlayerId::try_from(s).map(Some).map_err(StoreError::Corrupt),
    }
}

fn stored_game(v: &str, s: &str, x: Option<String>, o: Option<String>) -> StoreResult<StoredGame> {
    Ok(StoredGame {
        version: num(v, "game version")?,
        state: parse_state(s)?,
        seats: Seats {
            x: player(x)?,
            o: player(o)?,
        },
    })
}

/// A chat line from a stream entry `[id, [field, value, ...]]`.
fn chat_line(entry: Value) -> StoreResult<ChatLine> {
    let mut parts = items(entry).ok_or_else(|| corrupt("chat entry", "not an array"))?;
    let fields = parts
        .pop()
        .and_then(texts)
        .ok_or_else(|| corrupt("chat entry", "no fields"))?;
    let id = parts
        .first()
        .and_then(text)
        .ok_or_else(|| corrupt("chat entry", "no id"))?;
    let field = |name: &str| {
        fields
            .chunks(2)
            .find(|kv| kv[0] == name)
            .and_then(|kv| kv.get(1).cloned())
            .unwrap_or_default()
    };
    let role = match field("r").as_str() {
        "" => None,
        r => Some(
            serde_json::from_value(serde_json::Value::String(r.to_string()))
                .map_err(|e| StoreError::Corrupt(format!("chat role: {e}")))?,
        ),
    };
    let ts = num(id.split('-').next().unwrap_or_default(), "chat id")?;
    Ok(ChatLine {
        id,
        from: field("f"),
        role,
        text: field("t"),
        ts,
    })
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::X => "X",
        Role::O => "O",
        Role::Spectator => "spectator",
    }
}

#[async_trait]
impl Store for RedisStore {
    fn keys(&self) -> &Keys {
        &self.keys
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let _: String = self
            .call("ping", ::redis::cmd("PING").query_async(&mut conn))
            .await?;
        Ok(())
    }

    async fn publish(&self, channel: &str, payload: &str) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let _: i64 = self
            .call(
                "publish",
                ::redis::cmd(self.publish_cmd())
                    .arg(channel)
                    .arg(payload)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(())
    }

    fn bus(&self) -> Arc<dyn Bus> {
        self.bus.clone()
    }

    async fn create_session(
        &self,
        token: &TokenHash,
        record: &SessionRecord,
        ttl: Duration,
    ) -> StoreResult<()> {
        let key = self.keys.session(token);
        let mut conn = self.conn().await?;
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(&key)
            .arg("player")
            .arg(record.player.as_str())
            .arg("name")
            .arg(&record.name)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms(ttl))
            .ignore();
        let _: () = self
            .call("create_session", pipe.query_async(&mut conn))
            .await?;
        Ok(())
    }

    async fn open_session(
        &self,
        token: &TokenHash,
        rename: Option<&str>,
        ttl: Duration,
    ) -> StoreResult<Option<OpenSession>> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.open_session.prepare_invoke();
        inv.key(self.keys.session(token))
            .key(self.keys.session_games(token))
            .arg(ttl_ms(ttl))
            .arg(rename.unwrap_or(""))
            .arg(self.limits.session_games);
        let v: Value = self
            .call("open_session", inv.invoke_async(&mut conn))
            .await?;
        if v == Value::Nil {
            return Ok(None);
        }
        let mut parts = items(v).ok_or_else(|| corrupt("session", "not an array"))?;
        if parts.len() != 3 {
            return Err(corrupt("session", parts));
        }
        let games = texts(parts.pop().unwrap_or_default())
            .ok_or_else(|| corrupt("session games", "not strings"))?
            .into_iter()
            .filter_map(|g| GameId::try_from(g).ok())
            .collect();
        let name = parts.pop().as_ref().and_then(text).unwrap_or_default();
        let player = player(parts.pop().as_ref().and_then(text))?
            .ok_or_else(|| corrupt("session", "no player"))?;
        Ok(Some(OpenSession {
            record: SessionRecord { player, name },
            games,
        }))
    }

    async fn remember_game(
        &self,
        token: &TokenHash,
        game: &GameId,
        ttl: Duration,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.remember_game.prepare_invoke();
        inv.key(self.keys.session_games(token))
            .arg(game.as_str())
            .arg(ttl_ms(ttl))
            .arg(self.limits.session_games);
        let _: i64 = self
            .call("remember_game", inv.invoke_async(&mut conn))
            .await?;
        Ok(())
    }

    async fn forget_game(&self, token: &TokenHash, game: &GameId) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let _: i64 = self
            .call(
                "forget_game",
                ::redis::cmd("ZREM")
                    .arg(self.keys.session_games(token))
                    .arg(game.as_str())
                    .query_async(&mut conn),
            )
            .await?;
        Ok(())
    }

    async fn create_game(
        &self,
        game: &GameId,
        seats: &Seats<Option<PlayerId>>,
        state: &GameState,
        event: &str,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let x = seats
            .x
            .as_ref()
            .ok_or_else(|| StoreError::Corrupt("a game needs X".into()))?;
        let state = serde_json::to_string(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.create_game.prepare_invoke();
        inv.key(self.keys.game(game))
            .key(self.keys.game_log(game))
            .arg(x.as_str())
            .arg(seats.o.as_ref().map(PlayerId::as_str).unwrap_or(""))
            .arg(state)
            .arg(event)
            .arg(self.keys.game_channel(game))
            .arg(ttl_ms(ttl))
            .arg(self.limits.log_len)
            .arg(self.publish_cmd());
        let created: i64 = self
            .call("create_game", inv.invoke_async(&mut conn))
            .await?;
        Ok(created == 1)
    }

    async fn load_game(&self, game: &GameId) -> StoreResult<Option<StoredGame>> {
        let mut conn = self.conn().await?;
        let v: Vec<Option<String>> = self
            .call(
                "load_game",
                ::redis::cmd("HMGET")
                    .arg(self.keys.game(game))
                    .arg("v")
                    .arg("s")
                    .arg("x")
                    .arg("o")
                    .query_async(&mut conn),
            )
            .await?;
        let mut it = v.into_iter();
        let (Some(Some(v)), Some(Some(s)), Some(x), Some(o)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Ok(None);
        };
        stored_game(&v, &s, x, o).map(Some)
    }

    async fn transition(&self, t: &Transition<'_>) -> StoreResult<Applied> {
        let k = &self.keys;
        let g = t.game;
        let (mode, field) = match t.seat {
            SeatCheck::None => ("-", "x"),
            SeatCheck::Holds(m) => ("holds", seat_field(m)),
            SeatCheck::Claims(m) => ("claims", seat_field(m)),
        };
        let (interval, tolerance) = t
            .limit
            .map(|r| (r.interval_us.to_string(), r.tolerance_us().to_string()))
            .unwrap_or_default();
        let state =
            serde_json::to_string(t.state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.transition.prepare_invoke();
        inv.key(k.game(g))
            .key(k.game_log(g))
            .key(k.game_mids(g))
            .key(k.game_move_rate(g, t.actor))
            .key(k.game_chat(g))
            .key(k.game_presence(g))
            .arg(t.expected)
            .arg(t.actor.as_str())
            .arg(mode)
            .arg(field)
            .arg(state)
            .arg(t.event)
            .arg(k.game_channel(g))
            .arg(ttl_ms(t.ttl))
            .arg(self.limits.log_len)
            .arg(t.mid.unwrap_or(""))
            .arg(interval)
            .arg(tolerance)
            .arg(self.limits.mids_kept)
            .arg(self.publish_cmd());
        let reply: Value = self.call("transition", inv.invoke_async(&mut conn)).await?;
        let mut parts = items(reply)
            .ok_or_else(|| corrupt("transition", "not an array"))?
            .into_iter()
            .map(|v| text(&v));
        let tag = parts.next().flatten().unwrap_or_default();
        let mut next = || parts.next().flatten().unwrap_or_default();
        Ok(match tag.as_str() {
            "ok" => Applied::Ok {
                version: num(&next(), "version")?,
            },
            "duplicate" => Applied::Duplicate {
                version: num(&next(), "version")?,
            },
            "stale" => {
                let (v, s, x, o) = (next(), next(), next(), next());
                Applied::Stale(stored_game(&v, &s, Some(x), Some(o))?)
            }
            "not_seated" => Applied::NotSeated,
            "seat_taken" => Applied::SeatTaken,
            "unknown" => Applied::UnknownGame,
            "limited" => Applied::RateLimited {
                retry_after_ms: Decision::retry_after_ms(num(&next(), "retry")?),
            },
            other => return Err(corrupt("transition", other)),
        })
    }

    async fn events_since(&self, game: &GameId, since: u64) -> StoreResult<Replay> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.events_since.prepare_invoke();
        inv.key(self.keys.game(game))
            .key(self.keys.game_log(game))
            .arg(since)
            .arg(self.limits.log_len);
        let reply: Value = self
            .call("events_since", inv.invoke_async(&mut conn))
            .await?;
        if reply == Value::Nil {
            return Ok(Replay::UnknownGame);
        }
        let parts = texts(reply).ok_or_else(|| corrupt("events_since", "not strings"))?;
        let Some((v, rest)) = parts.split_first() else {
            return Err(corrupt("events_since", "empty"));
        };
        let version: u64 = num(v, "version")?;
        Ok(replay_from(since, version, rest))
    }

    async fn applied_move(
        &self,
        game: &GameId,
        player: &PlayerId,
        mid: &str,
    ) -> StoreResult<Option<u64>> {
        let mut conn = self.conn().await?;
        let score: Option<String> = self
            .call(
                "applied_move",
                ::redis::cmd("ZSCORE")
                    .arg(self.keys.game_mids(game))
                    .arg(format!("{player}|{mid}"))
                    .query_async(&mut conn),
            )
            .await?;
        score.map(|s| num(&s, "move version")).transpose()
    }

    async fn append_chat(
        &self,
        game: Option<&GameId>,
        from: &str,
        role: Option<Role>,
        text_: &str,
        ttl: Duration,
    ) -> StoreResult<Option<ChatLine>> {
        let k = &self.keys;
        let (stream, exists_key, channel) = match game {
            Some(g) => (k.game_chat(g), k.game(g), k.game_channel(g)),
            None => (k.lobby_chat(), k.lobby_chat(), k.lobby_channel()),
        };
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.chat.prepare_invoke();
        inv.key(stream)
            .key(exists_key)
            .arg(if game.is_some() { "1" } else { "0" })
            .arg(from)
            .arg(role.map(role_name).unwrap_or(""))
            .arg(text_)
            .arg(ttl_ms(ttl))
            .arg(self.limits.chat_len)
            .arg(channel)
            .arg(game.map(GameId::as_str).unwrap_or(""))
            .arg(self.publish_cmd());
        let reply: Value = self.call("chat", inv.invoke_async(&mut conn)).await?;
        if reply == Value::Nil {
            return Ok(None);
        }
        let parts = texts(reply).ok_or_else(|| corrupt("chat", "not strings"))?;
        let [id, _msg] = parts.as_slice() else {
            return Err(corrupt("chat", parts));
        };
        Ok(Some(ChatLine {
            id: id.clone(),
            from: from.to_string(),
            role,
            text: text_.to_string(),
            ts: num(id.split('-').next().unwrap_or_default(), "chat id")?,
        }))
    }

    async fn recent_chat(&self, game: Option<&GameId>, n: usize) -> StoreResult<Vec<ChatLine>> {
        let key = match game {
            Some(g) => self.keys.game_chat(g),
            None => self.keys.lobby_chat(),
        };
        let mut conn = self.conn().await?;
        let reply: Value = self
            .call(
                "recent_chat",
                ::redis::cmd("XREVRANGE")
                    .arg(key)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(n)
                    .query_async(&mut conn),
            )
            .await?;
        let mut lines = items(reply)
            .ok_or_else(|| corrupt("recent_chat", "not an array"))?
            .into_iter()
            .map(chat_line)
            .collect::<StoreResult<Vec<_>>>()?;
        lines.reverse();
        Ok(lines)
    }

    async fn rate(&self, key: &str, rule: Rule) -> StoreResult<Decision> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.rate.prepare_invoke();
        inv.key(key).arg(rule.interval_us).arg(rule.tolerance_us());
        let v: Vec<u64> = self.call("rate", inv.invoke_async(&mut conn)).await?;
        match v.as_slice() {
            [1, _] => Ok(Decision::Allow { new_tat: 0 }),
            [0, retry] => Ok(Decision::Deny {
                retry_after_us: *retry,
            }),
            other => Err(corrupt("rate", other)),
        }
    }

    async fn presence_change(
        &self,
        game: &GameId,
        entry: &PresenceEntry<'_>,
        delta: i64,
        ttl: Duration,
    ) -> StoreResult<PresenceChange> {
        let games = self.keys.instance_games(entry.lease);
        if delta > 0 {
            // Indexed before the entry exists, so a sweep after this instance dies finds it.
            let mut conn = self.conn().await?;
            let _: i64 = self
                .call(
                    "presence_index",
                    ::redis::cmd("SADD")
                        .arg(&games)
                        .arg(game.as_str())
                        .query_async(&mut conn),
                )
                .await?;
        }
        let field = format!(
            "c|{}|{}|{}",
            entry.lease,
            entry.player,
            role_name(entry.role)
        );
        let delta_s = delta.to_string();
        let (presence, left, mine) = self
            .presence_script(game, &["change", &field, &delta_s], ttl)
            .await?;
        if mine == 0 {
            let mut conn = self.conn().await?;
            let _: i64 = self
                .call(
                    "presence_index",
                    ::redis::cmd("SREM")
                        .arg(&games)
                        .arg(game.as_str())
                        .query_async(&mut conn),
                )
                .await?;
        }
        Ok(PresenceChange {
            presence,
            left,
            lease_entries: mine,
        })
    }

    async fn presence(&self, game: &GameId) -> StoreResult<Presence> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.presence.prepare_invoke();
        inv.key(self.keys.game_presence(game))
            .key(self.keys.game(game))
            .arg("read");
        let v: Vec<i64> = self.call("presence", inv.invoke_async(&mut conn)).await?;
        match v.as_slice() {
            [x, o, n] => Ok(presence_of(*x, *o, *n)),
            other => Err(corrupt("presence", other)),
        }
    }

    async fn inspect_seats(&self, game: &GameId) -> StoreResult<Option<SeatsView>> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.presence.prepare_invoke();
        inv.key(self.keys.game_presence(game))
            .key(self.keys.game(game))
            .arg("inspect");
        let reply: Value = self.call("inspect", inv.invoke_async(&mut conn)).await?;
        if reply == Value::Nil {
            return Ok(None);
        }
        let p = texts(reply).ok_or_else(|| corrupt("inspect", "not strings"))?;
        let [now, v, s, px, po, sx, so, ax, ao] = p.as_slice() else {
            return Err(corrupt("inspect", p));
        };
        let away = |a: &str| -> StoreResult<Option<u64>> {
            if a.is_empty() {
                Ok(None)
            } else {
                num(a, "away").map(Some)
            }
        };
        Ok(Some(SeatsView {
            now_ms: num(now, "now")?,
            version: num(v, "version")?,
            state: parse_state(s)?,
            present: Seats {
                x: px == "1",
                o: po == "1",
            },
            seen: Seats {
                x: sx == "1",
                o: so == "1",
            },
            away_since: Seats {
                x: away(ax)?,
                o: away(ao)?,
            },
        }))
    }

    async fn renew_lease(&self, lease: &str, ttl: Duration) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.lease.prepare_invoke();
        inv.key(self.keys.instances())
            .arg("renew")
            .arg(lease)
            .arg(ttl_ms(ttl));
        let known: i64 = self.call("lease", inv.invoke_async(&mut conn)).await?;
        Ok(known == 1)
    }

    async fn expired_leases(&self) -> StoreResult<Vec<String>> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.lease.prepare_invoke();
        inv.key(self.keys.instances()).arg("expired");
        self.call("lease", inv.invoke_async(&mut conn)).await
    }

    async fn sweep_lease(
        &self,
        lease: &str,
        ttl: Duration,
    ) -> StoreResult<Vec<(GameId, Seats<bool>)>> {
        let index = self.keys.instance_games(lease);
        let mut conn = self.conn().await?;
        let games: Vec<String> = self
            .call(
                "sweep",
                ::redis::cmd("SMEMBERS").arg(&index).query_async(&mut conn),
            )
            .await?;
        let mut emptied = Vec::new();
        for g in games.into_iter().filter_map(|g| GameId::try_from(g).ok()) {
            let (_, left, _) = self
                .presence_script(&g, &["sweep", lease, "0"], ttl)
                .await?;
            if left.x || left.o {
                emptied.push((g, left));
            }
        }
        // Two slots (the index and the lease set): two independent commands.
        let _: i64 = self
            .call(
                "sweep",
                ::redis::cmd("DEL").arg(&index).query_async(&mut conn),
            )
            .await?;
        let _: i64 = self
            .call(
                "sweep",
                ::redis::cmd("ZREM")
                    .arg(self.keys.instances())
                    .arg(lease)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(emptied)
    }

    async fn lobby_update(&self, entry: &LobbyGame) -> StoreResult<()> {
        let k = &self.keys;
        let status = serde_json::to_value(entry.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let json = serde_json::to_string(entry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let change = ServerMsg::LobbyChanged {
            entry: entry.clone(),
        }
        .to_json();
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.lobby.prepare_invoke();
        inv.key(k.lobby_open())
            .key(k.lobby_live())
            .key(k.lobby_info())
            .arg("update")
            .arg(entry.game.as_str())
            .arg(status)
            .arg(json)
            .arg(k.lobby_channel())
            .arg(change)
            .arg(self.publish_cmd());
        let _: i64 = self.call("lobby", inv.invoke_async(&mut conn)).await?;
        Ok(())
    }

    async fn lobby_list(
        &self,
        max: usize,
        ttl: Duration,
    ) -> StoreResult<(Vec<LobbyGame>, Vec<LobbyGame>)> {
        let k = &self.keys;
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.lobby.prepare_invoke();
        inv.key(k.lobby_open())
            .key(k.lobby_live())
            .key(k.lobby_info())
            .arg("list")
            .arg(max.max(1))
            .arg(ttl_ms(ttl));
        let reply: Value = self.call("lobby", inv.invoke_async(&mut conn)).await?;
        let mut lists = items(reply).ok_or_else(|| corrupt("lobby", "not an array"))?;
        let parse = |v: Option<Value>| -> Vec<LobbyGame> {
            v.and_then(texts)
                .unwrap_or_default()
                .iter()
                .filter_map(|j| serde_json::from_str(j).ok())
                .collect()
        };
        let live = parse(lists.pop());
        let open = parse(lists.pop());
        Ok((open, live))
    }

    async fn match_enqueue(&self, ticket: &Ticket, fresh: Duration) -> StoreResult<Option<Ticket>> {
        let json = serde_json::to_string(ticket).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.matching.prepare_invoke();
        inv.key(self.keys.match_queue())
            .key(self.keys.match_tickets())
            .arg("enqueue")
            .arg(ticket.player.as_str())
            .arg(json)
            .arg(ttl_ms(fresh));
        let reply: Vec<String> = self.call("match", inv.invoke_async(&mut conn)).await?;
        match reply.as_slice() {
            [tag] if tag == "queued" => Ok(None),
            [tag, other] if tag == "paired" => serde_json::from_str(other)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("ticket: {e}"))),
            other => Err(corrupt("match", other)),
        }
    }

    async fn match_cancel(&self, player: &PlayerId) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.matching.prepare_invoke();
        inv.key(self.keys.match_queue())
            .key(self.keys.match_tickets())
            .arg("cancel")
            .arg(player.as_str());
        let removed: i64 = self.call("match", inv.invoke_async(&mut conn)).await?;
        Ok(removed == 1)
    }

    async fn match_refresh(&self, players: &[PlayerId]) -> StoreResult<Vec<PlayerId>> {
        if players.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.matching.prepare_invoke();
        inv.key(self.keys.match_queue())
            .key(self.keys.match_tickets())
            .arg("refresh");
        for p in players {
            inv.arg(p.as_str());
        }
        let missing: Vec<String> = self.call("match", inv.invoke_async(&mut conn)).await?;
        Ok(missing
            .into_iter()
            .filter_map(|p| PlayerId::try_from(p).ok())
            .collect())
    }

    async fn set_deadline(&self, game: &GameId, at_ms: u64) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.deadline.prepare_invoke();
        inv.key(self.keys.deadlines())
            .arg("set")
            .arg(game.as_str())
            .arg(at_ms);
        let _: i64 = self.call("deadline", inv.invoke_async(&mut conn)).await?;
        Ok(())
    }

    async fn due_deadlines(&self, max: usize) -> StoreResult<(u64, Vec<(GameId, u64)>)> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.deadline.prepare_invoke();
        inv.key(self.keys.deadlines()).arg("due").arg(max.max(1));
        let reply: Vec<String> = self.call("deadline", inv.invoke_async(&mut conn)).await?;
        let Some((now, rest)) = reply.split_first() else {
            return Err(corrupt("deadline", "empty"));
        };
        let mut due = Vec::new();
        for pair in rest.chunks(2) {
            if let [g, at] = pair
                && let Ok(g) = GameId::try_from(g.clone())
            {
                // Scores come back as floats ("1.7e12" never, but "1700000000000" or
                // "1700000000000.5" could): read them as such.
                let at: f64 = num(at, "deadline")?;
                due.push((g, at as u64));
            }
        }
        Ok((num(now, "now")?, due))
    }

    async fn settle_deadline(
        &self,
        game: &GameId,
        due: u64,
        next: Option<u64>,
    ) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.deadline.prepare_invoke();
        inv.key(self.keys.deadlines())
            .arg("settle")
            .arg(game.as_str())
            .arg(due)
            .arg(next.map(|n| n.to_string()).unwrap_or_default());
        let changed: i64 = self.call("deadline", inv.invoke_async(&mut conn)).await?;
        Ok(changed == 1)
    }
}

/// Events after `since` from a log read, or `TooOld` if the log does not reach back to
/// `since + 1` without a hole. Shared by both stores.
pub(crate) fn replay_from(since: u64, version: u64, entries: &[String]) -> Replay {
    if since >= version {
        return Replay::UpToDate;
    }
    let mut events = Vec::with_capacity(entries.len() / 2);
    let mut expected = since + 1;
    for pair in entries.chunks(2) {
        let [id, json] = pair else {
            return Replay::TooOld;
        };
        if id != &format!("0-{expected}") {
            return Replay::TooOld;
        }
        events.push(json.clone());
        expected += 1;
    }
    if expected != version + 1 {
        return Replay::TooOld;
    }
    Replay::Events(events)
}

/// Pub/sub for one instance: a dedicated connection whose message stream ends when the
/// connection is lost (the hub then reconnects and resubscribes).
pub struct RedisBus {
    client: ::redis::Client,
    op_timeout: Duration,
}

struct RedisBusSink {
    sink: ::redis::aio::PubSubSink,
    op_timeout: Duration,
}

#[async_trait]
impl Bus for RedisBus {
    async fn connect(&self) -> StoreResult<BusConnection> {
        let pubsub = tokio::time::timeout(self.op_timeout, self.client.get_async_pubsub())
            .await
            .map_err(|_| StoreError::Unavailable("pub/sub connect timed out".into()))?
            .map_err(classify)?;
        let (sink, stream) = pubsub.split();
        let messages = stream
            .filter_map(|msg| async move {
                let payload = Utf8Bytes::try_from(msg.get_payload_bytes().to_vec()).ok()?;
                Some(BusMessage {
                    channel: msg.get_channel_name().to_string(),
                    payload,
                })
            })
            .boxed();
        Ok(BusConnection {
            sink: Box::new(RedisBusSink {
                sink,
                op_timeout: self.op_timeout,
            }),
            messages,
        })
    }
}

#[async_trait]
impl BusSink for RedisBusSink {
    async fn subscribe(&mut self, channels: &[String]) -> StoreResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        tokio::time::timeout(self.op_timeout, self.sink.subscribe(channels))
            .await
            .map_err(|_| StoreError::Unavailable("subscribe timed out".into()))?
            .map_err(classify)
    }

    async fn unsubscribe(&mut self, channels: &[String]) -> StoreResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        tokio::time::timeout(self.op_timeout, self.sink.unsubscribe(channels))
            .await
            .map_err(|_| StoreError::Unavailable("unsubscribe timed out".into()))?
            .map_err(classify)
    }
}

fn cluster_client(
    nodes: &[String],
    op_timeout: Duration,
    push: Option<tokio::sync::mpsc::UnboundedSender<::redis::PushInfo>>,
) -> StoreResult<ClusterClient> {
    let mut builder = ::redis::cluster::ClusterClientBuilder::new(nodes.to_vec())
        .tcp_settings(tcp_settings())
        .connection_timeout(op_timeout)
        .response_timeout(op_timeout)
        .retries(2);
    if let Some(tx) = push {
        builder = builder
            .use_protocol(::redis::ProtocolVersion::RESP3)
            .push_sender(tx);
    }
    builder
        .build()
        .map_err(|e| StoreError::Config(format!("invalid Redis Cluster URLs: {e}")))
}

/// Sharded pub/sub on a Redis Cluster (RESP3 pushes). The cluster client resubscribes by
/// itself after reconnects and slot moves, but whatever was published while a node was
/// unreachable is lost: on any disconnection the stream ends, so that the hub reconnects and
/// has its clients catch up, exactly as with a single Redis.
pub struct ClusterBus {
    nodes: Vec<String>,
    op_timeout: Duration,
}

struct ClusterBusSink {
    conn: ClusterConnection,
    op_timeout: Duration,
    /// Channels this sink is unsubscribing from: their `sunsubscribe` confirmations are
    /// expected. Any other `sunsubscribe` comes from the server (the slot moved to another
    /// master) and means the subscription is gone.
    leaving: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

#[async_trait]
impl Bus for ClusterBus {
    async fn connect(&self) -> StoreResult<BusConnection> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let client = cluster_client(&self.nodes, self.op_timeout, Some(tx))?;
        let conn = tokio::time::timeout(self.op_timeout, client.get_async_connection())
            .await
            .map_err(|_| StoreError::Unavailable("cluster connect timed out".into()))?
            .map_err(classify)?;
        let leaving: Arc<std::sync::Mutex<std::collections::HashSet<String>>> = Arc::default();
        let expected = leaving.clone();
        let messages = futures_util::stream::unfold(rx, move |mut rx| {
            let expected = expected.clone();
            async move {
            loop {
                let push = rx.recv().await?;
                match push.kind {
                    ::redis::PushKind::Disconnection => return None,
                    ::redis::PushKind::SUnsubscribe => {
                        let channel = push.data.first().and_then(text).unwrap_or_default();
                        let ours = expected
                            .lock()
                            .map(|mut set| set.remove(&channel))
                            .unwrap_or(false);
                        if !ours {
                            tracing::info!(%channel, "shard channel dropped by the server (slot moved); resubscribing");
                            return None;
                        }
                    }
                    ::redis::PushKind::SMessage | ::redis::PushKind::Message => {
                        let mut data = push.data.into_iter();
                        let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
                            continue;
                        };
                        let (Some(channel), Value::BulkString(bytes)) = (text(&channel), payload)
                        else {
                            continue;
                        };
                        if let Ok(payload) = Utf8Bytes::try_from(bytes) {
                            return Some((BusMessage { channel, payload }, rx));
                        }
                    }
                    _ => continue,
                }
            }
            }
        })
        .boxed();
        Ok(BusConnection {
            sink: Box::new(ClusterBusSink {
                conn,
                op_timeout: self.op_timeout,
                leaving,
            }),
            messages,
        })
    }
}

#[async_trait]
impl BusSink for ClusterBusSink {
    async fn subscribe(&mut self, channels: &[String]) -> StoreResult<()> {
        // One command per channel: channels of different slots live on different nodes.
        for c in channels {
            tokio::time::timeout(self.op_timeout, self.conn.ssubscribe(c))
                .await
                .map_err(|_| StoreError::Unavailable("ssubscribe timed out".into()))?
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn unsubscribe(&mut self, channels: &[String]) -> StoreResult<()> {
        for c in channels {
            if let Ok(mut set) = self.leaving.lock() {
                set.insert(c.clone());
            }
            tokio::time::timeout(self.op_timeout, self.conn.sunsubscribe(c))
                .await
                .map_err(|_| StoreError::Unavailable("sunsubscribe timed out".into()))?
                .map_err(classify)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(from: u64, to: u64) -> Vec<String> {
        (from..=to)
            .flat_map(|v| [format!("0-{v}"), format!("e{v}")])
            .collect()
    }

    #[test]
    fn a_contiguous_log_replays_every_missing_event() {
        assert_eq!(
            replay_from(2, 4, &entries(3, 4)),
            Replay::Events(vec!["e3".into(), "e4".into()])
        );
        assert_eq!(replay_from(4, 4, &[]), Replay::UpToDate);
        assert_eq!(replay_from(9, 4, &[]), Replay::UpToDate);
    }

    #[test]
    fn a_log_with_a_hole_or_trimmed_start_means_snapshot() {
        assert_eq!(replay_from(1, 4, &entries(3, 4)), Replay::TooOld);
        assert_eq!(replay_from(2, 5, &entries(3, 4)), Replay::TooOld);
        let mut holed = entries(3, 5);
        holed.drain(2..4);
        assert_eq!(replay_from(2, 5, &holed), Replay::TooOld);
    }
}
