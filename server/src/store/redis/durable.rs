//! REDIS_WAIT_REPLICAS: game changes (and new games and sessions) acknowledged only once
//! replicas have them. Each runs as one pipeline, one round trip: the write, `WAIT`, and
//! whatever must come after the replicas have it (a move's event is published only then).
//!
//! `WAIT` blocks the connection it is sent on, and Redis reads nothing more from that
//! connection until it returns: on the shared connection every other command would queue
//! behind every move. Waiting changes take turns over [`WAIT_LANES`] connections of their own
//! instead; one replica acknowledgement releases the `WAIT`s pending on all of them.

use super::RedisStore;
use super::decode::corrupt;
use super::link::Link;
use super::scripts::reply;
use crate::store::{StoreError, StoreResult};
use ::redis::Script;
use ::redis::{Cmd, Pipeline, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Connections used for acknowledged game changes.
const WAIT_LANES: usize = 8;

pub(super) struct Durable {
    replicas: u32,
    timeout: Duration,
    lanes: Vec<Link>,
    next: AtomicUsize,
}

impl RedisStore {
    /// Acknowledges game changes (and new games and sessions) only once `replicas` replicas
    /// have them, waiting at most `timeout` (which must end before the operation timeout).
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> StoreResult<Self> {
        if replicas == 0 {
            self.durable = None;
            return Ok(self);
        }
        if timeout >= self.op_timeout {
            return Err(StoreError::Config(format!(
                "REDIS_WAIT_TIMEOUT_MS ({} ms) must be below REDIS_TIMEOUT_MS ({} ms)",
                timeout.as_millis(),
                self.op_timeout.as_millis()
            )));
        }
        let lanes = (0..WAIT_LANES)
            .map(|_| self.link.another())
            .collect::<StoreResult<Vec<_>>>()?;
        self.durable = Some(Durable {
            replicas,
            timeout,
            lanes,
            next: AtomicUsize::new(0),
        });
        Ok(self)
    }

    /// Runs `pipe` (writes, then a [`wait_cmd`], perhaps more) in one round trip on a
    /// connection of its own; returns every reply, errors included.
    pub(super) async fn durably(
        &self,
        op: &'static str,
        durable: &Durable,
        pipe: Pipeline,
        scripts: &[&Script],
    ) -> StoreResult<Vec<Value>> {
        let lane =
            &durable.lanes[durable.next.fetch_add(1, Ordering::Relaxed) % durable.lanes.len()];
        let mut handle = self.handle_on(lane).await?;
        self.pipeline(op, lane, &mut handle, pipe, scripts).await
    }

    /// `call` and its WAIT in one round trip ([`RedisStore::durably`]): `call`'s reply, or
    /// `Unavailable` unless the replicas confirmed it.
    pub(super) async fn durably_one(
        &self,
        op: &'static str,
        durable: &Durable,
        call: Cmd,
        scripts: &[&Script],
    ) -> StoreResult<Value> {
        let mut pipe = ::redis::pipe();
        pipe.add_command(call).add_command(wait_cmd(durable));
        let replies = self.durably(op, durable, pipe, scripts).await?;
        let value = reply(replies.first().cloned())?;
        self.confirmed(op, durable, &replies, 1)?;
        Ok(value)
    }

    /// The WAIT reply at `at` in `replies`: `Unavailable` unless enough replicas confirmed.
    pub(super) fn confirmed(
        &self,
        op: &'static str,
        durable: &Durable,
        replies: &[Value],
        at: usize,
    ) -> StoreResult<()> {
        match replies.get(at) {
            Some(Value::Int(n)) if *n >= i64::from(durable.replicas) => Ok(()),
            Some(Value::Int(n)) => {
                metrics::counter!("redis_wait_unconfirmed_total", "op" => op).increment(1);
                Err(StoreError::Unavailable(format!(
                    "{op}: {n} of {} replicas confirmed within {} ms",
                    durable.replicas,
                    durable.timeout.as_millis()
                )))
            }
            // An error instead of a count (`UNBLOCKED` when a failover demotes the node
            // while it waits): nobody confirmed, and the write's fate is unknown.
            Some(Value::ServerError(e)) => {
                metrics::counter!("redis_wait_unconfirmed_total", "op" => op).increment(1);
                Err(StoreError::Unavailable(format!("{op}: WAIT answered {e}")))
            }
            other => Err(corrupt("WAIT", other)),
        }
    }
}

/// `WAIT` for the replicas `durable` asks for: it returns once they have every write sent
/// before it on the same connection.
pub(super) fn wait_cmd(durable: &Durable) -> Cmd {
    let mut cmd = ::redis::cmd("WAIT");
    cmd.arg(durable.replicas)
        .arg(durable.timeout.as_millis() as u64);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Keys, StoreLimits};

    fn store(op_timeout: Duration) -> RedisStore {
        let keys = Keys::new(String::from("t:"));
        RedisStore::connect(
            "redis://127.0.0.1:1/",
            keys,
            StoreLimits::default(),
            op_timeout,
        )
        .expect("a lazy store needs no Redis")
    }

    // A lazy connection manager starts its task on the runtime it is made in.
    #[tokio::test]
    async fn the_wait_must_end_before_the_operation_timeout() {
        let second = Duration::from_secs(1);
        let err = store(second).wait_for_replicas(1, second).err();
        assert!(
            matches!(&err, Some(StoreError::Config(m)) if m.contains("REDIS_WAIT_TIMEOUT_MS")),
            "{err:?}"
        );
        let s = store(second)
            .wait_for_replicas(1, Duration::from_millis(500))
            .expect("a shorter wait");
        assert_eq!(s.durable.as_ref().map(|d| d.lanes.len()), Some(WAIT_LANES));
    }

    #[tokio::test]
    async fn no_replicas_to_wait_for_means_no_wait() {
        let s = store(Duration::from_secs(1))
            .wait_for_replicas(0, Duration::from_secs(5))
            .expect("nothing to check");
        assert!(s.durable.is_none());
    }

    // Seen in the chaos run on a Cluster: a master demoted while a move's WAIT was pending
    // answers it with an error; the move's outcome is unknown, so the client must be told to
    // retry (`unavailable`), not that the server broke (`internal`).
    #[tokio::test]
    async fn a_wait_cut_short_by_a_failover_is_unavailable() {
        let s = store(Duration::from_secs(1))
            .wait_for_replicas(1, Duration::from_millis(500))
            .expect("a lazy store");
        let durable = s.durable.as_ref().expect("waits for a replica");
        let unblocked = ::redis::parse_redis_value(
            b"-UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)\r\n",
        )
        .expect("an error reply parses as a value");
        let err = s.confirmed("move", durable, &[unblocked], 0).err();
        assert!(matches!(err, Some(StoreError::Unavailable(_))), "{err:?}");
        // A reply that is no reply at all is still corrupt.
        let err = s.confirmed("move", durable, &[Value::Nil], 0).err();
        assert!(matches!(err, Some(StoreError::Corrupt(_))), "{err:?}");
    }

    #[test]
    fn a_wait_command_names_its_replicas_and_timeout() {
        let d = Durable {
            replicas: 2,
            timeout: Duration::from_millis(250),
            lanes: Vec::new(),
            next: AtomicUsize::new(0),
        };
        let args: Vec<Vec<u8>> = wait_cmd(&d)
            .args_iter()
            .filter_map(|a| match a {
                ::redis::Arg::Simple(b) => Some(b.to_vec()),
                _ => None,
            })
            .collect();
        assert_eq!(args, [b"WAIT".to_vec(), b"2".to_vec(), b"250".to_vec()]);
    }
}
