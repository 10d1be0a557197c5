//! `docs/protocol.md` is the protocol's one specification: every JSON example in it must be a
//! message the code accepts, in the direction it is marked, and must serialize back unchanged
//! (so no field in the document is silently ignored by the types).

use serde_json::Value;
use tictactoe_protocol::{ClientMsg, ServerMsg};

fn examples() -> Vec<(String, String)> {
    let path = crate::support::repo_path("docs/protocol.md");
    let doc = std::fs::read_to_string(path).expect("docs/protocol.md");
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in doc.lines() {
        match &mut current {
            None => {
                if let Some(info) = line.strip_prefix("```json") {
                    current = Some((info.trim().to_string(), String::new()));
                }
            }
            Some(_) if line.starts_with("```") => {
                out.extend(current.take());
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    out
}

#[test]
fn every_example_in_the_protocol_document_parses_and_round_trips() {
    let examples = examples();
    assert!(
        examples.len() > 30,
        "found only {} examples",
        examples.len()
    );
    let mut server_types = std::collections::BTreeSet::new();
    let mut client_types = std::collections::BTreeSet::new();
    for (dir, body) in examples {
        let original: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("example is not JSON ({e}):\n{body}"));
        let back = match dir.as_str() {
            "client" => {
                let m: ClientMsg = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("not a client message ({e}):\n{body}"));
                client_types.insert(original["type"].as_str().unwrap().to_string());
                serde_json::to_value(&m).unwrap()
            }
            "server" => {
                let m: ServerMsg = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("not a server message ({e}):\n{body}"));
                server_types.insert(original["type"].as_str().unwrap().to_string());
                serde_json::to_value(&m).unwrap()
            }
            other => panic!("json block without a direction ({other:?}):\n{body}"),
        };
        assert_eq!(back, original, "the types do not reproduce the example");
    }
    // Every client message type is documented by an example.
    for t in tictactoe_protocol::CLIENT_TYPES {
        assert!(
            client_types.contains(*t),
            "no example of client message {t}"
        );
    }
    let direct = [
        "welcome",
        "snapshot",
        "ack",
        "error",
        "pong",
        "chat_history",
        "lobby",
        "match_found",
        "lobby_changed",
        "profile",
        "recovered",
        "leaderboard",
    ];
    for t in direct.iter().chain(tictactoe_protocol::CHANNEL_TYPES) {
        assert!(
            server_types.contains(*t),
            "no example of server message {t}"
        );
    }
}

/// Every setting (its environment variable) appears in the README's tables, with its default.
#[test]
fn every_setting_is_documented_in_the_readme_with_its_default() {
    use clap::Args;
    let readme = std::fs::read_to_string(crate::support::repo_path("README.md")).unwrap();
    let cmd = tictactoe::config::Config::augment_args(clap::Command::new("tictactoe"));
    let mut checked = 0;
    for arg in cmd.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let env = env.to_string_lossy();
        let row = readme
            .lines()
            .find(|l| l.starts_with('|') && l.contains(&format!("`{env}`")))
            .unwrap_or_else(|| panic!("{env} is not in the README's tables"));
        for default in arg.get_default_values() {
            let d = default.to_string_lossy();
            if !d.is_empty() {
                assert!(
                    row.contains(&format!("`{d}`")),
                    "{env}: default {d} missing in: {row}"
                );
            }
        }
        checked += 1;
    }
    assert!(checked > 30, "only {checked} settings found");
}
