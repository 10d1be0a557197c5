//! The chaos run's control file: the script that injects faults appends one command a line,
//! and the audit reads them as they come, timestamping each on its own clock, the clock of
//! every client record, so fault windows and histories line up.
//!
//! ```text
//! start                            begin the load (the instances are up)
//! begin KIND [TARGET] [cut=all|cut=INSTANCE]   a fault starts (cut: who loses Redis)
//! end KIND [TARGET]                the fault and its recovery are over
//! proxy NAME freeze|degrade|normal change a proxied link
//! storm                            drop a third of the clients at once; they reconnect
//! ```

use crate::checker::history::RedisCut;
use std::path::PathBuf;
use std::time::Duration;

/// How often the file is read for new lines.
const POLL: Duration = Duration::from_millis(50);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Start,
    Begin {
        kind: String,
        target: Option<String>,
        cut: RedisCut,
    },
    End {
        kind: String,
        target: Option<String>,
    },
    Proxy {
        name: String,
        to: ProxyMode,
    },
    Storm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    Freeze,
    Degrade,
    Normal,
}

/// Parses one line; blank lines and `#` comments are `Ok(None)`.
pub fn parse(line: &str) -> Result<Option<Command>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let bad = || format!("control: cannot read {line:?}");
    let cmd = match words.as_slice() {
        ["start"] => Command::Start,
        ["storm"] => Command::Storm,
        ["begin", kind, rest @ ..] => {
            let mut target = None;
            let mut cut = RedisCut::None;
            for w in rest {
                match w.strip_prefix("cut=") {
                    Some("all") => cut = RedisCut::All,
                    Some(i) if !i.is_empty() => cut = RedisCut::Instance(i.to_string()),
                    Some(_) => return Err(bad()),
                    None if target.is_none() => target = Some(w.to_string()),
                    None => return Err(bad()),
                }
            }
            Command::Begin {
                kind: kind.to_string(),
                target,
                cut,
            }
        }
        ["end", kind] => Command::End {
            kind: kind.to_string(),
            target: None,
        },
        ["end", kind, target] => Command::End {
            kind: kind.to_string(),
            target: Some(target.to_string()),
        },
        ["proxy", name, mode] => Command::Proxy {
            name: name.to_string(),
            to: match *mode {
                "freeze" => ProxyMode::Freeze,
                "degrade" => ProxyMode::Degrade,
                "normal" => ProxyMode::Normal,
                _ => return Err(bad()),
            },
        },
        _ => return Err(bad()),
    };
    Ok(Some(cmd))
}

/// Follows the file from its start, sending each command as its line is complete. A file
/// that does not exist yet is waited for.
pub async fn follow(path: PathBuf, tx: tokio::sync::mpsc::Sender<Command>) {
    let mut offset = 0usize;
    let mut pending = String::new();
    loop {
        // A few hundred bytes at most, read in microseconds: no blocking pool needed.
        if let Ok(all) = std::fs::read(&path)
            && all.len() > offset
        {
            {
                pending.push_str(&String::from_utf8_lossy(&all[offset..]));
                offset = all.len();
                while let Some(nl) = pending.find('\n') {
                    let line: String = pending.drain(..=nl).collect();
                    match parse(&line) {
                        Ok(Some(cmd)) => {
                            if tx.send(cmd).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => eprintln!("{e}"),
                    }
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_nonsense_does_not() {
        assert_eq!(parse("start"), Ok(Some(Command::Start)));
        assert_eq!(parse("  # note"), Ok(None));
        assert_eq!(
            parse("begin kill_primary redis-1 cut=all"),
            Ok(Some(Command::Begin {
                kind: "kill_primary".into(),
                target: Some("redis-1".into()),
                cut: RedisCut::All,
            }))
        );
        assert_eq!(
            parse("begin freeze_redis_link ttt-2 cut=ttt-2"),
            Ok(Some(Command::Begin {
                kind: "freeze_redis_link".into(),
                target: Some("ttt-2".into()),
                cut: RedisCut::Instance("ttt-2".into()),
            }))
        );
        assert_eq!(
            parse("end storm"),
            Ok(Some(Command::End {
                kind: "storm".into(),
                target: None
            }))
        );
        assert_eq!(
            parse("proxy path-3 degrade"),
            Ok(Some(Command::Proxy {
                name: "path-3".into(),
                to: ProxyMode::Degrade
            }))
        );
        for bad in [
            "stop",
            "begin",
            "begin k a b",
            "begin k cut=",
            "proxy p melt",
            "end",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_file_is_followed_line_by_line_as_it_grows() {
        let path = std::env::temp_dir().join(format!("ttt-control-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let follower = tokio::spawn(follow(path.clone(), tx));
        std::fs::write(&path, "start\nsto").unwrap();
        let within = Duration::from_secs(5);
        let first = tokio::time::timeout(within, rx.recv()).await.unwrap();
        assert_eq!(first, Some(Command::Start));
        std::fs::write(&path, "start\nstorm\n").unwrap();
        let second = tokio::time::timeout(within, rx.recv()).await.unwrap();
        assert_eq!(second, Some(Command::Storm));
        follower.abort();
        let _ = std::fs::remove_file(&path);
    }
}
