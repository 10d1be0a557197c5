//! `docker-compose.yml` cannot run here (no Docker engine), but Debian's docker-compose can
//! still parse and validate it, interpolation and all.

use crate::support::repo_path;
use std::process::Command;

#[test]
fn compose_file_is_valid() {
    validate(&["-f", "docker-compose.yml"]);
}

/// The Redis Cluster variant: the base file with its override.
#[test]
fn compose_cluster_override_is_valid() {
    validate(&[
        "-f",
        "docker-compose.yml",
        "-f",
        "docker-compose.cluster.yml",
    ]);
}

/// The Sentinel variant (a primary, a replica, three Sentinels): the base file with its override.
#[test]
fn compose_sentinel_override_is_valid() {
    validate(&[
        "-f",
        "docker-compose.yml",
        "-f",
        "docker-compose.sentinel.yml",
    ]);
}

fn validate(files: &[&str]) {
    let out = Command::new("docker-compose")
        .args(files)
        .args(["config", "-q"])
        .current_dir(repo_path(""))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "docker-compose is not installed ({e}): run scripts/install-test-deps.sh \
                 (Debian package docker-compose) to validate docker-compose.yml"
            )
        });
    assert!(
        out.status.success(),
        "{files:?} is invalid:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
