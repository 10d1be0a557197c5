//! A replicated Redis as production runs it with Sentinel: a primary, a replica and three
//! Sentinels (quorum 2, `down-after-milliseconds 1000`), real processes on free ports, killed
//! on drop. What a test does to it is what happens to servers: `kill -9` of the primary, a
//! replica that falls behind.

use super::redis::{redis_server_bin, wait_until_up};
use super::{TempDir, WAIT, free_port};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The name the Sentinels know the primary by.
pub const MASTER_NAME: &str = "ttt";

/// How long the primary must be silent before a Sentinel calls it down.
pub const DOWN_AFTER_MS: u64 = 1000;

/// One redis-server process (a data node or a Sentinel) on its own port and directory.
struct Node {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// The data nodes' `requirepass`, when the set has one (Sentinels have none).
    password: Option<String>,
    /// Its TLS port, in a set started with TLS: the port the Sentinels name it by.
    tls_port: Option<u16>,
}

impl Node {
    /// Whether `port` (as a Sentinel names a node) is this node's.
    fn has_port(&self, port: u16) -> bool {
        self.port == port || self.tls_port == Some(port)
    }

    fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Starts redis-server with `args` (a config file first, for a Sentinel) on a free port,
/// trying other ports if the chosen one was taken meanwhile; waits until it answers PING.
fn spawn(
    dir: &Path,
    password: Option<&str>,
    tls_port: Option<u16>,
    args: impl Fn(u16) -> Vec<String>,
) -> Node {
    std::fs::create_dir_all(dir).expect("node dir");
    for _ in 0..5 {
        let port = free_port();
        let log = dir.join("redis.log");
        let child = Command::new(redis_server_bin())
            .args(args(port))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server could not be started: is it installed?");
        let mut node = Node {
            port,
            dir: dir.to_path_buf(),
            child: Some(child),
            password: password.map(str::to_owned),
            tls_port,
        };
        let url = node.url();
        if wait_until_up(&mut node.child, &url, &log) {
            return node;
        }
    }
    panic!("redis-server would not start in {}", dir.display());
}

fn query<T: redis::FromRedisValue>(url: &str, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let mut c = redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(1))?;
    c.set_read_timeout(Some(Duration::from_secs(2)))?;
    cmd.query(&mut c)
}

/// Polls `f` (a blocking check) until it returns `Some`, at most [`WAIT`].
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub struct SentinelSet {
    /// Data nodes: node 0 starts as the primary, the others as its replicas.
    nodes: Vec<Node>,
    sentinels: Vec<Node>,
    dir: TempDir,
}

impl SentinelSet {
    /// Starts the primary and `replicas` replicas (and waits until they are in sync), then
    /// the Sentinels, and returns once every Sentinel knows the replicas and the two other
    /// Sentinels: only then could they agree on a failover.
    pub fn start(replicas: usize) -> SentinelSet {
        SentinelSet::start_with(replicas, None, None)
    }

    /// The same over TLS, with the certificates in `cert_dir` (see
    /// [`super::tls::make_certificates`]): every node and Sentinel also listens on a TLS
    /// port, replication and the Sentinels' links use TLS (`tls-replication yes`), so the
    /// Sentinels name the nodes by their TLS ports. Plain ports stay open for the harness.
    pub fn start_with_tls(replicas: usize, cert_dir: &Path) -> SentinelSet {
        SentinelSet::start_with(replicas, None, Some(cert_dir))
    }

    /// The same, with `password` required by the data nodes (`requirepass`, `masterauth`)
    /// and given to the Sentinels (`sentinel auth-pass`), as a production set has it.
    pub fn start_with_password(replicas: usize, password: &str) -> SentinelSet {
        SentinelSet::start_with(replicas, Some(password), None)
    }

    fn start_with(replicas: usize, password: Option<&str>, tls: Option<&Path>) -> SentinelSet {
        let dir = TempDir::new("sentinel");
        // The TLS settings every node and Sentinel shares, and each one's TLS port.
        let tls_common: Vec<(&str, String)> = match tls {
            Some(certs) => {
                let mut settings = super::tls::server_settings(certs);
                settings.push(("tls-replication", "yes".into()));
                settings
            }
            None => Vec::new(),
        };
        let tls_port = || tls.map(|_| free_port());
        let auth: Vec<String> = match password {
            Some(p) => vec![
                "--requirepass".into(),
                p.into(),
                "--masterauth".into(),
                p.into(),
            ],
            None => Vec::new(),
        };
        let data_args = |d: PathBuf, extra: Vec<String>, tls_port: Option<u16>| {
            let auth = auth.clone();
            let tls: Vec<String> = match tls_port {
                Some(p) => {
                    let mut a = vec!["--tls-port".to_string(), p.to_string()];
                    a.extend(
                        tls_common
                            .iter()
                            .flat_map(|(name, value)| [format!("--{name}"), value.clone()]),
                    );
                    a
                }
                None => Vec::new(),
            };
            move |port: u16| {
                let mut a: Vec<String> = [
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    // A replica syncs at once instead of waiting for more replicas to come.
                    "--repl-diskless-sync-delay",
                    "0",
                    "--dir",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                a.push(d.display().to_string());
                a.push("--logfile".into());
                a.push(d.join("redis.log").display().to_string());
                a.extend(extra.iter().cloned());
                a.extend(auth.iter().cloned());
                a.extend(tls.iter().cloned());
                a
            }
        };
        let primary_dir = dir.0.join("node0");
        let primary_tls = tls_port();
        let primary = spawn(
            &primary_dir,
            password,
            primary_tls,
            data_args(primary_dir.clone(), vec![], primary_tls),
        );
        // The port replicas and Sentinels reach it on: its TLS port in a TLS set.
        let primary_port = primary_tls.unwrap_or(primary.port);
        let mut nodes = vec![primary];
        for i in 1..=replicas {
            let replica_dir = dir.0.join(format!("node{i}"));
            // No fsync on every write on a replica, as `RedisServer::start_replica_of`: on
            // a busy machine (the whole suite at once) that alone can hold a replica's
            // acknowledgement, and with it a WAIT, up for longer than the WAIT lasts.
            let replicaof = vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                primary_port.to_string(),
                "--appendfsync".into(),
                "everysec".into(),
            ];
            let replica_tls = tls_port();
            nodes.push(spawn(
                &replica_dir,
                password,
                replica_tls,
                data_args(replica_dir.clone(), replicaof, replica_tls),
            ));
        }
        let mut set = SentinelSet {
            nodes,
            sentinels: Vec::new(),
            dir,
        };
        for i in 1..=replicas {
            set.wait_replica_in_sync(i);
        }
        for i in 0..3 {
            let sdir = set.dir.0.join(format!("sentinel{i}"));
            let auth_pass = password
                .map(|p| format!("sentinel auth-pass {MASTER_NAME} {p}\n"))
                .unwrap_or_default();
            let sentinel_tls = tls_port();
            let tls_conf: String = match sentinel_tls {
                Some(p) => {
                    let mut c = format!("tls-port {p}\n");
                    for (name, value) in &tls_common {
                        c.push_str(&format!("{name} {value}\n"));
                    }
                    c
                }
                None => String::new(),
            };
            let sentinel = spawn(&sdir, None, sentinel_tls, |port| {
                // Sentinel rewrites its configuration file: each gets its own, fresh per start.
                let conf = sdir.join("sentinel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {dir}/redis.log\n\
                         sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n\
                         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
                         sentinel failover-timeout {MASTER_NAME} 5000\n\
                         sentinel parallel-syncs {MASTER_NAME} 1\n{auth_pass}{tls_conf}",
                        dir = sdir.display()
                    ),
                )
                .expect("sentinel.conf");
                vec![conf.display().to_string(), "--sentinel".into()]
            });
            set.sentinels.push(sentinel);
        }
        set.wait_sentinels_ready();
        set
    }

    /// `host:port` of each Sentinel, as `REDIS_SENTINELS` takes them; in a set started
    /// with TLS, `rediss://` URLs of their TLS ports.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| match s.tls_port {
                Some(p) => format!("rediss://127.0.0.1:{p}"),
                None => format!("127.0.0.1:{}", s.port),
            })
            .collect()
    }

    pub fn url(&self, node: usize) -> String {
        self.nodes[node].url()
    }

    pub fn conn(&self, node: usize) -> redis::Connection {
        redis::Client::open(self.url(node))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .expect("connection to a data node")
    }

    /// The data node the Sentinels name as primary, as any live Sentinel sees it.
    pub fn primary(&self) -> Option<usize> {
        self.sentinels
            .iter()
            .filter(|s| s.child.is_some())
            .find_map(|s| {
                let addr: Vec<String> = query(
                    &s.url(),
                    redis::cmd("SENTINEL")
                        .arg("GET-MASTER-ADDR-BY-NAME")
                        .arg(MASTER_NAME),
                )
                .ok()?;
                let port: u16 = addr.get(1)?.parse().ok()?;
                self.nodes.iter().position(|n| n.has_port(port))
            })
    }

    /// `SENTINEL FAILOVER`, as an operator moving the primary away from a healthy node: a
    /// replica is promoted without waiting for the primary to fail, and the old primary is
    /// turned into its replica.
    pub fn failover_by_hand(&self) {
        let _: String = query(
            &self.sentinels[0].url(),
            redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER_NAME),
        )
        .expect("SENTINEL FAILOVER");
    }

    /// How many data nodes (the primary and its replicas) the set has.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// `kill -9` of a data node.
    pub fn kill9(&mut self, node: usize) {
        self.nodes[node].kill9();
    }

    /// Waits until the Sentinels have promoted a node other than `old` and that node says it
    /// is a primary; returns it. Bounded by [`WAIT`]: several times the promotion time.
    pub fn wait_promoted(&self, old: usize) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            let promoted = self.primary().filter(|n| *n != old).filter(|new| {
                query::<Vec<redis::Value>>(&self.url(*new), &redis::cmd("ROLE")).is_ok_and(
                    |role| matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master"),
                )
            });
            if let Some(new) = promoted {
                return new;
            }
            assert!(
                Instant::now() < deadline,
                "no failover within {WAIT:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until the replica `node` has a live link to its primary and has applied
    /// everything the primary had when this was called.
    pub fn wait_replica_in_sync(&self, node: usize) {
        let primary_offset = |url: &str| -> Option<u64> {
            let info: String = query(url, redis::cmd("INFO").arg("replication")).ok()?;
            field(&info, "master_repl_offset")?.parse().ok()
        };
        let primary = self
            .nodes
            .iter()
            .position(|n| {
                n.child.is_some()
                    && query::<String>(&n.url(), redis::cmd("INFO").arg("replication"))
                        .is_ok_and(|i| field(&i, "role") == Some("master"))
            })
            .expect("a live primary");
        let target = wait_for("the primary's offset", || {
            primary_offset(&self.url(primary))
        });
        wait_for("the replica to catch up", || {
            let info: String =
                query(&self.url(node), redis::cmd("INFO").arg("replication")).ok()?;
            let up = field(&info, "master_link_status") == Some("up");
            let offset: u64 = field(&info, "slave_repl_offset")?.parse().ok()?;
            (up && offset >= target).then_some(())
        });
    }

    fn wait_sentinels_ready(&self) {
        let replica_ports: Vec<String> = self.nodes[1..]
            .iter()
            .map(|n| n.tls_port.unwrap_or(n.port).to_string())
            .collect();
        for s in &self.sentinels {
            wait_for("a Sentinel to see its peers and the replica", || {
                let quorum: String = query(
                    &s.url(),
                    redis::cmd("SENTINEL").arg("CKQUORUM").arg(MASTER_NAME),
                )
                .ok()?;
                let peers: Vec<HashMap<String, String>> = query(
                    &s.url(),
                    redis::cmd("SENTINEL").arg("SENTINELS").arg(MASTER_NAME),
                )
                .ok()?;
                let replicas: Vec<HashMap<String, String>> = query(
                    &s.url(),
                    redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER_NAME),
                )
                .ok()?;
                let replica_ok = replica_ports.iter().all(|port| {
                    replicas.iter().any(|r| {
                        r.get("port") == Some(port)
                            && r.get("flags").is_some_and(|f| f == "slave")
                            && r.get("master-link-status").is_some_and(|l| l == "ok")
                    })
                });
                (quorum.starts_with("OK") && peers.len() == 2 && replica_ok).then_some(())
            });
        }
    }

    /// Cuts the replica `node` off its primary without stopping either process: the replica
    /// can no longer authenticate for replication, and the primary's replica links are
    /// killed. It stays a healthy replica to the Sentinels (one that fell behind), and
    /// everything written meanwhile exists on the primary only.
    pub fn cut_replication(&self, node: usize) {
        let mut replica = self.conn(node);
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("masteruser")
            .arg("nobody-replicates-as-this")
            .arg("masterauth")
            .arg("wrong")
            .query(&mut replica)
            .expect("CONFIG SET masteruser masterauth");
        let primary = self.primary().expect("a primary");
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("replica")
            .query(&mut self.conn(primary))
            .expect("CLIENT KILL TYPE replica");
        wait_for("the replication link to drop", || {
            let info: String =
                query(&self.url(node), redis::cmd("INFO").arg("replication")).ok()?;
            (field(&info, "master_link_status") == Some("down")).then_some(())
        });
    }

    /// Lets a replica cut off by [`SentinelSet::cut_replication`] authenticate again, so
    /// that it can follow whichever node is primary now.
    pub fn restore_replication(&self, node: usize) {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("masteruser")
            .arg("")
            .arg("masterauth")
            .arg("")
            .query(&mut self.conn(node))
            .expect("CONFIG SET masteruser masterauth");
    }

    /// Sentinel and data-node logs, for a failure message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .chain(&self.sentinels)
            .map(|n| {
                let log = std::fs::read_to_string(n.dir.join("redis.log")).unwrap_or_default();
                format!("--- {} (port {}) ---\n{log}\n", n.dir.display(), n.port)
            })
            .collect()
    }
}

/// `field:value` from an INFO reply.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}
