//! A connection as the hub sees it: the sending half of its bounded queue, what goes into it,
//! and the switch that closes a client too slow to keep up.

use axum::extract::ws::Utf8Bytes;
use std::sync::Arc;
use tictactoe_protocol::ids::GameId;
use tictactoe_rules::Mark;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub type ConnId = u64;

/// A message from a game's channel, shared by every local subscriber of the game.
#[derive(Debug)]
pub struct ChannelEvent {
    pub game: GameId,
    /// Set for versioned game events.
    pub version: Option<u64>,
    pub payload: Utf8Bytes,
}

/// Room a client's queue must have left for a presence message: a quarter of the queue stays
/// for game events, which cannot be merged or dropped.
fn presence_headroom(queue: usize) -> usize {
    (queue / 4).max(1)
}

/// What the hub (or another instance, through it) hands to a connection. Kept to two words:
/// every connection's queue allocates a block of 32 of these up front, idle or not, so the
/// rarer messages are boxed.
#[derive(Debug)]
pub enum Outbound {
    Game(Arc<ChannelEvent>),
    /// Messages of this game may have been lost (the bus reconnected): catch up from the log.
    CatchUp(Box<GameId>),
    /// A lobby frame (a coalesced `lobby` list or a lobby chat line), shared by every watcher.
    Lobby(Arc<Utf8Bytes>),
    /// Quick match paired this connection into `game`.
    Matched {
        game: Box<GameId>,
        you: Mark,
    },
    /// This connection's quick-match ticket vanished without a match: queue it again.
    Requeue,
}

const _: () = assert!(std::mem::size_of::<Outbound>() <= 16);

/// The sending half of one connection's bounded queue, and the switch that closes it.
#[derive(Clone, Debug)]
pub struct Mailbox {
    tx: mpsc::Sender<Outbound>,
    kill: CancellationToken,
}

impl Mailbox {
    pub fn new(tx: mpsc::Sender<Outbound>, kill: CancellationToken) -> Mailbox {
        Mailbox { tx, kill }
    }

    /// Queues without waiting. A full queue means the client is too slow: it is closed
    /// rather than allowed to hold anyone up. False once the connection is gone.
    pub fn offer(&self, out: Outbound) -> bool {
        match self.tx.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("outbound_dropped_total").increment(1);
                if !self.kill.is_cancelled() {
                    metrics::counter!("slow_client_closes_total").increment(1);
                    self.kill.cancel();
                }
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a presence message if the queue has room to spare; never closes the client.
    /// `Owed` when there was no room: the latest presence is offered again later.
    pub(super) fn offer_presence(&self, event: &Arc<ChannelEvent>) -> Offer {
        if self.tx.is_closed() {
            return Offer::Gone;
        }
        if self.tx.capacity() <= presence_headroom(self.tx.max_capacity()) {
            metrics::counter!("presence_deferred_total").increment(1);
            return Offer::Owed;
        }
        match self.tx.try_send(Outbound::Game(event.clone())) {
            Ok(()) => Offer::Sent,
            Err(mpsc::error::TrySendError::Full(_)) => Offer::Owed,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Gone,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Offer {
    Sent,
    Owed,
    Gone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_closes_the_slow_client_and_only_it() {
        let (tx, _rx) = mpsc::channel(1);
        let slow = Mailbox::new(tx, CancellationToken::new());
        assert!(slow.offer(Outbound::Requeue));
        assert!(!slow.kill.is_cancelled());
        assert!(slow.offer(Outbound::Requeue));
        assert!(slow.kill.is_cancelled());

        let (tx, mut rx) = mpsc::channel(4);
        let fine = Mailbox::new(tx, CancellationToken::new());
        assert!(fine.offer(Outbound::Requeue));
        assert!(rx.try_recv().is_ok());
        assert!(!fine.kill.is_cancelled());
        drop(rx);
        assert!(!fine.offer(Outbound::Requeue), "a gone client is reported");
    }
}
