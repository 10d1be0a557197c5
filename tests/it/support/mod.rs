//! The test harness, one module per thing it starts: Redis, a Redis Cluster, a replicated
//! Redis with Sentinels, server instances (in this process or as processes), nginx and the
//! whole topology, browsers, clients, and a TCP proxy that can hang the links through it.
//! Here: what they all share (the wait bound, free ports, scratch directories, repo paths).

pub mod backend;
pub mod browser;
pub mod client;
pub mod cluster;
pub mod http;
pub mod instances;
pub mod nginx;
pub mod processes;
pub mod proxy;
pub mod redis;
pub mod sentinel;
pub mod tls;
pub mod topology;

use std::collections::BTreeSet;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

/// How often a wait on a condition looks again.
const POLL: Duration = Duration::from_millis(25);

/// Polls `f` until it returns `Some`, up to [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// The ports [`free_port`] hands out; `scripts/topology.sh`, run by a test, takes its own
/// from `PORTS_END` up to the kernel's ephemeral range.
const PORTS_START: u16 = 20_000;
pub const PORTS_END: u16 = 30_000;

/// A port nobody listens on right now, for a server the test starts. Taken below the
/// kernel's ephemeral range (32768 and up), where the tests' own client sockets would
/// otherwise race the server for it; and never handed out twice in this process, or two
/// tests running at once could both find it free before either server has bound it.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let span = u64::from(PORTS_END - PORTS_START);
    loop {
        let p = PORTS_START + (uuid::Uuid::new_v4().as_u64_pair().0 % span) as u16;
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !handed_out.contains(&p) && StdListener::bind(("127.0.0.1", p)).is_ok() {
            handed_out.insert(p);
            return p;
        }
    }
}

/// A path in the repository (the server package is `server/`, one level down).
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server package is inside the repository")
        .join(rel)
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ttt-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // TTT_KEEP_TEST_DIRS keeps the data and logs of the processes a test started, to
        // read after a failure that a test's own message does not explain.
        if std::env::var_os("TTT_KEEP_TEST_DIRS").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
