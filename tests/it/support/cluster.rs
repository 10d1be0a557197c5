//! A local Redis Cluster of three masters (with replicas if asked) on free ports, killed on
//! drop: nodes stop, start and die like an operator would see it, and a slot moves to another
//! master like `--cluster reshard`.

use super::redis::{redis_answers, redis_server_bin};
use super::{TempDir, WAIT, free_port};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `redis-cli --cluster create` may take: a second or two when it works.
const CREATE_WITHIN: Duration = Duration::from_secs(30);

/// A local Redis Cluster of three masters (no replicas) on free ports, killed on drop.
/// `cluster-require-full-coverage no`: while one master is down, the other shards' games go on.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    /// Each node's cluster bus port (by default port + 10000, which may not exist).
    bus_ports: Vec<u16>,
    children: Vec<Option<Child>>,
    dir: TempDir,
    /// Every node's `requirepass` (and `masterauth`), when the cluster has one.
    password: Option<String>,
    /// With TLS: the directory of `server.crt`, `server.key` and `ca.crt`, and each node's
    /// TLS port. The plain ports stay open for the harness.
    tls: Option<(PathBuf, Vec<u16>)>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        RedisCluster::start_with_replicas(0)
    }

    /// Three masters with `replicas` replicas each (`redis-cli --cluster create` pairs them),
    /// returned once every replica is in sync with its master.
    pub fn start_with_replicas(replicas: usize) -> RedisCluster {
        RedisCluster::start_with(replicas, None)
    }

    /// Three masters whose every node requires `password`, as a production cluster has it.
    pub fn start_with_password(password: &str) -> RedisCluster {
        RedisCluster::start_with(0, Some(password))
    }

    /// Three masters that also speak TLS on ports of their own, between themselves too
    /// (`tls-cluster yes`, so that a client on a TLS port is told the nodes' TLS ports), with
    /// the certificates in `cert_dir` (see [`super::tls::make_certificates`]).
    pub fn start_with_tls(cert_dir: &std::path::Path) -> RedisCluster {
        RedisCluster::start_with_options(0, None, Some(cert_dir))
    }

    fn start_with(replicas: usize, password: Option<&str>) -> RedisCluster {
        RedisCluster::start_with_options(replicas, password, None)
    }

    fn start_with_options(
        replicas: usize,
        password: Option<&str>,
        tls: Option<&std::path::Path>,
    ) -> RedisCluster {
        const ATTEMPTS: u32 = 3;
        for attempt in 1..=ATTEMPTS {
            let c = RedisCluster::spawn_nodes(3 * (1 + replicas), password, tls);
            match c.create(replicas) {
                Ok(()) => {
                    c.wait_ok();
                    c.wait_replicas_in_sync();
                    c.replicas_fsync_every_second();
                    return c;
                }
                // Dropped: its nodes die with it, and the next attempt has fresh ports and a
                // fresh directory.
                Err(why) if attempt < ATTEMPTS => {
                    eprintln!("cluster create, attempt {attempt}: {why}; starting again");
                }
                Err(why) => panic!("cluster create failed {ATTEMPTS} times, the last: {why}"),
            }
        }
        unreachable!()
    }

    /// `n` cluster nodes on free ports, not yet joined.
    fn spawn_nodes(
        n: usize,
        password: Option<&str>,
        tls: Option<&std::path::Path>,
    ) -> RedisCluster {
        let mut c = RedisCluster {
            children: (0..n).map(|_| None).collect(),
            ports: (0..n).map(|_| free_port()).collect(),
            bus_ports: (0..n).map(|_| free_port()).collect(),
            dir: TempDir::new("cluster"),
            password: password.map(str::to_owned),
            tls: tls.map(|dir| (dir.to_path_buf(), (0..n).map(|_| free_port()).collect())),
        };
        for i in 0..n {
            // A node whose port was taken meanwhile exits at once: try fresh ports.
            let mut attempts = 0;
            while !c.try_spawn(i) {
                attempts += 1;
                assert!(attempts < 5, "cluster node {i} would not start");
                c.ports[i] = free_port();
                c.bus_ports[i] = free_port();
                if let Some((_, tls_ports)) = c.tls.as_mut() {
                    tls_ports[i] = free_port();
                }
            }
        }
        c
    }

    /// Joins the nodes and assigns the slots. `redis-cli --cluster create` waits without end
    /// for the nodes to agree, and on a loaded machine one can drop the others' handshakes
    /// (`cluster-node-timeout` 1 s) and never hear of them again: seen once in a full test
    /// run, where it hung the suite. So it gets [`CREATE_WITHIN`], then is stopped.
    fn create(&self, replicas: usize) -> Result<(), String> {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let mut cli = Command::new("redis-cli");
        if let Some(p) = &self.password {
            cli.args(["-a", p, "--no-auth-warning"]);
        }
        let mut cli = cli
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("redis-cli (installed with redis-server) creates the cluster");
        let deadline = Instant::now() + CREATE_WITHIN;
        let done = loop {
            if cli.try_wait().expect("redis-cli's status").is_some() {
                break true;
            }
            if Instant::now() > deadline {
                let _ = cli.kill();
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = cli.wait_with_output().expect("redis-cli's output");
        let said = || {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            text.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        };
        match (done, out.status.success()) {
            (true, true) => Ok(()),
            (true, false) => Err(format!("redis-cli failed: {}", said())),
            (false, _) => Err(format!("no join within {CREATE_WITHIN:?}: {}", said())),
        }
    }

    /// Waits until every replica's link to its master is up and it has caught up: a replica
    /// that never synced refuses to take over.
    pub fn wait_replicas_in_sync(&self) {
        let replication = |i: usize| -> Option<String> {
            let url = self.url_of(self.ports[i]);
            redis::Client::open(url)
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                .and_then(|mut c| redis::cmd("INFO").arg("replication").query(&mut c))
                .ok()
        };
        let field = |info: &str, name: &str| -> Option<String> {
            info.lines().find_map(|l| {
                l.strip_prefix(&format!("{name}:"))
                    .map(|v| v.trim().to_string())
            })
        };
        let deadline = Instant::now() + WAIT;
        'wait: loop {
            assert!(Instant::now() < deadline, "replicas never caught up");
            for i in (0..self.ports.len()).filter(|i| self.children[*i].is_some()) {
                let Some(info) = replication(i) else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue 'wait;
                };
                if field(&info, "role").as_deref() != Some("slave") {
                    continue;
                }
                let master_port: Option<u16> =
                    field(&info, "master_port").and_then(|p| p.parse().ok());
                let master_offset = master_port
                    .and_then(|p| self.ports.iter().position(|q| *q == p))
                    .and_then(replication)
                    .and_then(|m| field(&m, "master_repl_offset"))
                    .and_then(|o| o.parse::<u64>().ok());
                let offset = field(&info, "slave_repl_offset").and_then(|o| o.parse::<u64>().ok());
                let up = field(&info, "master_link_status").as_deref() == Some("up");
                if !up || offset.is_none() || offset < master_offset {
                    std::thread::sleep(Duration::from_millis(50));
                    continue 'wait;
                }
            }
            return;
        }
    }

    /// Every live replica writes its append-only file with `appendfsync everysec`, as
    /// `RedisServer`'s replicas and the Sentinel set's: with `always`, a replica answers
    /// its master's `GETACK` only after an fsync, which on a busy machine (the whole suite at
    /// once) can hold a WAIT up for longer than it lasts. Masters keep `always`.
    pub fn replicas_fsync_every_second(&self) {
        for i in (0..self.ports.len()).filter(|i| self.children[*i].is_some()) {
            let mut conn = self.conn(i);
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut conn)
                .expect("INFO replication");
            if info.lines().any(|l| l.trim() == "role:slave") {
                let _: () = redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("appendfsync")
                    .arg("everysec")
                    .query(&mut conn)
                    .expect("CONFIG SET appendfsync");
            }
        }
    }

    /// `kill -9` of one node.
    pub fn kill9_node(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until the slot of `key` is served by a live master other than `old` (a replica
    /// took over), as every live node sees it; returns that node.
    pub fn wait_promoted(&self, key: &str, old: usize) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            let owners: Vec<Option<usize>> = (0..self.ports.len())
                .filter(|i| self.children[*i].is_some())
                .map(|i| self.owner_as_seen_by(i, key))
                .collect();
            if let Some(Some(new)) = owners.first()
                && *new != old
                && owners.iter().all(|o| *o == Some(*new))
            {
                return *new;
            }
            assert!(
                Instant::now() < deadline,
                "no replica took over from node {old}: {owners:?}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.0.join(format!("node{i}"))
    }

    fn spawn(&mut self, i: usize) {
        assert!(
            self.try_spawn(i),
            "cluster node {} did not start",
            self.ports[i]
        );
    }

    /// Starts node `i`; false if it exited at once (its port was taken).
    fn try_spawn(&mut self, i: usize) -> bool {
        let dir = self.node_dir(i);
        std::fs::create_dir_all(&dir).expect("node dir");
        let port = self.ports[i];
        let child = Command::new(redis_server_bin())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-port", &self.bus_ports[i].to_string()])
            .args(["--cluster-node-timeout", "1000"])
            .args(["--cluster-require-full-coverage", "no"])
            .args(["--repl-diskless-sync-delay", "0"])
            .args(
                self.password
                    .iter()
                    .flat_map(|p| ["--requirepass", p.as_str(), "--masterauth", p.as_str()]),
            )
            .args(self.tls_args(i))
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        self.children[i] = Some(child);
        let deadline = Instant::now() + WAIT;
        let url = self.url_of(port);
        loop {
            if redis_answers(&url) {
                return true;
            }
            if let Some(c) = self.children[i].as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                self.children[i] = None;
                return false;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
                panic!("cluster node {port} did not start:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every node reports the cluster as healthy.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + WAIT;
        'wait: loop {
            assert!(
                Instant::now() < deadline,
                "the cluster never became healthy"
            );
            for port in &self.ports {
                let ok = redis::Client::open(self.url_of(*port))
                    .and_then(|c| c.get_connection())
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                    .is_ok_and(|info| info.contains("cluster_state:ok"));
                if !ok {
                    std::thread::sleep(Duration::from_millis(50));
                    continue 'wait;
                }
            }
            return;
        }
    }

    fn tls_args(&self, i: usize) -> Vec<String> {
        let Some((dir, tls_ports)) = &self.tls else {
            return Vec::new();
        };
        let mut args: Vec<String> = [
            "--tls-port",
            &tls_ports[i].to_string(),
            "--tls-cluster",
            "yes",
        ]
        .map(String::from)
        .into();
        args.extend(super::tls::server_args(dir));
        args
    }

    /// The nodes' `rediss://` URLs, on their TLS ports (a cluster started with TLS).
    pub fn tls_urls(&self) -> Vec<String> {
        let (_, tls_ports) = self.tls.as_ref().expect("a cluster started with TLS");
        tls_ports
            .iter()
            .map(|p| format!("rediss://127.0.0.1:{p}/"))
            .collect()
    }

    /// The nodes' URLs, with the password when the cluster has one.
    pub fn urls(&self) -> Vec<String> {
        self.ports.iter().map(|p| self.url_of(*p)).collect()
    }

    fn url_of(&self, port: u16) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{port}/"),
            None => format!("redis://127.0.0.1:{port}/"),
        }
    }

    /// The node (index) serving the slot of `key`.
    pub fn node_of(&self, key: &str) -> usize {
        let live = (0..self.ports.len())
            .find(|i| self.children[*i].is_some())
            .expect("a live node");
        self.owner_as_seen_by(live, key).expect("slot is served")
    }

    /// The node serving the slot of `key` according to node `by`, if it answers.
    fn owner_as_seen_by(&self, by: usize, key: &str) -> Option<usize> {
        let mut c = redis::Client::open(self.urls()[by].as_str())
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut c)
            .ok()?;
        let slots: Vec<(u16, u16, (String, u16))> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query::<Vec<redis::Value>>(&mut c)
            .ok()?
            .into_iter()
            .filter_map(|v| {
                let redis::Value::Array(parts) = v else {
                    return None;
                };
                let start: u16 = redis::from_redis_value(parts[0].clone()).ok()?;
                let end: u16 = redis::from_redis_value(parts[1].clone()).ok()?;
                let redis::Value::Array(node) = &parts[2] else {
                    return None;
                };
                let port: u16 = redis::from_redis_value(node[1].clone()).ok()?;
                Some((start, end, (String::new(), port)))
            })
            .collect();
        let port = slots
            .iter()
            .find(|(s, e, _)| (*s..=*e).contains(&slot))
            .map(|(_, _, (_, p))| *p)?;
        self.ports.iter().position(|p| *p == port)
    }

    pub fn conn(&self, node: usize) -> redis::Connection {
        redis::Client::open(self.urls()[node].as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Stops one master the way an operator would (SIGTERM: it finishes its AOF).
    pub fn stop_node(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// Starts a stopped master again with its data and cluster config; waits until the
    /// cluster is healthy again.
    pub fn start_node(&mut self, i: usize) {
        self.spawn(i);
        self.wait_ok();
    }

    fn node_id(&self, node: usize) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.conn(node))
            .unwrap()
    }

    /// Moves the slot of `key` (and its keys) from its owner to another master, the way
    /// `redis-cli --cluster reshard` does. Returns the new owner.
    pub fn migrate_slot_of(&self, key: &str) -> usize {
        let from = self.node_of(key);
        let to = (from + 1) % self.ports.len();
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.conn(from))
            .unwrap();
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("IMPORTING")
            .arg(&from_id)
            .query(&mut self.conn(to))
            .unwrap();
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("MIGRATING")
            .arg(&to_id)
            .query(&mut self.conn(from))
            .unwrap();
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query(&mut self.conn(from))
                .unwrap();
            if keys.is_empty() {
                break;
            }
            let _: () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.ports[to])
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query(&mut self.conn(from))
                .unwrap();
        }
        for node in 0..self.ports.len() {
            let _: () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&to_id)
                .query(&mut self.conn(node))
                .unwrap();
        }
        to
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().filter_map(Option::take) {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
