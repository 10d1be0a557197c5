//! Deciding, from a read of a game's log, whether a client can catch up event by event or
//! needs a snapshot. Both stores read their log their own way and decide here, so they agree.

use super::Missed;
use bytes::Bytes;

/// Events after `since` from a log read (each event with the version it produced), or
/// `TooOld` if the read does not reach back to `since + 1` or has a hole: a client must never
/// skip an event silently.
pub(crate) fn missed_since(
    since: u64,
    version: u64,
    entries: impl IntoIterator<Item = (u64, Bytes)>,
) -> Missed {
    if since == version {
        return Missed::UpToDate;
    }
    if since > version {
        // The client saw versions the store no longer has: a failover lost them (replication
        // is asynchronous unless REDIS_WAIT_REPLICAS is set). Only a snapshot undoes them.
        return Missed::TooOld;
    }
    let mut events = Vec::new();
    let mut expected = since + 1;
    for (v, event) in entries {
        if v != expected {
            return Missed::TooOld;
        }
        events.push(event);
        expected += 1;
    }
    if expected != version + 1 {
        return Missed::TooOld;
    }
    Missed::Events(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(from: u64, to: u64) -> Vec<(u64, Bytes)> {
        (from..=to)
            .map(|v| (v, Bytes::from(format!("e{v}"))))
            .collect()
    }

    #[test]
    fn a_contiguous_log_replays_every_missing_event() {
        assert_eq!(
            missed_since(2, 4, entries(3, 4)),
            Missed::Events(vec!["e3".into(), "e4".into()])
        );
        assert_eq!(missed_since(4, 4, []), Missed::UpToDate);
    }

    #[test]
    fn a_client_ahead_of_the_log_gets_a_snapshot() {
        // A failover took back versions 5 to 9, which the client had already seen.
        assert_eq!(missed_since(9, 4, entries(1, 4)), Missed::TooOld);
    }

    #[test]
    fn a_log_with_a_hole_or_trimmed_start_means_snapshot() {
        assert_eq!(missed_since(1, 4, entries(3, 4)), Missed::TooOld);
        assert_eq!(missed_since(2, 5, entries(3, 4)), Missed::TooOld);
        let mut holed = entries(3, 5);
        holed.remove(1);
        assert_eq!(missed_since(2, 5, holed), Missed::TooOld);
    }
}
