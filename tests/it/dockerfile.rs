//! The `Dockerfile` cannot be built here (no Docker engine), and it once could not be built
//! anywhere: a workspace member added later had no manifest in its dependency layer, so cargo
//! could not load the workspace. These tests lay out what each of its `COPY` instructions
//! would put in the image, honouring `.dockerignore`, and ask cargo whether that is a
//! workspace it can build the binary from; and they run its health check against a real
//! instance.

use crate::support::http::http_get;
use crate::support::instances::{Instance, test_config};
use crate::support::redis::RedisServer;
use crate::support::{TempDir, eventually, repo_path};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The dependency layer: the manifests copied before the first `cargo build`, with the
/// placeholder sources that build creates, must hold every member of the repository's
/// workspace, or cargo stops before it builds anything.
#[test]
fn dockerfile_dependency_layer_has_every_member() {
    let stage = build_stage();
    let first_build = stage
        .iter()
        .position(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("the build stage runs cargo build");
    let image = TempDir::new("dockerfile-deps");
    let workdir = lay_out(&stage[..first_build], &image.0);
    // The placeholders: what that RUN does before it calls cargo, run here in the laid-out
    // directory (only relative paths, so nothing outside it is touched).
    let (placeholders, _) = stage[first_build]
        .args
        .split_once("&& cargo build")
        .expect("the placeholders come before cargo build, joined by &&");
    for word in placeholders.split_whitespace() {
        assert!(
            !word.starts_with('/') && !word.contains(".."),
            "{word}: the placeholders must stay inside the working directory"
        );
    }
    let made = Command::new("sh")
        .args(["-c", placeholders])
        .current_dir(&workdir)
        .status()
        .expect("run the placeholder commands");
    assert!(made.success(), "{placeholders}: {made}");
    let wanted = workspace_members(&repo_path(""));
    for member in &wanted {
        assert!(
            workdir.join(member).join("Cargo.toml").is_file(),
            "the Dockerfile's dependency layer does not copy {member}/Cargo.toml"
        );
    }
    // Loading the workspace is what failed when a member's manifest was missing.
    let mut found = workspace_members(&workdir);
    let mut wanted = wanted;
    found.sort();
    wanted.sort();
    assert_eq!(found, wanted, "the dependency layer's workspace");
}

/// The sources: everything the build stage copies must be a workspace whose libraries and
/// binary have their sources, including every file they `include_str!`.
#[test]
fn dockerfile_build_stage_has_every_source_of_the_binary() {
    let stage = build_stage();
    let image = TempDir::new("dockerfile-src");
    let workdir = lay_out(&stage, &image.0);
    let metadata = metadata(&workdir);
    let mut checked = 0;
    for package in metadata["packages"].as_array().expect("packages") {
        for target in package["targets"].as_array().expect("targets") {
            let kinds: Vec<&str> = target["kind"]
                .as_array()
                .expect("kind")
                .iter()
                .filter_map(|k| k.as_str())
                .collect();
            if !kinds.iter().any(|k| matches!(*k, "lib" | "bin")) {
                continue;
            }
            let src = Path::new(target["src_path"].as_str().expect("src_path"));
            assert!(src.is_file(), "the image has no {}", src.display());
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "only {checked} library and binary targets found"
    );
    let mut missing = Vec::new();
    for file in rust_files(&workdir.join("server")) {
        let text = std::fs::read_to_string(&file).expect("read source");
        for included in included_paths(&text) {
            let target = file.parent().expect("parent").join(&included);
            if !target.is_file() {
                missing.push(format!("{} includes {included}", file.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in the image: {}",
        missing.join("; ")
    );
}

/// The runtime stage copies the binary from where the build stage left it, and the page.
#[test]
fn dockerfile_runtime_stage_takes_the_built_binary_and_the_page() {
    let build_workdir = build_stage()
        .iter()
        .rev()
        .find(|i| i.keyword == "WORKDIR")
        .map(|i| i.args.clone())
        .expect("the build stage sets a WORKDIR");
    let runtime = runtime_stage();
    let from_build = runtime
        .iter()
        .find(|i| i.keyword == "COPY" && i.args.starts_with("--from=build "))
        .expect("the runtime stage copies from the build stage");
    let words: Vec<&str> = from_build.args.split_whitespace().collect();
    assert_eq!(
        words[1],
        format!("{build_workdir}/target/release/tictactoe"),
        "the runtime stage copies the binary from somewhere cargo does not put it"
    );
    let entrypoint = runtime
        .iter()
        .find(|i| i.keyword == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    assert!(
        entrypoint.args.contains(words[2]),
        "ENTRYPOINT {} is not the copied binary {}",
        entrypoint.args,
        words[2]
    );
    let image = TempDir::new("dockerfile-runtime");
    let local: Vec<Instruction> = runtime
        .iter()
        .filter(|i| i.keyword == "COPY" && !i.args.starts_with("--from"))
        .cloned()
        .collect();
    lay_out(&local, &image.0);
    let page = image.0.join("srv/tictactoe/web/index.html");
    assert!(page.is_file(), "the image has no {}", page.display());
}

/// The environment the runtime image sets (its `ENV` instructions), name and value.
pub fn image_env() -> Vec<(String, String)> {
    let mut env = Vec::new();
    for i in runtime_stage().iter().filter(|i| i.keyword == "ENV") {
        for pair in i.args.split_whitespace() {
            let (name, value) = pair
                .split_once('=')
                .expect("ENV in the NAME=value form, without spaces in values");
            env.push((name.to_owned(), value.to_owned()));
        }
    }
    assert!(!env.is_empty(), "the runtime image sets no ENV");
    env
}

/// The image's `HEALTHCHECK`, run as Docker runs it (its `CMD` array) against a real
/// instance on the port it listens on in the image: it passes while `/readyz` is 200 and
/// fails once the instance has lost Redis, so Docker's health (which nginx's start waits for)
/// says what it means.
#[tokio::test]
async fn the_images_health_check_passes_when_ready_and_fails_without_redis() {
    let mut redis = RedisServer::start();
    let instance = Instance::start(test_config(Some(&redis))).await;
    let port = instance.addr.port();
    assert!(
        health_check(port).await,
        "the health check fails on a ready instance"
    );
    redis.stop();
    eventually("/readyz to stop answering 200", || async {
        (!matches!(http_get(instance.addr, "/readyz").await, Ok((200, _)))).then_some(())
    })
    .await;
    assert!(
        !health_check(port).await,
        "the health check passes on an instance without Redis"
    );
}

/// Runs the `HEALTHCHECK` command with the image's port replaced by `port`; says whether it
/// passed.
async fn health_check(port: u16) -> bool {
    let line = instructions()
        .into_iter()
        .find(|i| i.keyword == "HEALTHCHECK")
        .expect("the image has a HEALTHCHECK");
    let (_, array) = line
        .args
        .split_once("CMD ")
        .expect("HEALTHCHECK ... CMD [...]");
    let argv: Vec<String> = serde_json::from_str(array).expect("CMD in the exec (JSON) form");
    let listen = image_env()
        .into_iter()
        .find(|(name, _)| name == "LISTEN_ADDR")
        .map(|(_, value)| value)
        .expect("the image sets LISTEN_ADDR");
    let image_port = listen.rsplit(':').next().expect("LISTEN_ADDR has a port");
    let local = format!("127.0.0.1/{image_port}");
    let argv: Vec<String> = argv
        .into_iter()
        .map(|a| {
            if a.contains(&local) {
                a.replace(&local, &format!("127.0.0.1/{port}"))
            } else {
                a
            }
        })
        .collect();
    assert!(
        argv.iter()
            .any(|a| a.contains(&format!("127.0.0.1/{port}"))),
        "the health check does not ask the port the image listens on ({image_port}): {argv:?}"
    );
    let status = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .status(),
    )
    .await
    .expect("the health check ends (Docker gives it 3 s)")
    .expect("run the health check");
    status.success()
}

#[derive(Clone, Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The Dockerfile's instructions, continuation lines joined and comments dropped.
fn instructions() -> Vec<Instruction> {
    let text = std::fs::read_to_string(repo_path("Dockerfile")).expect("read the Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, args) = current
            .split_once(char::is_whitespace)
            .expect("instruction");
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.split_whitespace().collect::<Vec<_>>().join(" "),
        });
        current.clear();
    }
    out
}

/// The instructions of the stage named `build`, after its FROM.
fn build_stage() -> Vec<Instruction> {
    after_build_from()
        .take_while(|i| i.keyword != "FROM")
        .collect()
}

/// The stage after the build stage (the runtime image), its FROM included.
fn runtime_stage() -> Vec<Instruction> {
    after_build_from()
        .skip_while(|i| i.keyword != "FROM")
        .collect()
}

fn after_build_from() -> impl Iterator<Item = Instruction> {
    instructions()
        .into_iter()
        .skip_while(|i| !(i.keyword == "FROM" && i.args.contains(" AS build")))
        .skip(1)
}

/// Plays the `WORKDIR` and local `COPY` instructions into `root`, standing for the image's
/// `/`; returns the last working directory.
fn lay_out(stage: &[Instruction], root: &Path) -> PathBuf {
    let ignored = dockerignore();
    let mut workdir = PathBuf::from("/");
    for i in stage {
        match i.keyword.as_str() {
            "WORKDIR" => workdir = workdir.join(&i.args),
            "COPY" => {
                let words: Vec<&str> = i.args.split_whitespace().collect();
                assert!(
                    !words.iter().any(|w| w.starts_with("--from")),
                    "only local COPYs are laid out"
                );
                let words: Vec<&str> = words.into_iter().filter(|w| !w.starts_with("--")).collect();
                let (dest, sources) = words.split_last().expect("COPY needs a destination");
                let dest_dir = dest.ends_with('/') || sources.len() > 1;
                let dest = root.join(workdir.join(dest).strip_prefix("/").expect("absolute"));
                for source in sources {
                    let from = repo_path(source);
                    assert!(from.exists(), "COPY {source}: not in the repository");
                    if from.is_dir() {
                        copy_tree(&from, &dest, source, &ignored);
                    } else {
                        let to = if dest_dir {
                            dest.join(from.file_name().expect("file name"))
                        } else {
                            dest.clone()
                        };
                        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
                        std::fs::copy(&from, &to).expect("copy");
                    }
                }
            }
            _ => {}
        }
    }
    root.join(workdir.strip_prefix("/").expect("absolute"))
}

/// Copies a directory of the build context, leaving out what `.dockerignore` leaves out.
fn copy_tree(from: &Path, to: &Path, context_path: &str, ignored: &[String]) {
    if is_ignored(context_path, ignored) {
        return;
    }
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let inner = format!("{}/{name}", context_path.trim_end_matches('/'));
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &to.join(&name), &inner, ignored);
        } else if !is_ignored(&inner, ignored) {
            std::fs::copy(entry.path(), to.join(&name)).expect("copy");
        }
    }
}

/// The patterns of `.dockerignore` this repository uses: paths from the context's root, and
/// `**/name` for a name anywhere.
fn dockerignore() -> Vec<String> {
    std::fs::read_to_string(repo_path(".dockerignore"))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_matches('/').to_owned())
        .collect()
}

fn is_ignored(context_path: &str, ignored: &[String]) -> bool {
    let path = context_path.trim_start_matches("./").trim_end_matches('/');
    ignored
        .iter()
        .any(|pattern| match pattern.strip_prefix("**/") {
            Some(name) => path.split('/').any(|part| part == name),
            None => path == pattern || path.starts_with(&format!("{pattern}/")),
        })
}

fn metadata(dir: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(dir)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo cannot load the workspace in {}:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON")
}

/// The directories of the workspace's members, relative to its root.
fn workspace_members(dir: &Path) -> Vec<String> {
    let metadata = metadata(dir);
    let root = PathBuf::from(metadata["workspace_root"].as_str().expect("workspace_root"));
    let members: Vec<String> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let manifest = Path::new(p["manifest_path"].as_str().expect("manifest_path"));
            manifest
                .parent()
                .expect("package dir")
                .strip_prefix(&root)
                .expect("a member inside the workspace")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(members.len() >= 4, "members: {members:?}");
    members
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The literal paths of `include_str!` and `include_bytes!` in a source file.
fn included_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for macro_name in ["include_str!(\"", "include_bytes!(\""] {
        let mut rest = text;
        while let Some(at) = rest.find(macro_name) {
            rest = &rest[at + macro_name.len()..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_owned());
            }
        }
    }
    out
}

#[test]
fn dockerignore_patterns_match_as_docker_matches_them() {
    let ignored = vec!["target".to_owned(), "**/node_modules".to_owned()];
    assert!(is_ignored("target", &ignored));
    assert!(is_ignored("target/release/x", &ignored));
    assert!(is_ignored("tests/browser/node_modules/a", &ignored));
    assert!(!is_ignored("server/src/target.rs", &ignored));
    assert!(!is_ignored("targets", &ignored));
}

#[test]
fn included_paths_are_read_from_both_macros() {
    let text = r#"const A: &str = include_str!("../a.lua"); let b = include_bytes!("b.bin");"#;
    assert_eq!(included_paths(text), ["../a.lua", "b.bin"]);
}
