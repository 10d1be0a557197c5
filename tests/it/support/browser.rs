//! Runs a spec of `tests/browser/` with node (playwright-core driving Debian's headless
//! Chromium). Missing tools fail the test with what to install: a browser test that skips
//! itself would pass on exactly the machines where it checks nothing.

use super::topology::Topology;
use super::{TempDir, repo_path};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Longest a spec may run before it is killed, browser included.
const SPEC_TIMEOUT: Duration = Duration::from_secs(120);

/// Browsers are heavy and the machine has two cores: one spec at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "Chromium not found at {} (set CHROMIUM to another path): run scripts/install-test-deps.sh",
        path.display()
    );
    path
}

/// Fails at once, before any process starts, when a tool the specs need is missing.
pub fn check_tools() {
    chromium();
    check_node();
    super::nginx::nginx_bin();
}

fn check_node() {
    let out = std::process::Command::new("node").arg("--version").output();
    match out {
        Ok(o) if o.status.success() => {}
        _ => panic!("node is not installed (Node 20 or later): run scripts/install-test-deps.sh"),
    }
    let pw = repo_path("tests/browser/node_modules/playwright-core/package.json");
    assert!(
        pw.is_file(),
        "npm package playwright-core is missing from tests/browser/node_modules: \
         run scripts/install-test-deps.sh (it runs npm ci in tests/browser)"
    );
}

pub fn artifacts_dir() -> PathBuf {
    let dir = repo_path("tests/browser/artifacts");
    std::fs::create_dir_all(&dir).expect("tests/browser/artifacts");
    dir
}

/// Where a spec keeps its screenshot of each view and size (`<view>-<size>.png`), so that a
/// reader of the test output can look at the page as it was:
/// `<target dir>/browser-screenshots/<spec without .mjs>/`, emptied of an earlier run's PNGs.
pub fn screenshots_dir(spec: &str) -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp`, whatever CARGO_TARGET_DIR says.
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .to_path_buf();
    let dir = target
        .join("browser-screenshots")
        .join(spec.trim_end_matches(".mjs"));
    std::fs::create_dir_all(&dir).expect("create the screenshots dir");
    for entry in std::fs::read_dir(&dir)
        .expect("read the screenshots dir")
        .flatten()
    {
        if entry.path().extension().is_some_and(|e| e == "png") {
            std::fs::remove_file(entry.path()).expect("remove an old screenshot");
        }
    }
    dir
}

/// Runs `tests/browser/<spec>` against the topology and panics with node's output and every
/// process log unless it exits successfully.
pub async fn run_spec(spec: &str, topo: &Topology) {
    let chromium = chromium();
    check_node();
    let _turn = ONE_AT_A_TIME.lock().await;
    let pinned: Vec<String> = (0..topo.servers.len())
        .map(|i| topo.nginx.pinned_url(i))
        .collect();
    let instances: Vec<String> = topo
        .servers
        .iter()
        .map(|s| format!("{}={}", s.instance, s.pid()))
        .collect();
    // Files rather than pipes: a spec killed at the deadline still shows how far it got.
    let shots = screenshots_dir(spec);
    let logs = TempDir::new("node");
    let out_path = logs.0.join("stdout.log");
    let err_path = logs.0.join("stderr.log");
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(repo_path("tests/browser").join(spec))
        .current_dir(repo_path("tests/browser"))
        .env("TTT_URL", topo.nginx.url())
        .env("TTT_PINNED", pinned.join(","))
        .env("TTT_INSTANCES", instances.join(","))
        .env("TTT_ARTIFACTS", artifacts_dir())
        .env("TTT_SCREENSHOTS", &shots)
        .env("TTT_CHROMIUM", &chromium)
        .env(
            "TTT_TIMEOUT_MS",
            (SPEC_TIMEOUT.as_millis() - 5000).to_string(),
        )
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("node stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("node stderr file"))
        // Its own process group, so that Chromium goes too if node has to be killed.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("start node");
    let pgid = child.id().expect("node pid");
    let result = tokio::time::timeout(SPEC_TIMEOUT, child.wait()).await;
    // Whatever happened, nothing of this spec may outlive it.
    kill_group(pgid);
    let _ = child.wait().await;
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let mut stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let ok = match result {
        Ok(Ok(status)) => status.success(),
        Ok(Err(e)) => {
            stderr.push_str(&format!("\nwaiting for node failed: {e}"));
            false
        }
        Err(_) => {
            stderr.push_str(&format!(
                "\n{spec} did not finish within {SPEC_TIMEOUT:?} and was killed"
            ));
            false
        }
    };
    if !ok {
        panic!(
            "browser spec {spec} failed after {:.1} s (screenshots: {})\n--- node stdout ---\n{stdout}\n--- node stderr ---\n{stderr}\n{}",
            started.elapsed().as_secs_f64(),
            shots.display(),
            topo.logs()
        );
    }
    println!(
        "{spec} passed in {:.1} s (screenshots: {})\n{stdout}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
}

/// SIGKILL to a whole process group. Through bash's builtin `kill`: procps-ng 4.0.2's
/// `/bin/kill -KILL -PGID` misparses the negative id (`-999999` becomes `-9`), and a group id
/// read as `-1` kills every process the user may signal.
fn kill_group(pgid: u32) {
    assert!(pgid > 1, "refusing to signal process group {pgid}");
    let _ = std::process::Command::new("bash")
        .args(["-c", "kill -KILL -- \"-$1\" 2>/dev/null", "kill_group"])
        .arg(pgid.to_string())
        .status();
}
