//! Configuration: every setting is a flag and an environment variable (`--help` lists them
//! with their defaults; the README's tables show the same defaults, checked by a test).
//!
//! Settings are parsed once, into the types the code uses: durations are [`Duration`]s, and
//! numbers out of their range are refused at start-up with a message naming the setting,
//! instead of being clamped wherever they are read.

use crate::ratelimit::Rule;
use crate::trusted_proxies::TrustedProxies;
use clap::{Args, CommandFactory, FromArgMatches, Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Address to listen on (HTTP page, /ws, /healthz, /readyz, and /metrics unless
    /// METRICS_ADDR is set).
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,

    /// Threads running the instance: 1 (the default) runs everything on one thread, and a
    /// machine runs one instance per core; 0 is one thread per core in one instance.
    /// docs/benchmarks.md ("Human pace, second pass") has the measurements behind it.
    #[arg(long, env = "WORKER_THREADS", default_value_t = 1)]
    pub worker_threads: usize,

    /// A separate address for /metrics (a private interface, say); /metrics then leaves the
    /// game port. Unset: /metrics is on the game port.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Redis URL (redis://host:port/db). Without it the server keeps everything in memory:
    /// a single instance only.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Seed nodes of a Redis Cluster, comma separated (redis://host:port,...), instead of
    /// REDIS_URL. Game channels then use sharded pub/sub (SPUBLISH/SSUBSCRIBE).
    #[arg(long, env = "REDIS_CLUSTER_URLS", value_delimiter = ',')]
    pub redis_cluster_urls: Vec<String>,

    /// Sentinels watching a replicated Redis, comma separated (host:port,...), instead of
    /// REDIS_URL: the instance asks them for the primary and follows a failover by itself.
    #[arg(long, env = "REDIS_SENTINELS", value_delimiter = ',')]
    pub redis_sentinels: Vec<String>,

    /// The name the Sentinels know the primary by (`sentinel monitor <name> ...`).
    #[arg(long, env = "REDIS_SENTINEL_MASTER")]
    pub redis_sentinel_master: Option<String>,

    /// With REDIS_SENTINELS: the ACL user for the primary the Sentinels name (whose address
    /// comes from them, not from a URL that could carry it). Other layouts put it in their
    /// URLs.
    #[arg(long, env = "REDIS_USERNAME")]
    pub redis_username: Option<String>,

    /// With REDIS_SENTINELS: the password of the primary the Sentinels name (`requirepass`,
    /// or the ACL user's). The Sentinels' own password goes in their URLs. The primary is
    /// reached over TLS when the Sentinels are (`rediss://`).
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,

    /// Replicas that must hold a game change before it is acknowledged (Redis WAIT after the
    /// move, in the same round trip). 0: acknowledged once the primary has it, so a failover
    /// can lose the last moves. To go on playing after a failover, run one replica more.
    #[arg(long, env = "REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,

    /// Longest WAIT for those replicas; a change they did not confirm in time is answered
    /// `unavailable` (a retry with the same move id settles it). Below REDIS_TIMEOUT_MS.
    #[arg(long = "redis-wait-timeout-ms", env = "REDIS_WAIT_TIMEOUT_MS", default_value = "500", value_parser = millis_at_least(1))]
    pub redis_wait_timeout: Duration,

    /// This instance's name in logs, metrics and welcome messages [default: random].
    #[arg(long, env = "INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Directory of the static web page.
    #[arg(long, env = "WEB_DIR", default_value = "web")]
    pub web_dir: PathBuf,

    /// Prefix of every Redis key and channel.
    #[arg(long, env = "KEY_PREFIX", default_value = "ttt:")]
    pub key_prefix: String,

    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Longest wait for one Redis call before answering `unavailable`. A call that times out
    /// may still be applied later; its connection is replaced by a fresh one.
    #[arg(long = "redis-timeout-ms", env = "REDIS_TIMEOUT_MS", default_value = "2000", value_parser = millis_at_least(1))]
    pub redis_timeout: Duration,
    /// After this long without a working round trip to Redis (commands and pub/sub), the
    /// instance closes its connections with 1012 so that they resume on another instance, and
    /// refuses new ones (503, not ready) until Redis answers again. Keep it above
    /// REDIS_TIMEOUT_MS (a hung connection is replaced after one timeout) and well under
    /// FORFEIT_GRACE_MS (players must be back before their clocks run out).
    #[arg(long = "redis-lost-ms", env = "REDIS_LOST_MS", default_value = "3000", value_parser = millis_at_least(100))]
    pub redis_lost: Duration,

    // Rate limits.
    /// Moves per second per session and game (enforced in Redis, so reconnecting or
    /// changing instance does not reset it).
    #[arg(long, env = "MOVE_RATE", default_value_t = 10.0, value_parser = positive_rate)]
    pub move_rate: f64,
    #[arg(long, env = "MOVE_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub move_burst: u32,
    /// Chat lines per second per session (enforced in Redis).
    #[arg(long, env = "CHAT_RATE", default_value_t = 1.0, value_parser = positive_rate)]
    pub chat_rate: f64,
    #[arg(long, env = "CHAT_BURST", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub chat_burst: u32,
    /// Frames per second per connection, of any kind, counted before parsing (in process).
    #[arg(long, env = "MSG_RATE", default_value_t = 30.0, value_parser = positive_rate)]
    pub msg_rate: f64,
    #[arg(long, env = "MSG_BURST", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub msg_burst: u32,
    /// New WebSocket connections per second per client IP (enforced in Redis).
    #[arg(long, env = "IP_CONN_RATE", default_value_t = 5.0, value_parser = positive_rate)]
    pub ip_conn_rate: f64,
    #[arg(long, env = "IP_CONN_BURST", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub ip_conn_burst: u32,
    /// New sessions per second per client IP (enforced in Redis).
    #[arg(long, env = "IP_SESSION_RATE", default_value_t = 0.5, value_parser = positive_rate)]
    pub ip_session_rate: f64,
    #[arg(long, env = "IP_SESSION_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub ip_session_burst: u32,
    /// Games a session may start watching per second (enforced in Redis): joining as a
    /// spectator announces presence to the game's players.
    #[arg(long, env = "SPECTATE_RATE", default_value_t = 1.0, value_parser = positive_rate)]
    pub spectate_rate: f64,
    #[arg(long, env = "SPECTATE_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub spectate_burst: u32,
    /// Games started to be watched per second per client IP (enforced in Redis).
    #[arg(long, env = "IP_SPECTATE_RATE", default_value_t = 2.0, value_parser = positive_rate)]
    pub ip_spectate_rate: f64,
    #[arg(long, env = "IP_SPECTATE_BURST", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub ip_spectate_burst: u32,
    /// Games a session may create per second (enforced in Redis; quick matches do not count).
    #[arg(long, env = "CREATE_RATE", default_value_t = 0.1, value_parser = positive_rate)]
    pub create_rate: f64,
    #[arg(long, env = "CREATE_BURST", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub create_burst: u32,
    /// Games created per second per client IP (enforced in Redis).
    #[arg(long, env = "IP_CREATE_RATE", default_value_t = 0.5, value_parser = positive_rate)]
    pub ip_create_rate: f64,
    /// At most LOBBY_PER_ADDRESS, so that a burst cannot list more games than the lobby
    /// shows of one address.
    #[arg(long, env = "IP_CREATE_BURST", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub ip_create_burst: u32,
    /// Games a session may have waiting for an opponent at once; `create` beyond it is
    /// refused (`too_many_waiting`) until one is joined or expires.
    #[arg(long, env = "MAX_WAITING_GAMES", default_value_t = 3, value_parser = at_least::<usize>(1))]
    pub max_waiting_games: usize,
    /// Open games of one player shown in the lobby, the newest (0: no limit).
    #[arg(long, env = "LOBBY_PER_PLAYER", default_value_t = 2)]
    pub lobby_per_player: usize,
    /// Open games opened from one client address shown in the lobby, the newest (0: no
    /// limit): a few addresses cannot fill the lobby's 50 places.
    #[arg(long, env = "LOBBY_PER_ADDRESS", default_value_t = 8)]
    pub lobby_per_address: usize,
    /// Games one connection may be in (playing or watching) at once; more is refused
    /// (`too_many_games`).
    #[arg(long, env = "MAX_GAMES_PER_CONN", default_value_t = 20, value_parser = at_least::<usize>(1))]
    pub max_games_per_conn: usize,
    /// Entries of a `hello`'s `resume` list that are restored; the rest are refused with one
    /// `too_many_games` error.
    #[arg(long, env = "MAX_RESUME", default_value_t = 20)]
    pub max_resume: usize,
    /// Rate-limited requests a connection may accumulate (refilling over a minute) before it
    /// is closed with 1008 (policy violation).
    #[arg(long, env = "ABUSE_LIMIT", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub abuse_limit: u32,

    // Input hardening.
    /// Largest WebSocket message (and frame) accepted; bigger closes with 1009.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = 4096, value_parser = at_least::<usize>(256))]
    pub max_message_bytes: usize,
    /// Origins allowed to open a WebSocket, comma separated. Empty: the page's own origin
    /// and http(s)://localhost / 127.0.0.1 on any port. `*` allows any.
    #[arg(
        long,
        env = "ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub allowed_origins: Vec<String>,
    /// Peers whose X-Forwarded-For is believed (the load balancer), comma separated: IPs, or
    /// networks (10.0.0.0/16) for a load balancer whose addresses change. An entry that is
    /// neither stops the start.
    #[arg(
        long,
        env = "TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub trusted_proxies: Vec<String>,

    // Connection limits (per instance).
    /// Longest time a client may take to send a request's headers (and the longest an idle
    /// HTTP connection is kept open); slower connections are closed.
    #[arg(long = "header-read-timeout-ms", env = "HEADER_READ_TIMEOUT_MS", default_value = "10000", value_parser = millis_at_least(1))]
    pub header_read_timeout: Duration,
    /// Open connections of any kind; more are answered 503 at once. 0: the open-file limit
    /// minus a reserve for Redis connections and files. Never more than that.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,
    /// Connections per client address that have not become WebSockets (page loads, slow or
    /// silent handshakes); more are refused. Trusted proxies are exempt.
    #[arg(long, env = "IP_PENDING_MAX", default_value_t = 64, value_parser = at_least::<usize>(1))]
    pub ip_pending_max: usize,
    /// Open WebSocket connections per client address; more are refused with 429.
    #[arg(long, env = "IP_WS_MAX", default_value_t = 256, value_parser = at_least::<usize>(1))]
    pub ip_ws_max: usize,

    // Sizes and lifetimes.
    /// Messages queued to one client before it counts as too slow and is closed (4001).
    #[arg(long, env = "OUTBOUND_QUEUE", default_value_t = 256, value_parser = at_least::<usize>(8))]
    pub outbound_queue: usize,
    /// Shortest time between two presence messages of one game to a client: the first change
    /// goes at once, later ones within this interval are merged into the latest.
    #[arg(long = "presence-interval-ms", env = "PRESENCE_INTERVAL_MS", default_value = "250", value_parser = millis_at_least(10))]
    pub presence_interval: Duration,
    /// Chat line length, in characters.
    #[arg(long, env = "CHAT_MAX_CHARS", default_value_t = 280)]
    pub chat_max_chars: usize,
    /// Chat lines kept per game (and in the lobby).
    #[arg(long, env = "CHAT_KEPT", default_value_t = 100, value_parser = at_least::<usize>(1))]
    pub chat_kept: usize,
    /// Chat lines sent to someone who joins.
    #[arg(long, env = "CHAT_HISTORY", default_value_t = 50)]
    pub chat_history: usize,
    /// Events kept per game log, for replay on reconnect.
    #[arg(long, env = "EVENT_LOG_LEN", default_value_t = 64, value_parser = at_least::<usize>(1))]
    pub event_log_len: usize,
    /// A session expires after this long unused.
    #[arg(long = "session-ttl-secs", env = "SESSION_TTL_SECS", default_value = "86400", value_parser = secs_at_least(1))]
    pub session_ttl: Duration,
    /// A game (its state, log, chat, presence) expires after this long without activity.
    #[arg(long = "game-ttl-secs", env = "GAME_TTL_SECS", default_value = "3600", value_parser = secs_at_least(1))]
    pub game_ttl: Duration,
    /// A finished game expires after this long unless a rematch starts.
    #[arg(long = "finished-game-ttl-secs", env = "FINISHED_GAME_TTL_SECS", default_value = "600", value_parser = secs_at_least(1))]
    pub finished_game_ttl: Duration,

    // Clocks.
    /// A seated player away longer than this forfeits the round.
    #[arg(long = "forfeit-grace-ms", env = "FORFEIT_GRACE_MS", default_value = "30000", value_parser = millis)]
    pub forfeit_grace: Duration,
    /// A matched game in which a player has not shown up after this long is aborted.
    #[arg(long = "match-confirm-ms", env = "MATCH_CONFIRM_MS", default_value = "10000", value_parser = millis_at_least(1))]
    pub match_confirm: Duration,
    /// The computer's thinking time before each of its moves (and before it agrees to a
    /// rematch): a reply in no time reads as a machine slamming the board.
    #[arg(long = "computer-delay-ms", env = "COMPUTER_DELAY_MS", default_value = "700", value_parser = millis)]
    pub computer_delay: Duration,
    /// After this long waiting in quick match, the player is offered a game against the
    /// computer (told in the `quick_match` acknowledgement; the player chooses).
    #[arg(long = "quick-match-computer-ms", env = "QUICK_MATCH_COMPUTER_MS", default_value = "15000", value_parser = millis)]
    pub quick_match_computer: Duration,
    /// Instance lease: a dead instance's presence entries are cleared within this plus
    /// SWEEP_INTERVAL_MS.
    #[arg(long = "lease-ttl-ms", env = "LEASE_TTL_MS", default_value = "6000", value_parser = millis_at_least(100))]
    pub lease_ttl: Duration,
    /// How often instances look for dead leases and due deadlines.
    #[arg(long = "sweep-interval-ms", env = "SWEEP_INTERVAL_MS", default_value = "1000", value_parser = millis_at_least(10))]
    pub sweep_interval: Duration,
    /// How long a shutting-down instance waits for its sessions to close.
    #[arg(long = "shutdown-grace-ms", env = "SHUTDOWN_GRACE_MS", default_value = "10000", value_parser = millis)]
    pub shutdown_grace: Duration,
    /// A connection that has not said hello by then is closed.
    #[arg(long = "hello-timeout-ms", env = "HELLO_TIMEOUT_MS", default_value = "10000", value_parser = millis_at_least(1))]
    pub hello_timeout: Duration,
    /// A connection silent this long (no frame, no pong) is closed; one quiet for a third of
    /// it is pinged.
    #[arg(long = "idle-timeout-ms", env = "IDLE_TIMEOUT_MS", default_value = "60000", value_parser = millis_at_least(300))]
    pub idle_timeout: Duration,
}

/// Where the store lives: decided once, from REDIS_URL, REDIS_SENTINELS (with
/// REDIS_SENTINEL_MASTER) and REDIS_CLUSTER_URLS, of which at most one may be set (an empty
/// value counts as unset, so that an override can switch layouts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisLayout {
    /// No Redis: the in-memory store of a lone instance.
    Memory,
    Single {
        url: String,
    },
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
    Cluster {
        nodes: Vec<String>,
    },
}

/// Settings that cannot work together, found at start-up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("set one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_URLS, not several")]
    SeveralRedisLayouts,
    /// Set elsewhere, they would be silently unused: the URLs carry the credentials there.
    #[error(
        "REDIS_USERNAME and REDIS_PASSWORD are for REDIS_SENTINELS only: put them in the URL \
         (redis://user:password@host:port/)"
    )]
    CredentialsOutsideSentinel,
    #[error(
        "REDIS_SENTINELS needs REDIS_SENTINEL_MASTER, the name the Sentinels know the primary by"
    )]
    SentinelMasterMissing,
    #[error("REDIS_WAIT_TIMEOUT_MS ({wait} ms) must be below REDIS_TIMEOUT_MS ({timeout} ms)")]
    WaitOutlastsTimeout { wait: u128, timeout: u128 },
    /// Ignoring the entry would make every client behind that proxy one address to the
    /// per-address limits, which then refuse nearly everyone: refused at start instead.
    #[error("TRUSTED_PROXIES: {entry:?} is neither an IP address nor a network (10.0.0.0/16)")]
    TrustedProxyNotAnIp { entry: String },
}

/// Settings that work together, with what is unwise about them.
#[derive(Debug)]
pub struct Checked {
    pub layout: RedisLayout,
    /// Combinations that work but badly; logged at start-up.
    pub warnings: Vec<&'static str>,
}

impl Checked {
    /// What `tictactoe check` prints: the store the settings name, without its addresses
    /// (a URL may carry a password), then one line per warning.
    pub fn report(&self) -> String {
        let store = match &self.layout {
            RedisLayout::Memory => "no Redis: everything in memory, a single instance only".into(),
            RedisLayout::Single { .. } => "one Redis (REDIS_URL)".into(),
            RedisLayout::Sentinel { sentinels, master } => format!(
                "a replicated Redis found through {} Sentinel(s), primary named {master:?}",
                sentinels.len()
            ),
            RedisLayout::Cluster { nodes } => {
                format!("a Redis Cluster, {} seed node(s)", nodes.len())
            }
        };
        let mut out = format!("settings ok: {store}\n");
        for warning in &self.warnings {
            out.push_str("warning: ");
            out.push_str(warning);
            out.push('\n');
        }
        out
    }
}

/// Parses a [`Config`] alone, for [`Config::default`].
#[derive(Parser)]
struct Defaults {
    #[command(flatten)]
    config: Config,
}

impl Default for Config {
    /// The documented defaults, whatever the environment says: tests and embedders start
    /// from the same settings on every machine.
    fn default() -> Self {
        let cmd = Defaults::command().mut_args(|a| a.env(None));
        let matches = cmd
            .try_get_matches_from(["tictactoe"])
            .expect("the defaults parse");
        Defaults::from_arg_matches(&matches)
            .expect("the defaults parse")
            .config
    }
}

impl Config {
    /// The checks across settings that one setting's parser cannot make.
    pub fn check(&self) -> Result<Checked, ConfigError> {
        let layout = self.redis_layout()?;
        let credentials = [&self.redis_username, &self.redis_password]
            .iter()
            .any(|v| v.as_deref().is_some_and(|v| !v.is_empty()));
        if credentials && !matches!(layout, RedisLayout::Sentinel { .. }) {
            return Err(ConfigError::CredentialsOutsideSentinel);
        }
        if let Err(entry) = TrustedProxies::parse(&self.trusted_proxies) {
            return Err(ConfigError::TrustedProxyNotAnIp { entry });
        }
        if layout != RedisLayout::Memory
            && self.redis_wait_replicas > 0
            && self.redis_wait_timeout >= self.redis_timeout
        {
            return Err(ConfigError::WaitOutlastsTimeout {
                wait: self.redis_wait_timeout.as_millis(),
                timeout: self.redis_timeout.as_millis(),
            });
        }
        let mut warnings = Vec::new();
        if self.redis_lost >= self.forfeit_grace {
            warnings.push(
                "REDIS_LOST_MS is not under FORFEIT_GRACE_MS: players of an instance that loses \
                 Redis may forfeit before they are sent elsewhere",
            );
        }
        if self.redis_lost <= self.redis_timeout {
            warnings.push(
                "REDIS_LOST_MS is not above REDIS_TIMEOUT_MS: a hung Redis connection cannot be \
                 replaced before the instance gives up on Redis",
            );
        }
        if self.lobby_per_address > 0 && self.ip_create_burst as usize > self.lobby_per_address {
            warnings.push(
                "IP_CREATE_BURST is above LOBBY_PER_ADDRESS: an address can open more games at \
                 once than the lobby lists of it",
            );
        }
        Ok(Checked { layout, warnings })
    }

    /// Every setting as the environment variables that reproduce it: for starting another
    /// process with exactly these settings (a test's server processes start from a cleared
    /// environment and these). Unset optional settings are left out.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        let mut put = |name: &'static str, value: String| env.push((name, value));
        put("LISTEN_ADDR", self.listen_addr.to_string());
        put("WORKER_THREADS", self.worker_threads.to_string());
        if let Some(v) = &self.metrics_addr {
            put("METRICS_ADDR", v.to_string());
        }
        if let Some(v) = &self.redis_url {
            put("REDIS_URL", v.to_string());
        }
        if !self.redis_cluster_urls.is_empty() {
            put("REDIS_CLUSTER_URLS", self.redis_cluster_urls.join(","));
        }
        if !self.redis_sentinels.is_empty() {
            put("REDIS_SENTINELS", self.redis_sentinels.join(","));
        }
        if let Some(v) = &self.redis_sentinel_master {
            put("REDIS_SENTINEL_MASTER", v.to_string());
        }
        if let Some(v) = &self.redis_username {
            put("REDIS_USERNAME", v.to_string());
        }
        if let Some(v) = &self.redis_password {
            put("REDIS_PASSWORD", v.to_string());
        }
        put("REDIS_WAIT_REPLICAS", self.redis_wait_replicas.to_string());
        put(
            "REDIS_WAIT_TIMEOUT_MS",
            self.redis_wait_timeout.as_millis().to_string(),
        );
        if let Some(v) = &self.instance_id {
            put("INSTANCE_ID", v.to_string());
        }
        put("WEB_DIR", self.web_dir.display().to_string());
        put("KEY_PREFIX", self.key_prefix.to_string());
        put(
            "LOG_FORMAT",
            match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
            .to_string(),
        );
        put(
            "REDIS_TIMEOUT_MS",
            self.redis_timeout.as_millis().to_string(),
        );
        put("REDIS_LOST_MS", self.redis_lost.as_millis().to_string());
        put("MOVE_RATE", self.move_rate.to_string());
        put("MOVE_BURST", self.move_burst.to_string());
        put("CHAT_RATE", self.chat_rate.to_string());
        put("CHAT_BURST", self.chat_burst.to_string());
        put("MSG_RATE", self.msg_rate.to_string());
        put("MSG_BURST", self.msg_burst.to_string());
        put("IP_CONN_RATE", self.ip_conn_rate.to_string());
        put("IP_CONN_BURST", self.ip_conn_burst.to_string());
        put("IP_SESSION_RATE", self.ip_session_rate.to_string());
        put("IP_SESSION_BURST", self.ip_session_burst.to_string());
        put("SPECTATE_RATE", self.spectate_rate.to_string());
        put("SPECTATE_BURST", self.spectate_burst.to_string());
        put("IP_SPECTATE_RATE", self.ip_spectate_rate.to_string());
        put("IP_SPECTATE_BURST", self.ip_spectate_burst.to_string());
        put("CREATE_RATE", self.create_rate.to_string());
        put("CREATE_BURST", self.create_burst.to_string());
        put("IP_CREATE_RATE", self.ip_create_rate.to_string());
        put("IP_CREATE_BURST", self.ip_create_burst.to_string());
        put("MAX_WAITING_GAMES", self.max_waiting_games.to_string());
        put("LOBBY_PER_PLAYER", self.lobby_per_player.to_string());
        put("LOBBY_PER_ADDRESS", self.lobby_per_address.to_string());
        put("MAX_GAMES_PER_CONN", self.max_games_per_conn.to_string());
        put("MAX_RESUME", self.max_resume.to_string());
        put("ABUSE_LIMIT", self.abuse_limit.to_string());
        put("MAX_MESSAGE_BYTES", self.max_message_bytes.to_string());
        put("ALLOWED_ORIGINS", self.allowed_origins.join(","));
        put("TRUSTED_PROXIES", self.trusted_proxies.join(","));
        put(
            "HEADER_READ_TIMEOUT_MS",
            self.header_read_timeout.as_millis().to_string(),
        );
        put("MAX_CONNECTIONS", self.max_connections.to_string());
        put("IP_PENDING_MAX", self.ip_pending_max.to_string());
        put("IP_WS_MAX", self.ip_ws_max.to_string());
        put("OUTBOUND_QUEUE", self.outbound_queue.to_string());
        put(
            "PRESENCE_INTERVAL_MS",
            self.presence_interval.as_millis().to_string(),
        );
        put("CHAT_MAX_CHARS", self.chat_max_chars.to_string());
        put("CHAT_KEPT", self.chat_kept.to_string());
        put("CHAT_HISTORY", self.chat_history.to_string());
        put("EVENT_LOG_LEN", self.event_log_len.to_string());
        put("SESSION_TTL_SECS", self.session_ttl.as_secs().to_string());
        put("GAME_TTL_SECS", self.game_ttl.as_secs().to_string());
        put(
            "FINISHED_GAME_TTL_SECS",
            self.finished_game_ttl.as_secs().to_string(),
        );
        put(
            "FORFEIT_GRACE_MS",
            self.forfeit_grace.as_millis().to_string(),
        );
        put(
            "MATCH_CONFIRM_MS",
            self.match_confirm.as_millis().to_string(),
        );
        put(
            "COMPUTER_DELAY_MS",
            self.computer_delay.as_millis().to_string(),
        );
        put(
            "QUICK_MATCH_COMPUTER_MS",
            self.quick_match_computer.as_millis().to_string(),
        );
        put("LEASE_TTL_MS", self.lease_ttl.as_millis().to_string());
        put(
            "SWEEP_INTERVAL_MS",
            self.sweep_interval.as_millis().to_string(),
        );
        put(
            "SHUTDOWN_GRACE_MS",
            self.shutdown_grace.as_millis().to_string(),
        );
        put(
            "HELLO_TIMEOUT_MS",
            self.hello_timeout.as_millis().to_string(),
        );
        put("IDLE_TIMEOUT_MS", self.idle_timeout.as_millis().to_string());
        env
    }

    /// Where the store lives (see [`RedisLayout`]).
    pub fn redis_layout(&self) -> Result<RedisLayout, ConfigError> {
        let listed = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .collect()
        };
        let url = self
            .redis_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty());
        let nodes = listed(&self.redis_cluster_urls);
        let sentinels = listed(&self.redis_sentinels);
        let set = [url.is_some(), !nodes.is_empty(), !sentinels.is_empty()];
        if set.iter().filter(|s| **s).count() > 1 {
            return Err(ConfigError::SeveralRedisLayouts);
        }
        if !sentinels.is_empty() {
            let master = self
                .redis_sentinel_master
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .ok_or(ConfigError::SentinelMasterMissing)?;
            return Ok(RedisLayout::Sentinel {
                sentinels,
                master: master.to_string(),
            });
        }
        Ok(match url {
            Some(url) => RedisLayout::Single {
                url: url.to_string(),
            },
            None if !nodes.is_empty() => RedisLayout::Cluster { nodes },
            None => RedisLayout::Memory,
        })
    }

    pub fn move_rule(&self) -> Rule {
        Rule::per_second(self.move_rate, self.move_burst)
    }
    pub fn chat_rule(&self) -> Rule {
        Rule::per_second(self.chat_rate, self.chat_burst)
    }
    pub fn msg_rule(&self) -> Rule {
        Rule::per_second(self.msg_rate, self.msg_burst)
    }
    pub fn ip_conn_rule(&self) -> Rule {
        Rule::per_second(self.ip_conn_rate, self.ip_conn_burst)
    }
    pub fn ip_session_rule(&self) -> Rule {
        Rule::per_second(self.ip_session_rate, self.ip_session_burst)
    }
    /// How often the Redis links are checked: several times within REDIS_LOST_MS, so that a
    /// replaced connection gets its chance before the instance gives up on Redis.
    pub fn redis_probe_every(&self) -> Duration {
        (self.redis_lost / 6).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
    pub fn create_rule(&self) -> Rule {
        Rule::per_second(self.create_rate, self.create_burst)
    }
    pub fn spectate_rule(&self) -> Rule {
        Rule::per_second(self.spectate_rate, self.spectate_burst)
    }
    pub fn ip_spectate_rule(&self) -> Rule {
        Rule::per_second(self.ip_spectate_rate, self.ip_spectate_burst)
    }
    pub fn ip_create_rule(&self) -> Rule {
        Rule::per_second(self.ip_create_rate, self.ip_create_burst)
    }
    /// ABUSE_LIMIT limited requests at once, refilled over a minute.
    pub fn abuse_rule(&self) -> Rule {
        Rule::per_second(f64::from(self.abuse_limit) / 60.0, self.abuse_limit)
    }

    /// The trusted proxies. [`Config::check`] refuses entries that are neither addresses nor
    /// networks; with settings built without the check, such an entry is reported and the
    /// others kept.
    pub fn trusted_proxies(&self) -> TrustedProxies {
        let (trusted, bad) = TrustedProxies::parse_valid(&self.trusted_proxies);
        for entry in bad {
            tracing::warn!(
                entry,
                "TRUSTED_PROXIES: not an IP address or network, ignored"
            );
        }
        trusted
    }
}

/// A rate per second: a finite number above zero (0.5 is one every two seconds).
fn positive_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !(rate.is_finite() && rate > 0.0) {
        return Err("must be a number above 0".into());
    }
    Ok(rate)
}

/// A whole number of milliseconds, at least `min`.
fn millis_at_least(min: u64) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |s| at_least::<u64>(min)(s).map(Duration::from_millis)
}

/// Milliseconds, zero allowed.
fn millis(s: &str) -> Result<Duration, String> {
    millis_at_least(0)(s)
}

/// A whole number of seconds, at least `min`.
fn secs_at_least(min: u64) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |s| at_least::<u64>(min)(s).map(Duration::from_secs)
}

/// A whole number, at least `min`.
fn at_least<T>(min: u64) -> impl Fn(&str) -> Result<T, String> + Clone
where
    T: TryFrom<u64>,
{
    move |s| {
        let n: u64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a whole number"))?;
        if n < min {
            return Err(format!("must be at least {min}"));
        }
        T::try_from(n).map_err(|_| format!("`{s}` is too large"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn the_settings_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse_into_typed_settings() {
        let c = Cli::parse_from([
            "tictactoe",
            "--listen-addr",
            "127.0.0.1:0",
            "--allowed-origins",
            "https://a.example,https://b.example",
            "--forfeit-grace-ms",
            "1500",
            "--game-ttl-secs",
            "2",
        ])
        .config;
        assert_eq!(c.allowed_origins.len(), 2);
        assert_eq!(c.forfeit_grace, Duration::from_millis(1500));
        assert_eq!(c.game_ttl, Duration::from_secs(2));
    }

    #[test]
    fn out_of_range_settings_are_refused_with_their_name() {
        for args in [
            ["--idle-timeout-ms", "10"],
            ["--sweep-interval-ms", "0"],
            ["--outbound-queue", "1"],
            ["--event-log-len", "0"],
            ["--max-message-bytes", "10"],
            ["--redis-timeout-ms", "soon"],
            ["--redis-wait-timeout-ms", "0"],
            ["--move-rate", "0"],
            ["--ip-conn-rate=-1", "--move-burst=1"],
            ["--spectate-rate", "NaN"],
            ["--chat-burst", "0"],
        ] {
            let err = Cli::try_parse_from(["tictactoe", args[0], args[1]])
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"));
            let name = args[0].split('=').next().unwrap_or_default();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn an_address_cannot_create_more_games_at_once_than_the_lobby_lists_of_it() {
        let c = Config::default();
        assert!(c.ip_create_burst as usize <= c.lobby_per_address);
        assert!(c.lobby_per_address > 0 && c.lobby_per_address < 50);
    }

    #[test]
    fn the_redis_layout_is_decided_once_and_refuses_contradictions() {
        let mut c = Config::default();
        assert_eq!(c.redis_layout(), Ok(RedisLayout::Memory));
        c.redis_url = Some(" redis://r:6379 ".into());
        assert_eq!(
            c.redis_layout(),
            Ok(RedisLayout::Single {
                url: "redis://r:6379".into()
            })
        );
        c.redis_cluster_urls = vec!["redis://a:7000".into()];
        assert_eq!(c.redis_layout(), Err(ConfigError::SeveralRedisLayouts));
        // An empty value is unset: an override can switch layouts.
        c.redis_url = Some(String::new());
        assert!(matches!(c.redis_layout(), Ok(RedisLayout::Cluster { .. })));
        c.redis_cluster_urls.clear();
        c.redis_sentinels = vec!["s1:26379".into()];
        assert_eq!(c.redis_layout(), Err(ConfigError::SentinelMasterMissing));
        c.redis_sentinel_master = Some("ttt".into());
        assert!(matches!(c.redis_layout(), Ok(RedisLayout::Sentinel { .. })));
    }

    #[test]
    fn the_check_report_names_the_store_and_every_warning_but_no_address() {
        let c = Cli::parse_from([
            "tictactoe",
            "--redis-sentinels",
            "10.0.0.1:26379,10.0.0.2:26379",
            "--redis-sentinel-master",
            "ttt",
            "--redis-lost-ms",
            "60000",
        ])
        .config;
        let report = c.check().unwrap().report();
        assert!(
            report.starts_with("settings ok: a replicated Redis found through 2 Sentinel(s)"),
            "{report}"
        );
        assert!(!report.contains("10.0.0.1"), "{report}");
        assert_eq!(report.matches("\nwarning: ").count(), 1, "{report}");
        let c = Cli::parse_from(["tictactoe", "--redis-url", "redis://:secret@db:6379/"]).config;
        assert_eq!(
            c.check().unwrap().report(),
            "settings ok: one Redis (REDIS_URL)\n"
        );
    }

    #[test]
    fn settings_that_cannot_work_together_are_refused_and_unwise_ones_named() {
        let mut c = Config {
            redis_url: Some("redis://r".into()),
            redis_wait_replicas: 1,
            ..Config::default()
        };
        c.redis_wait_timeout = c.redis_timeout;
        assert!(matches!(
            c.check(),
            Err(ConfigError::WaitOutlastsTimeout { .. })
        ));
        let c = Config::default();
        assert!(
            c.check().unwrap().warnings.is_empty(),
            "the defaults are wise"
        );
        let c = Config {
            forfeit_grace: Duration::from_millis(1000),
            ..Config::default()
        };
        assert_eq!(c.check().unwrap().warnings.len(), 1);
        let c = Config {
            trusted_proxies: vec![
                "10.0.0.1".into(),
                " ::1".into(),
                "".into(),
                "172.16.0.0/12".into(),
            ],
            ..Config::default()
        };
        assert!(c.check().is_ok());
        assert!(c.trusted_proxies().contains(&"172.20.1.2".parse().unwrap()));
        let c = Config {
            trusted_proxies: vec!["10.0.0.1".into(), "10.0.0.300".into()],
            ..Config::default()
        };
        assert_eq!(
            c.check().unwrap_err(),
            ConfigError::TrustedProxyNotAnIp {
                entry: "10.0.0.300".into()
            }
        );
        // The primary's credentials are for the Sentinel layout alone.
        let with_password = |c: Config| Config {
            redis_password: Some("secret".into()),
            ..c
        };
        let single = with_password(Config {
            redis_url: Some("redis://r".into()),
            ..Config::default()
        });
        assert_eq!(
            single.check().unwrap_err(),
            ConfigError::CredentialsOutsideSentinel
        );
        let mut sentinel = with_password(Config::default());
        sentinel.redis_sentinels = vec!["127.0.0.1:26379".into()];
        sentinel.redis_sentinel_master = Some("ttt".into());
        assert!(sentinel.check().is_ok());
    }

    #[test]
    fn the_environment_of_a_config_names_every_setting_and_parses_back_to_it() {
        let mut c = Config {
            redis_url: Some("redis://r:1".into()),
            metrics_addr: Some("127.0.0.1:9".parse().unwrap()),
            instance_id: Some("i".into()),
            trusted_proxies: vec!["127.0.0.1".into(), "::1".into()],
            move_rate: 0.25,
            forfeit_grace: Duration::from_millis(1234),
            game_ttl: Duration::from_secs(77),
            log_format: LogFormat::Json,
            ..Config::default()
        };
        c.redis_sentinel_master = Some("m".into());
        c.redis_username = Some("u".into());
        c.redis_password = Some("p".into());
        let env = c.to_env();
        let cmd = Cli::command();
        for arg in cmd.get_arguments() {
            let Some(name) = arg.get_env() else { continue };
            let name = name.to_string_lossy();
            let optional = ["REDIS_CLUSTER_URLS", "REDIS_SENTINELS"].contains(&name.as_ref());
            assert!(
                optional || env.iter().any(|(k, _)| *k == name),
                "{name} is missing from to_env"
            );
        }
        // As flags, the same values parse back to the same settings.
        let mut args = vec!["tictactoe".to_string()];
        for (name, value) in &env {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == *name))
                .unwrap();
            args.push(format!("--{}={value}", arg.get_long().unwrap()));
        }
        let back = Cli::try_parse_from(args).unwrap().config;
        assert_eq!(format!("{back:?}"), format!("{c:?}"));
    }

    #[test]
    fn the_default_ignores_the_environment() {
        // Setting a variable takes `unsafe` (forbidden here), so check that the parser behind
        // `default` looks up no variable at all.
        let cmd = Defaults::command().mut_args(|a| a.env(None));
        assert!(cmd.get_arguments().all(|a| a.get_env().is_none()));
        assert_eq!(Config::default().idle_timeout, Duration::from_secs(60));
    }
}
