//! `tictactoe monitor`: follows games on Redis and prints moves, boards, chat and presence
//! as they happen, for operators who would rather not read raw JSON.
//!
//! Unlike an instance, the monitor may pattern-subscribe to every game: it is one operator
//! tool, not one subscriber per game per instance.

use clap::Args;
use futures_util::StreamExt;
use std::time::Duration;
use tictactoe_protocol::ServerMsg;
use tictactoe_protocol::backoff::Backoff;
use tictactoe_protocol::channels::Channels;
use tictactoe_rules::{Board, Cell, EndReason, GameState, Mark, Status};

#[derive(Args, Clone, Debug)]
pub struct MonitorArgs {
    /// Redis to watch.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Key prefix of the deployment.
    #[arg(long, env = "KEY_PREFIX", default_value = "ttt:")]
    pub key_prefix: String,
    /// Follow one game only.
    #[arg(long)]
    pub game: Option<String>,
    /// Also print the lobby channel (games opening and filling, lobby chat).
    #[arg(long)]
    pub lobby: bool,
    /// Redis Cluster seed nodes, comma separated (instead of --redis-url). Game channels are
    /// sharded there and sharded pub/sub has no patterns: give --game and/or --lobby.
    #[arg(long, env = "REDIS_CLUSTER_URLS", value_delimiter = ',')]
    pub cluster_urls: Vec<String>,
}

pub async fn run(args: MonitorArgs) -> anyhow::Result<()> {
    if !args.cluster_urls.is_empty() {
        return run_cluster(args).await;
    }
    let client = redis::Client::open(args.redis_url.as_str())?;
    let channels = Channels::new(args.key_prefix.clone());
    let pattern = match &args.game {
        Some(g) => {
            let g =
                tictactoe_protocol::ids::GameId::try_from(g.clone()).map_err(anyhow::Error::msg)?;
            channels.game(&g)
        }
        None => channels.every_game(),
    };
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                pubsub.psubscribe(&pattern).await?;
                if args.lobby {
                    pubsub.subscribe(channels.lobby()).await?;
                }
                backoff.reset();
                eprintln!(
                    "watching {pattern}{}",
                    if args.lobby { " and the lobby" } else { "" }
                );
                let mut stream = pubsub.on_message();
                while let Some(msg) = stream.next().await {
                    let payload = String::from_utf8_lossy(msg.get_payload_bytes()).into_owned();
                    for line in render(&payload, &clock()) {
                        println!("{line}");
                    }
                }
                eprintln!(
                    "connection to Redis lost; reconnecting (messages meanwhile are not shown)"
                );
            }
            Err(e) => eprintln!("cannot reach Redis: {e}"),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// On a cluster: SSUBSCRIBE to the chosen channels through the cluster client, which follows
/// slot moves and resubscribes after node restarts by itself.
async fn run_cluster(args: MonitorArgs) -> anyhow::Result<()> {
    let names = Channels::new(args.key_prefix.clone());
    let mut channels = Vec::new();
    if let Some(g) = &args.game {
        let g = tictactoe_protocol::ids::GameId::try_from(g.clone()).map_err(anyhow::Error::msg)?;
        channels.push(names.game(&g));
    }
    if args.lobby {
        channels.push(names.lobby());
    }
    anyhow::ensure!(
        !channels.is_empty(),
        "on a cluster, game channels are sharded and cannot be pattern-subscribed: give --game <id> and/or --lobby"
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let client = redis::cluster::ClusterClientBuilder::new(args.cluster_urls.clone())
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(tx)
        .build()?;
    let mut conn = client.get_async_connection().await?;
    for c in &channels {
        conn.ssubscribe(c).await?;
    }
    eprintln!("watching {}", channels.join(" and "));
    while let Some(push) = rx.recv().await {
        match push.kind {
            redis::PushKind::SMessage => {
                if let Some(redis::Value::BulkString(payload)) = push.data.get(1) {
                    for line in render(&String::from_utf8_lossy(payload), &clock()) {
                        println!("{line}");
                    }
                }
            }
            redis::PushKind::Disconnection => {
                eprintln!(
                    "a cluster node connection dropped; resubscribing (messages meanwhile are not shown)"
                );
            }
            _ => {}
        }
    }
    Ok(())
}

fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

fn cell_name(c: Cell) -> &'static str {
    [
        "top left",
        "top",
        "top right",
        "left",
        "center",
        "right",
        "bottom left",
        "bottom",
        "bottom right",
    ][c.index()]
}

fn board_lines(b: &Board) -> Vec<String> {
    let s = b.to_string();
    s.as_bytes()
        .chunks(3)
        .map(|row| {
            let cells: Vec<String> = row.iter().map(|c| (*c as char).to_string()).collect();
            format!("    {}", cells.join(" "))
        })
        .collect()
}

fn status_line(s: &GameState) -> String {
    let name = |m: Mark| s.players.get(m).clone().unwrap_or_else(|| "?".into());
    match (s.status, s.result) {
        (Status::Waiting, _) => "waiting for an opponent".into(),
        (Status::Playing, _) => format!("{} ({}) to move", name(s.turn), s.turn),
        (Status::Finished, Some(r)) => match (r.winner, r.reason) {
            (None, _) => "draw".into(),
            (Some(w), EndReason::Line) => format!("{} ({w}) wins", name(w)),
            (Some(w), reason) => format!("{} ({w}) wins by {reason:?}", name(w)).to_lowercase(),
        },
        (Status::Finished, None) => "finished".into(),
        (Status::Aborted, _) => "aborted".into(),
    }
}

/// Human-readable lines for one channel message (raw JSON if it is not a protocol message).
pub fn render(payload: &str, time: &str) -> Vec<String> {
    let Ok(msg) = serde_json::from_str::<ServerMsg>(payload) else {
        return vec![format!("{time} {payload}")];
    };
    let head = |game: &dyn std::fmt::Display, v: u64| format!("{time} {game} v{v}");
    let with_board = |first: String, state: &GameState| {
        let mut lines = vec![first];
        lines.extend(board_lines(&state.board));
        lines.push(format!("    {}", status_line(state)));
        lines
    };
    match &msg {
        ServerMsg::Created {
            game,
            version,
            state,
        } => with_board(
            format!(
                "{} created by {}",
                head(game, *version),
                state.players.x.clone().unwrap_or_default()
            ),
            state,
        ),
        ServerMsg::Seated {
            game,
            version,
            mark,
            state,
        } => vec![format!(
            "{} {} sits as {mark}; {}",
            head(game, *version),
            state.players.get(*mark).clone().unwrap_or_default(),
            status_line(state)
        )],
        ServerMsg::Moved {
            game,
            version,
            mark,
            cell,
            state,
        } => with_board(
            format!(
                "{} {mark} plays {} ({})",
                head(game, *version),
                cell.index(),
                cell_name(*cell)
            ),
            state,
        ),
        ServerMsg::RematchRequested {
            game,
            version,
            mark,
            ..
        } => {
            vec![format!(
                "{} {mark} asks for a rematch",
                head(game, *version)
            )]
        }
        ServerMsg::RoundStarted {
            game,
            version,
            round,
            state,
        } => with_board(
            format!("{} round {round} starts", head(game, *version)),
            state,
        ),
        ServerMsg::Conceded {
            game,
            version,
            mark,
            reason,
            state,
        } => vec![format!(
            "{} {mark} {}; {}",
            head(game, *version),
            match reason {
                EndReason::Forfeit => "forfeits (away too long)",
                _ => "resigns",
            },
            status_line(state)
        )],
        ServerMsg::Aborted { game, version, .. } => {
            vec![format!(
                "{} aborted: a player never arrived",
                head(game, *version)
            )]
        }
        ServerMsg::Renamed {
            game,
            version,
            mark,
            name,
            ..
        } => vec![format!(
            "{} {mark} is now called {name}",
            head(game, *version)
        )],
        ServerMsg::Chat { game, line } => vec![format!(
            "{time} {} chat {}{}: {}",
            game.as_ref().map_or("lobby".to_string(), |g| g.to_string()),
            line.role.map(|r| format!("[{r:?}] ")).unwrap_or_default(),
            line.from,
            line.text
        )],
        ServerMsg::Presence { game, presence } => vec![format!(
            "{time} {game} presence: X {}, O {}, {} watching",
            if presence.players.x {
                "online"
            } else {
                "offline"
            },
            if presence.players.o {
                "online"
            } else {
                "offline"
            },
            presence.spectators
        )],
        ServerMsg::LobbyChanged { entry } => {
            vec![format!("{time} lobby: {} is {:?}", entry.game, entry.status).to_lowercase()]
        }
        other => vec![format!("{time} {}", other.to_json())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_prints_the_cell_the_board_and_whose_turn_it_is() {
        let g = tictactoe_protocol::ids::GameId::try_from("g1".to_string()).unwrap();
        let state = GameState::new("ann").seat_o("bob").unwrap();
        let cell = Cell::new(4).unwrap();
        let state = state.play(Mark::X, cell).unwrap();
        let msg = ServerMsg::Moved {
            game: g,
            version: 3,
            mark: Mark::X,
            cell,
            state,
        };
        let lines = render(&msg.to_json(), "12:00:00");
        assert_eq!(lines[0], "12:00:00 g1 v3 X plays 4 (center)");
        assert_eq!(&lines[1..4], ["    . . .", "    . X .", "    . . ."]);
        assert_eq!(lines[4], "    bob (O) to move");
    }

    #[test]
    fn chat_and_foreign_payloads_print_as_text() {
        let line = r#"{"type":"chat","game":"g1","id":"1-0","from":"ann","role":"X","text":"<b>hi</b>","ts":1}"#;
        assert_eq!(render(line, "t"), ["t g1 chat [X] ann: <b>hi</b>"]);
        assert_eq!(render("hello", "t"), ["t hello"]);
    }
}
