//! Reads what Redis holds of the audited games at the end of a run: each game's version,
//! its whole log and its chat history (keys as in docs/redis.md), from one Redis, the
//! primary the Sentinels name, or a Cluster.

use crate::checker::history::{Logged, StoredGame};
use anyhow::Context as _;
use redis::aio::ConnectionLike;
use redis::streams::StreamRangeReply;
use std::collections::BTreeMap;
use std::time::Duration;
use tictactoe_protocol::ServerMsg;

/// Every call's bound: the read happens once faults are over, so a slow answer is a failure.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for the Sentinels to name a primary after the load.
const FAILOVER_WAIT: Duration = Duration::from_secs(60);

/// Where the audit reads Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `redis://HOST:PORT`
    Single(String),
    /// `sentinel://HOST:PORT,HOST:PORT/MASTER`
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
    /// `cluster://HOST:PORT,HOST:PORT`
    Cluster(Vec<String>),
}

impl std::str::FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Source, String> {
        let list = |l: &str| -> Vec<String> {
            l.split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect()
        };
        if let Some(rest) = s.strip_prefix("sentinel://") {
            let (addrs, master) = rest
                .split_once('/')
                .ok_or("sentinel://HOST:PORT,.../MASTER needs the master's name")?;
            let sentinels = list(addrs);
            if sentinels.is_empty() || master.is_empty() {
                return Err(format!("{s:?}: no Sentinel or no master name"));
            }
            Ok(Source::Sentinel {
                sentinels,
                master: master.to_string(),
            })
        } else if let Some(rest) = s.strip_prefix("cluster://") {
            let nodes = list(rest);
            if nodes.is_empty() {
                return Err(format!("{s:?}: no node"));
            }
            Ok(Source::Cluster(nodes))
        } else if s.starts_with("redis://") {
            Ok(Source::Single(s.to_string()))
        } else {
            Err(format!(
                "{s:?}: expected redis://, sentinel://HOSTS/MASTER or cluster://HOSTS"
            ))
        }
    }
}

/// Reads every game in `games`.
pub async fn read_games(
    source: &Source,
    prefix: &str,
    games: &[String],
) -> anyhow::Result<BTreeMap<String, StoredGame>> {
    match source {
        Source::Single(url) => {
            let client = redis::Client::open(url.as_str())?;
            let mut con = connect(&client).await?;
            read_all(&mut con, prefix, games).await
        }
        Source::Sentinel { sentinels, master } => {
            let url = primary_within(sentinels, master, FAILOVER_WAIT).await?;
            let client = redis::Client::open(url.as_str())?;
            let mut con = connect(&client).await?;
            read_all(&mut con, prefix, games).await
        }
        Source::Cluster(nodes) => {
            let urls: Vec<String> = nodes.iter().map(|n| format!("redis://{n}")).collect();
            let client = redis::cluster::ClusterClient::builder(urls)
                .response_timeout(TIMEOUT)
                .build()?;
            let mut con = tokio::time::timeout(TIMEOUT, client.get_async_connection())
                .await
                .context("connecting to the cluster timed out")??;
            read_all(&mut con, prefix, games).await
        }
    }
}

async fn connect(client: &redis::Client) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    // As long as the cluster's: redis-rs's own default gives up on a reply after 500 ms, and
    // a game's whole log read on a loaded machine can take longer.
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT));
    let con = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .context("connecting to Redis")?;
    Ok(con)
}

/// The primary, waiting up to `within` for one: a run can end in the middle of a failover, and
/// its games are still there to read once it is over (a failover that takes that long shows as
/// games stuck, which the checker judges).
async fn primary_within(
    sentinels: &[String],
    master: &str,
    within: Duration,
) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut told = false;
    loop {
        match primary(sentinels, master).await {
            Ok(url) => return Ok(url),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(e) => {
                if !told {
                    eprintln!("audit: waiting for a primary to read the games from ({e})");
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The node the Sentinels name primary and that says so itself.
async fn primary(sentinels: &[String], master: &str) -> anyhow::Result<String> {
    for s in sentinels {
        let Ok(client) = redis::Client::open(format!("redis://{s}")) else {
            continue;
        };
        let Ok(mut con) = connect(&client).await else {
            continue;
        };
        let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(master)
            .query_async(&mut con)
            .await
            .ok()
            .flatten();
        let Some((host, port)) = addr else { continue };
        let url = format!("redis://{host}:{port}");
        let client = redis::Client::open(url.as_str())?;
        if let Ok(mut node) = connect(&client).await {
            let role: Vec<redis::Value> = redis::cmd("ROLE")
                .query_async(&mut node)
                .await
                .unwrap_or_default();
            if matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master") {
                return Ok(url);
            }
        }
    }
    anyhow::bail!("no Sentinel of {sentinels:?} named a primary of {master} that says so")
}

async fn read_all<C: ConnectionLike + Send>(
    con: &mut C,
    prefix: &str,
    games: &[String],
) -> anyhow::Result<BTreeMap<String, StoredGame>> {
    let mut out = BTreeMap::new();
    for g in games {
        let stored = tokio::time::timeout(TIMEOUT, read_game(con, prefix, g))
            .await
            .with_context(|| format!("reading game {g} timed out"))??;
        out.insert(g.clone(), stored);
    }
    Ok(out)
}

/// One game's version, log and chat, in one pipeline (the keys share the game's slot).
async fn read_game<C: ConnectionLike + Send>(
    con: &mut C,
    prefix: &str,
    game: &str,
) -> anyhow::Result<StoredGame> {
    let key = format!("{prefix}game:{{{game}}}");
    let (version, log, chat): (Option<u64>, StreamRangeReply, StreamRangeReply) = redis::pipe()
        .cmd("HGET")
        .arg(&key)
        .arg("v")
        .cmd("XRANGE")
        .arg(format!("{key}:log"))
        .arg("-")
        .arg("+")
        .cmd("XRANGE")
        .arg(format!("{key}:chat"))
        .arg("-")
        .arg("+")
        .query_async(con)
        .await
        .with_context(|| format!("reading game {game}"))?;
    let mut stored = StoredGame {
        version,
        ..StoredGame::default()
    };
    for entry in &log.ids {
        let version = stream_id_part(&entry.id, 1)
            .with_context(|| format!("{game}: log entry id {:?}", entry.id))?;
        let json: String = entry.get("e").unwrap_or_default();
        stored.log.insert(version, logged(&json));
    }
    for entry in &chat.ids {
        let ms = stream_id_part(&entry.id, 0)
            .with_context(|| format!("{game}: chat entry id {:?}", entry.id))?;
        stored.chat.push((ms, entry.get("t").unwrap_or_default()));
    }
    Ok(stored)
}

/// Part `i` of a stream id `MS-SEQ`.
fn stream_id_part(id: &str, i: usize) -> Option<u64> {
    id.split('-').nth(i)?.parse().ok()
}

/// What the checker needs of one logged event.
pub fn logged(json: &str) -> Logged {
    match serde_json::from_str::<ServerMsg>(json) {
        Ok(ServerMsg::Moved { mark, cell, .. }) => Logged::Moved {
            mark,
            cell: cell.index() as u8,
        },
        Ok(ServerMsg::Conceded { mark, reason, .. }) => Logged::Conceded { mark, reason },
        Ok(ServerMsg::Aborted { .. }) => Logged::Aborted,
        _ => Logged::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tictactoe_rules::{EndReason, Mark};

    #[test]
    fn sources_parse_from_their_urls() {
        assert_eq!(
            "redis://127.0.0.1:6379".parse(),
            Ok(Source::Single("redis://127.0.0.1:6379".into()))
        );
        assert_eq!(
            "sentinel://127.0.0.1:1,127.0.0.1:2/ttt".parse(),
            Ok(Source::Sentinel {
                sentinels: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
                master: "ttt".into()
            })
        );
        assert_eq!(
            "cluster://127.0.0.1:7000".parse(),
            Ok(Source::Cluster(vec!["127.0.0.1:7000".into()]))
        );
        for bad in [
            "sentinel://127.0.0.1:1",
            "sentinel:///ttt",
            "cluster://",
            "http://x",
        ] {
            assert!(bad.parse::<Source>().is_err(), "{bad}");
        }
    }

    #[test]
    fn logged_events_keep_what_the_checker_compares() {
        let state = r#""state":{"board":"....X....","turn":"O","status":"playing","round":1,"players":{"X":"a","O":"b"},"result":null,"rematch":{"X":false,"O":false},"moves":[4],"score":{"X":0,"O":0,"draws":0}}"#;
        let moved = format!(
            r#"{{"type":"moved","game":"k3n8vq2xhd","version":3,"mark":"X","cell":4,{state}}}"#
        );
        assert_eq!(
            logged(&moved),
            Logged::Moved {
                mark: Mark::X,
                cell: 4
            }
        );
        let conceded = format!(
            r#"{{"type":"conceded","game":"k3n8vq2xhd","version":4,"mark":"O","reason":"forfeit",{state}}}"#
        );
        assert_eq!(
            logged(&conceded),
            Logged::Conceded {
                mark: Mark::O,
                reason: EndReason::Forfeit
            }
        );
        assert_eq!(logged("{}"), Logged::Other);
        assert_eq!(stream_id_part("0-17", 1), Some(17));
        assert_eq!(
            stream_id_part("1763900000123-0", 0),
            Some(1_763_900_000_123)
        );
    }
}
