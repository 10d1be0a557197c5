//! Configuration: every setting is a flag and an environment variable (`--help` lists them
//! with their defaults). The README's table of limits is generated from the same defaults.

use crate::ratelimit::Rule;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "tictactoe",
    version,
    about = "Real-time multiplayer tic-tac-toe: stateless WebSocket instances over Redis",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings (used when no subcommand is given).
    #[command(flatten)]
    pub serve: Config,
}

// Parsed once at start-up: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a server instance (the default).
    Serve(Config),
    /// Print moves, boards and chat of live games as they happen.
    Monitor(crate::monitor::MonitorArgs),
    /// Drive instances with many WebSocket clients (playing or idle) and report throughput,
    /// latency and server memory.
    Loadgen(crate::loadgen::LoadgenArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Address to listen on (HTTP page, /ws, /healthz, /readyz, /metrics).
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,

    /// Redis URL (redis://host:port/db). Without it the server keeps everything in memory:
    /// a single instance only.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Seed nodes of a Redis Cluster, comma separated (redis://host:port,...), instead of
    /// REDIS_URL. Game channels then use sharded pub/sub (SPUBLISH/SSUBSCRIBE).
    #[arg(long, env = "REDIS_CLUSTER_URLS", value_delimiter = ',')]
    pub redis_cluster_urls: Vec<String>,

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

    /// Longest wait for one Redis call before answering `unavailable`.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 2000)]
    pub redis_timeout_ms: u64,

    // Rate limits.
    /// Moves per second per session and game (enforced in Redis, so reconnecting or
    /// changing instance does not reset it).
    #[arg(long, env = "MOVE_RATE", default_value_t = 10.0)]
    pub move_rate: f64,
    #[arg(long, env = "MOVE_BURST", default_value_t = 20)]
    pub move_burst: u32,
    /// Chat lines per second per session (enforced in Redis).
    #[arg(long, env = "CHAT_RATE", default_value_t = 1.0)]
    pub chat_rate: f64,
    #[arg(long, env = "CHAT_BURST", default_value_t = 5)]
    pub chat_burst: u32,
    /// Frames per second per connection, of any kind, counted before parsing (in process).
    #[arg(long, env = "MSG_RATE", default_value_t = 30.0)]
    pub msg_rate: f64,
    #[arg(long, env = "MSG_BURST", default_value_t = 60)]
    pub msg_burst: u32,
    /// New WebSocket connections per second per client IP (enforced in Redis).
    #[arg(long, env = "IP_CONN_RATE", default_value_t = 5.0)]
    pub ip_conn_rate: f64,
    #[arg(long, env = "IP_CONN_BURST", default_value_t = 50)]
    pub ip_conn_burst: u32,
    /// New sessions per second per client IP (enforced in Redis).
    #[arg(long, env = "IP_SESSION_RATE", default_value_t = 0.5)]
    pub ip_session_rate: f64,
    #[arg(long, env = "IP_SESSION_BURST", default_value_t = 20)]
    pub ip_session_burst: u32,
    /// Rate-limited requests a connection may accumulate (refilling over a minute) before it
    /// is closed with 1008 (policy violation).
    #[arg(long, env = "ABUSE_LIMIT", default_value_t = 50)]
    pub abuse_limit: u32,

    // Input hardening.
    /// Largest WebSocket message (and frame) accepted; bigger closes with 1009.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = 4096)]
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
    /// Peers whose X-Forwarded-For is believed (the load balancer), comma separated IPs.
    #[arg(
        long,
        env = "TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub trusted_proxies: Vec<String>,

    // Sizes and lifetimes.
    /// Messages queued to one client before it counts as too slow and is closed (4001).
    #[arg(long, env = "OUTBOUND_QUEUE", default_value_t = 256)]
    pub outbound_queue: usize,
    /// Chat line length, in characters.
    #[arg(long, env = "CHAT_MAX_CHARS", default_value_t = 280)]
    pub chat_max_chars: usize,
    /// Chat lines kept per game (and in the lobby).
    #[arg(long, env = "CHAT_KEPT", default_value_t = 100)]
    pub chat_kept: usize,
    /// Chat lines sent to someone who joins.
    #[arg(long, env = "CHAT_HISTORY", default_value_t = 50)]
    pub chat_history: usize,
    /// Events kept per game log, for replay on reconnect.
    #[arg(long, env = "EVENT_LOG_LEN", default_value_t = 64)]
    pub event_log_len: usize,
    /// A session expires after this long unused.
    #[arg(long, env = "SESSION_TTL_SECS", default_value_t = 86_400)]
    pub session_ttl_secs: u64,
    /// A game (its state, log, chat, presence) expires after this long without activity.
    #[arg(long, env = "GAME_TTL_SECS", default_value_t = 3_600)]
    pub game_ttl_secs: u64,
    /// A finished game expires after this long unless a rematch starts.
    #[arg(long, env = "FINISHED_GAME_TTL_SECS", default_value_t = 600)]
    pub finished_game_ttl_secs: u64,

    // Clocks.
    /// A seated player away longer than this forfeits the round.
    #[arg(long, env = "FORFEIT_GRACE_MS", default_value_t = 30_000)]
    pub forfeit_grace_ms: u64,
    /// A matched game in which a player has not shown up after this long is aborted.
    #[arg(long, env = "MATCH_CONFIRM_MS", default_value_t = 10_000)]
    pub match_confirm_ms: u64,
    /// Instance lease: a dead instance's presence entries are cleared within this plus
    /// SWEEP_INTERVAL_MS.
    #[arg(long, env = "LEASE_TTL_MS", default_value_t = 6_000)]
    pub lease_ttl_ms: u64,
    /// How often instances look for dead leases and due deadlines.
    #[arg(long, env = "SWEEP_INTERVAL_MS", default_value_t = 1_000)]
    pub sweep_interval_ms: u64,
    /// How long a shutting-down instance waits for its sessions to close.
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
    /// A connection that has not said hello by then is closed.
    #[arg(long, env = "HELLO_TIMEOUT_MS", default_value_t = 10_000)]
    pub hello_timeout_ms: u64,
    /// A connection silent this long (no frame, no pong) is closed; pings go out at a third.
    #[arg(long, env = "IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
}

impl Default for Config {
    /// The documented defaults (and whatever the environment sets), as `--help` shows them.
    fn default() -> Self {
        Cli::parse_from(["tictactoe"]).serve
    }
}

impl Config {
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
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
    /// ABUSE_LIMIT limited requests at once, refilled over a minute.
    pub fn abuse_rule(&self) -> Rule {
        Rule::per_second(f64::from(self.abuse_limit.max(1)) / 60.0, self.abuse_limit)
    }
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }
    pub fn game_ttl(&self) -> Duration {
        Duration::from_secs(self.game_ttl_secs)
    }
    pub fn finished_game_ttl(&self) -> Duration {
        Duration::from_secs(self.finished_game_ttl_secs)
    }
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.sweep_interval_ms.max(10))
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
    pub fn hello_timeout(&self) -> Duration {
        Duration::from_millis(self.hello_timeout_ms)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(300))
    }

    /// Trusted proxy addresses; entries that are not IPs are reported and ignored.
    pub fn trusted_proxy_ips(&self) -> Vec<IpAddr> {
        self.trusted_proxies
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .filter_map(|s| match s.parse() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    tracing::warn!(entry = s, "TRUSTED_PROXIES: not an IP address, ignored");
                    None
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse_and_subcommands_are_optional() {
        let cli = Cli::parse_from([
            "tictactoe",
            "--listen-addr",
            "127.0.0.1:0",
            "--allowed-origins",
            "https://a.example,https://b.example",
        ]);
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.allowed_origins.len(), 2);
        let cli = Cli::parse_from(["tictactoe", "serve", "--move-burst", "3"]);
        assert!(matches!(cli.command, Some(Command::Serve(c)) if c.move_burst == 3));
    }
}
