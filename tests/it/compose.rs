//! `docker-compose.yml` cannot run here (no Docker engine), but Debian's docker-compose can
//! still parse and validate it, interpolation and all, and the server can check the settings
//! it gives each instance.

use crate::support::repo_path;
use std::collections::BTreeMap;
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

/// Each variant's instances get settings the server reads, with values it accepts and no
/// warning: `tictactoe check` with exactly the environment an instance's container has (the
/// image's `ENV`, then the service's, as `docker-compose config` renders it with every
/// default), and the Redis layout the variant is for.
#[test]
fn compose_files_give_the_instances_settings_the_server_accepts() {
    let known = settings_read_from_the_environment();
    let variants: [(&[&str], &str); 3] = [
        (&["docker-compose.yml"], "one Redis"),
        (
            &["docker-compose.yml", "docker-compose.cluster.yml"],
            "a Redis Cluster, 3 seed node(s)",
        ),
        (
            &["docker-compose.yml", "docker-compose.sentinel.yml"],
            "a replicated Redis found through 3 Sentinel(s)",
        ),
    ];
    for (files, layout) in variants {
        let services = rendered(files);
        let mut instances = 0;
        for (name, service) in services.as_object().expect("services") {
            // The instances are the services built from this repository's Dockerfile.
            if service.get("build").is_none() {
                continue;
            }
            instances += 1;
            let mut env: BTreeMap<String, String> =
                crate::dockerfile::image_env().into_iter().collect();
            for (key, value) in service["environment"].as_object().expect("environment") {
                env.insert(key.clone(), value.as_str().unwrap_or_default().to_owned());
            }
            for key in env.keys() {
                assert!(
                    known.contains(key) || key == "RUST_LOG",
                    "{files:?}: {name} sets {key}, which the server does not read"
                );
            }
            let out = Command::new(env!("CARGO_BIN_EXE_tictactoe"))
                .arg("check")
                .env_clear()
                .envs(&env)
                .output()
                .expect("run tictactoe check");
            let said = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "{files:?}: {name}'s settings are refused: {said}"
            );
            assert!(
                said.starts_with(&format!("settings ok: {layout}")) && !said.contains("warning"),
                "{files:?}: {name}: {said}"
            );
        }
        assert_eq!(
            instances, 3,
            "{files:?}: instances built from the Dockerfile"
        );
    }
}

/// The environment variables the server reads: every setting's `[env: NAME=]` in its help.
fn settings_read_from_the_environment() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_tictactoe"))
        .args(["serve", "--help"])
        .output()
        .expect("run tictactoe serve --help");
    let help = String::from_utf8_lossy(&out.stdout);
    let names: Vec<String> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split('=').next())
        .map(str::to_owned)
        .collect();
    assert!(names.len() > 30, "settings found in the help: {names:?}");
    names
}

/// The services of the compose files as docker-compose renders them (merged, defaults
/// interpolated from an empty environment), as JSON: docker-compose is Debian's Python
/// program, so Debian's Python with its YAML module is there whenever docker-compose is.
fn rendered(files: &[&str]) -> serde_json::Value {
    let mut compose = Command::new("docker-compose");
    for f in files {
        compose.args(["-f", f]);
    }
    let out = compose
        .arg("config")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(repo_path(""))
        .output()
        .expect("docker-compose (scripts/install-test-deps.sh installs it)");
    assert!(
        out.status.success(),
        "{files:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut python = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin)['services'], sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("Debian's python3, which docker-compose runs on");
    use std::io::Write;
    python
        .stdin
        .take()
        .expect("stdin")
        .write_all(&out.stdout)
        .expect("write the rendered file");
    let json = python.wait_with_output().expect("python3's output");
    assert!(json.status.success(), "YAML to JSON failed");
    serde_json::from_slice(&json.stdout).expect("the services as JSON")
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
