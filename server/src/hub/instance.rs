//! The instance's own channel: quick-match results for one of its connections, and the probe
//! it publishes to itself to prove that Redis answers and its subscription delivers.

use super::{ConnId, Hub, HubError, Outbound};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tictactoe_protocol::ids::GameId;
use tictactoe_rules::Mark;
use tokio::sync::oneshot;

/// Messages on an instance's own channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InstanceMsg {
    /// Tell connection `conn` it was matched into `game` as `you`.
    MatchFound {
        conn: ConnId,
        game: GameId,
        you: Mark,
    },
    /// A readiness probe the instance sends itself.
    Probe { nonce: u64 },
}

impl Hub {
    pub(super) fn on_instance_msg(&self, payload: &str) {
        match serde_json::from_str::<InstanceMsg>(payload) {
            Ok(InstanceMsg::MatchFound { conn, game, you }) => {
                self.deliver(
                    conn,
                    Outbound::Matched {
                        game: Box::new(game),
                        you,
                    },
                );
            }
            Ok(InstanceMsg::Probe { nonce }) => {
                if let Some((_, tx)) = self.probes.remove(&nonce) {
                    let _ = tx.send(());
                } else {
                    // Nobody waits for it any more: given up on, yet delivered. Only this
                    // process publishes here (the channel is named after its lease).
                    self.late_echoes.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("pubsub_late_echoes_total").increment(1);
                }
            }
            Err(e) => tracing::debug!(error = %e, "malformed instance message"),
        }
    }

    /// Publishes a probe to this instance's own channel and waits for it to come back:
    /// proof that Redis answers and the subscription delivers. Returns the round trip.
    pub async fn probe(&self, store: &dyn Store, timeout: Duration) -> Result<Duration, HubError> {
        if !self.is_bus_up() {
            return Err(HubError::Unavailable);
        }
        let nonce = uuid::Uuid::new_v4().as_u64_pair().0;
        let (tx, rx) = oneshot::channel();
        self.probes.insert(nonce, tx);
        let started = Instant::now();
        let result = async {
            let msg = serde_json::to_string(&InstanceMsg::Probe { nonce })
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            store.publish(&self.instance_channel, msg.into()).await?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(())) => Ok(started.elapsed()),
                _ => Err(HubError::NoEcho),
            }
        }
        .await;
        self.probes.remove(&nonce);
        if let Ok(lag) = result {
            metrics::histogram!("pubsub_lag_seconds").record(lag.as_secs_f64());
        }
        result
    }

    /// How many probes came back after they were given up on, since the start: a bus that
    /// delivers them is working, however late (an instance busy with thousands of arrivals
    /// reads its messages late, and replacing its bus then only adds a catch-up of every
    /// local game to the load).
    pub fn late_echoes(&self) -> u64 {
        self.late_echoes.load(Ordering::Relaxed)
    }
}
