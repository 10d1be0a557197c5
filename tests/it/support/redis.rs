//! A throwaway `redis-server` on a free port, with its data in a scratch directory, killed on
//! drop; stopped and restarted on the same port for the failover tests.

use super::{TempDir, WAIT, free_port};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A throwaway redis-server. Append-only persistence is on, so a restart keeps every
/// acknowledged write, as in production.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
    /// Arguments after the common ones (`--replicaof` for a replica).
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(Vec::new())
    }

    /// A replica of `primary`, returned once it holds everything `primary` had.
    pub fn start_replica_of(primary: &RedisServer) -> RedisServer {
        // The primary would otherwise wait 5 s for more replicas before the first sync.
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("repl-diskless-sync-delay")
            .arg("0")
            .query(&mut primary.sync_conn())
            .expect("CONFIG SET");
        // No fsync on every write on the replica: on a busy machine that alone can hold an
        // acknowledgement up for longer than a WAIT lasts.
        let replica = RedisServer::start_with(vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port.to_string(),
            "--appendfsync".into(),
            "everysec".into(),
        ]);
        let offset = |r: &RedisServer, field: &str| -> Option<u64> {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut r.sync_conn())
                .ok()?;
            info.lines().find_map(|l| {
                l.strip_prefix(field)?
                    .strip_prefix(':')?
                    .trim()
                    .parse()
                    .ok()
            })
        };
        // Caught up, and online for the primary (which counts it in WAIT only after its first
        // acknowledgement, up to a second after the sync).
        let online = || -> bool {
            redis::cmd("INFO")
                .arg("replication")
                .query::<String>(&mut primary.sync_conn())
                .is_ok_and(|i| i.contains(&format!("port={},state=online", replica.port)))
        };
        let target = offset(primary, "master_repl_offset").expect("the primary's offset");
        let deadline = Instant::now() + WAIT;
        while !online() || offset(&replica, "slave_repl_offset").is_none_or(|o| o < target) {
            assert!(Instant::now() < deadline, "the replica never caught up");
            std::thread::sleep(Duration::from_millis(20));
        }
        replica
    }

    /// A server that also speaks TLS on `tls_port`, with the certificate and key in
    /// `cert_dir` (`server.crt`, `server.key`, signed by `ca.crt`); clients need no
    /// certificate of their own. Its plain port stays open for the harness.
    pub fn start_tls(cert_dir: &std::path::Path, tls_port: u16) -> RedisServer {
        RedisServer::start_with(tls_args(cert_dir, tls_port))
    }

    /// [`Self::start_tls`], with an ACL user `user` whose password is `password`, as a
    /// managed Redis service gives its applications. The default user stays open, for the
    /// harness.
    pub fn start_tls_with_user(
        cert_dir: &std::path::Path,
        tls_port: u16,
        user: &str,
        password: &str,
    ) -> RedisServer {
        let mut args = tls_args(cert_dir, tls_port);
        // One argument per word: redis-server quotes an argument that has spaces.
        let rule = format!("{user} on >{password} ~* &* +@all");
        args.push("--user".into());
        args.extend(rule.split(' ').map(String::from));
        RedisServer::start_with(args)
    }

    fn start_with(extra: Vec<String>) -> RedisServer {
        let dir = TempDir::new("redis");
        let mut r = RedisServer {
            port: free_port(),
            child: None,
            dir,
            extra,
        };
        // A server whose port was taken meanwhile exits at once: try another port.
        let mut attempts = 0;
        while !r.try_spawn() {
            attempts += 1;
            assert!(attempts < 5, "redis-server would not start");
            r.port = free_port();
        }
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn spawn(&mut self) {
        assert!(
            self.try_spawn(),
            "redis-server did not start on port {}",
            self.port
        );
    }

    /// Starts the server; false if it exited at once (its port was taken).
    fn try_spawn(&mut self) -> bool {
        let log = self.dir.0.join("redis.log");
        let child = Command::new(redis_server_bin())
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
            ])
            .arg(&self.dir.0)
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server could not be started: is it installed? (scripts/test.sh installs it)",
            );
        self.child = Some(child);
        let url = self.url();
        wait_until_up(&mut self.child, &url, &log)
    }

    /// Stops the server as an operator would (SIGTERM: it finishes its AOF).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// Stalls the server (SIGSTOP): connections stay open, bytes are accepted, nothing is
    /// answered until [`Self::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT): it then runs whatever was sent meanwhile.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Signals the server process (by its own pid, never a group).
    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("redis-server is running").id();
        let status = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig} {pid}");
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("redis url")
    }

    pub fn sync_conn(&self) -> redis::Connection {
        self.client().get_connection().expect("redis connection")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tls_args(cert_dir: &std::path::Path, tls_port: u16) -> Vec<String> {
    let mut args = vec!["--tls-port".to_string(), tls_port.to_string()];
    args.extend(super::tls::server_args(cert_dir));
    args
}

/// Waits until the redis-server `child` answers at `url`: true then, false if it exited first
/// (its port was taken meanwhile: the caller tries another). Panics with its log after `WAIT`.
pub(super) fn wait_until_up(child: &mut Option<Child>, url: &str, log: &std::path::Path) -> bool {
    let deadline = Instant::now() + WAIT;
    loop {
        if redis_answers(url) {
            return true;
        }
        if let Some(c) = child.as_mut()
            && let Ok(Some(_)) = c.try_wait()
        {
            *child = None;
            return false;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("redis-server did not start at {url}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(super) fn redis_answers(url: &str) -> bool {
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

/// `redis-server` from the PATH, or the one `REDIS_SERVER_BIN` names.
pub(super) fn redis_server_bin() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into())
}

/// A node's `CLIENT LIST`: each client's fields by name, and the line as the node gave it.
pub fn client_list(
    conn: &mut redis::Connection,
) -> Vec<(std::collections::HashMap<String, String>, String)> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(conn).unwrap();
    list.lines()
        .map(|line| {
            let fields = line
                .split(' ')
                .filter_map(|f| f.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (fields, line.to_string())
        })
        .collect()
}

/// How many times a node has run `command` since its start (`INFO commandstats`, which counts
/// the commands scripts call too); 0 if it never has.
pub fn command_calls(conn: &mut redis::Connection, command: &str) -> u64 {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(conn)
        .expect("INFO commandstats");
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
