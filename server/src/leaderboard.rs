//! `tictactoe leaderboard`: the board as operators read it, straight from the store the
//! server settings name (REDIS_URL, Sentinel or Cluster, KEY_PREFIX), one line per profile.

use crate::config::{Config, RedisLayout};
use crate::operations::profiles::BOARD_TOP;
use crate::store::profiles::BoardRecord;
use crate::{ServerError, store};
use clap::Args;
use std::fmt::Write as _;
use tictactoe_protocol::profiles::provisional;

#[derive(Args, Debug)]
pub struct LeaderboardArgs {
    /// How many rows, from the top (at most 100, as the page shows).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub top: u16,
    /// Where the profiles are: the server's own settings.
    #[command(flatten)]
    pub config: Config,
}

/// The board's top rows, rendered.
pub async fn run(args: &LeaderboardArgs) -> Result<String, ServerError> {
    let checked = args.config.check()?;
    // A new in-memory store would only print an empty board: say what is missing instead.
    if checked.layout == RedisLayout::Memory {
        return Err(crate::store::StoreError::Config(
            "no Redis to read the board from: set REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_URLS"
                .into(),
        )
        .into());
    }
    let store = store::connect(&checked.layout, &args.config)?;
    let top = usize::from(args.top).min(BOARD_TOP);
    let board = store.leaderboard(None, top, 0).await?;
    Ok(render(&board.top))
}

/// One header line, then rank, rating (`?` when provisional), wins/draws/losses and name.
pub fn render(rows: &[BoardRecord]) -> String {
    let mut out = format!(
        "{:>5}  {:>6}  {:>14}  {}\n",
        "rank", "rating", "W/D/L", "name"
    );
    if rows.is_empty() {
        out.push_str("(no rated games yet)\n");
    }
    for r in rows {
        let rating = r.rating.round().max(0.0) as u32;
        let mark = if provisional(r.deviation.round().max(0.0) as u32) {
            "?"
        } else {
            ""
        };
        let record = format!("{}/{}/{}", r.wins, r.draws, r.losses);
        let _ = writeln!(
            out,
            "{:>5}  {:>6}  {:>14}  {}",
            r.rank,
            format!("{rating}{mark}"),
            record,
            r.name
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_prints_one_aligned_line_per_profile_with_its_provisional_mark() {
        let row = |rank, name: &str, rating, deviation| BoardRecord {
            rank,
            name: name.into(),
            rating,
            deviation,
            wins: 9,
            draws: 2,
            losses: 1,
        };
        let out = render(&[row(1, "Ann", 1720.4, 60.0), row(2, "Bob", 1649.6, 190.0)]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            vec![
                " rank  rating           W/D/L  name",
                "    1    1720           9/2/1  Ann",
                "    2   1650?           9/2/1  Bob",
            ]
        );
        assert!(render(&[]).contains("no rated games yet"));
    }
}
