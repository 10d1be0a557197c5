//! What Redis says about itself: `INFO commandstats` (commands run, those inside Lua scripts
//! included, and their time) and `INFO server` (its pid, to read its CPU time).

use std::collections::BTreeMap;
use std::time::Duration;

/// Longest wait for one `INFO` reply: a benchmark must not hang on a Redis that went away.
const INFO_TIMEOUT: Duration = Duration::from_secs(5);

/// One command's counters since Redis started (or since `CONFIG RESETSTAT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandCount {
    pub calls: u64,
    /// Time spent running it, µs.
    pub usec: u64,
}

/// Every command's counters, by lower-case name (`evalsha`, `client|setname`).
pub type CommandStats = BTreeMap<String, CommandCount>;

/// Parses the `cmdstat_<name>:calls=N,usec=N,usec_per_call=F,...` lines of
/// `INFO commandstats`; other lines (section headers, blank lines) are skipped.
pub fn parse_commandstats(info: &str) -> CommandStats {
    let mut stats = CommandStats::new();
    for line in info.lines() {
        let Some((name, fields)) = line
            .trim()
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        let mut count = CommandCount::default();
        for field in fields.split(',') {
            match field.split_once('=') {
                Some(("calls", v)) => count.calls = v.parse().unwrap_or(0),
                Some(("usec", v)) => count.usec = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        stats.insert(name.to_ascii_lowercase(), count);
    }
    stats
}

/// The `process_id:` line of `INFO server`.
pub fn parse_process_id(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// What ran between two snapshots: per command, the calls and time added (a counter that
/// went backwards, after a restart or `CONFIG RESETSTAT`, counts from zero).
pub fn delta(before: &CommandStats, after: &CommandStats) -> CommandStats {
    after
        .iter()
        .filter_map(|(name, a)| {
            let b = before.get(name).copied().unwrap_or_default();
            let d = if a.calls >= b.calls {
                CommandCount {
                    calls: a.calls - b.calls,
                    usec: a.usec.saturating_sub(b.usec),
                }
            } else {
                *a
            };
            (d.calls > 0).then(|| (name.clone(), d))
        })
        .collect()
}

/// Leaves out our own `INFO commandstats` from a delta: Redis counts a command once it has
/// run, so the one that took the first snapshot is in the second.
pub fn without_own_info(mut d: CommandStats) -> CommandStats {
    if let Some(info) = d.get_mut("info") {
        let per_call = info.usec / info.calls.max(1);
        info.calls = info.calls.saturating_sub(1);
        info.usec = info.usec.saturating_sub(per_call);
        if info.calls == 0 {
            d.remove("info");
        }
    }
    d
}

/// A connection to one Redis for `INFO`, opened once per run.
pub struct RedisProbe {
    pub url: String,
    conn: redis::aio::MultiplexedConnection,
}

impl RedisProbe {
    pub async fn connect(url: &str) -> Result<RedisProbe, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        // redis-rs gives up on a reply after 500 ms by default: a Redis (or a machine) busy
        // with the load being measured can take longer, and a report without its window's
        // commands is the result (seen in the test suite, on a loaded debug build).
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(INFO_TIMEOUT))
            .set_response_timeout(Some(INFO_TIMEOUT));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        Ok(RedisProbe {
            url: url.to_string(),
            conn,
        })
    }

    async fn info(&mut self, section: &str) -> Option<String> {
        let cmd = redis::cmd("INFO").arg(section).to_owned();
        match cmd.query_async::<String>(&mut self.conn).await {
            Ok(info) => Some(info),
            Err(e) => {
                eprintln!("warning: INFO {section} from {}: {e}", self.url);
                None
            }
        }
    }

    pub async fn commandstats(&mut self) -> Option<CommandStats> {
        self.info("commandstats")
            .await
            .map(|i| parse_commandstats(&i))
    }

    pub async fn process_id(&mut self) -> Option<u32> {
        self.info("server").await.and_then(|i| parse_process_id(&i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# Commandstats\r\n\
        cmdstat_evalsha:calls=100,usec=4466,usec_per_call=44.66,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_pexpire:calls=600,usec=462,usec_per_call=0.77,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_info:calls=1,usec=20,usec_per_call=20.00,rejected_calls=0,failed_calls=0\r\n";

    const AFTER: &str = "# Commandstats\r\n\
        cmdstat_evalsha:calls=250,usec=11166,usec_per_call=44.66,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_pexpire:calls=1500,usec=1155,usec_per_call=0.77,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_info:calls=2,usec=40,usec_per_call=20.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_client|setname:calls=3,usec=3,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n\
        \r\n";

    #[test]
    fn commandstats_lines_parse_into_calls_and_time() {
        let s = parse_commandstats(AFTER);
        assert_eq!(s.len(), 4);
        assert_eq!(
            s["evalsha"],
            CommandCount {
                calls: 250,
                usec: 11166
            }
        );
        assert_eq!(s["client|setname"].calls, 3);
        assert!(parse_commandstats("# Commandstats\r\n").is_empty());
        assert!(parse_commandstats("cmdstat_broken\r\nfoo:bar\r\n").is_empty());
    }

    #[test]
    fn deltas_count_what_ran_between_two_snapshots() {
        let d = delta(&parse_commandstats(BEFORE), &parse_commandstats(AFTER));
        assert_eq!(
            d["evalsha"],
            CommandCount {
                calls: 150,
                usec: 6700
            }
        );
        assert_eq!(d["pexpire"].calls, 900);
        assert_eq!(d["info"].calls, 1);
        // New since the first snapshot: counted whole.
        assert_eq!(d["client|setname"].calls, 3);
        // Reset in between: the later counter is all there is.
        let d = delta(&parse_commandstats(AFTER), &parse_commandstats(BEFORE));
        assert_eq!(d["evalsha"].calls, 100);
        // Nothing ran: nothing listed.
        assert!(delta(&parse_commandstats(AFTER), &parse_commandstats(AFTER)).is_empty());
        // Our own INFO between the snapshots is not the servers' work.
        let d = without_own_info(delta(
            &parse_commandstats(BEFORE),
            &parse_commandstats(AFTER),
        ));
        assert!(!d.contains_key("info"), "{d:?}");
        assert_eq!(d["pexpire"].calls, 900);
    }

    #[test]
    fn the_server_section_gives_the_pid() {
        let info = "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\ntcp_port:6379\r\n";
        assert_eq!(parse_process_id(info), Some(4242));
        assert_eq!(
            parse_process_id("# Server\r\nredis_version:7.0.15\r\n"),
            None
        );
    }
}
