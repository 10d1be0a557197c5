//! One local game on the hub: its local members, the newest state seen of it, and the pace of
//! its presence (merged per interval, owed to clients short of room, never closing one).

use super::mailbox::{ChannelEvent, ConnId, Mailbox, Offer};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tictactoe_protocol::Role;
use tictactoe_protocol::event_state;
use tictactoe_protocol::ids::PlayerId;
use tictactoe_rules::{GameState, Seats};
use tokio::sync::watch;

/// A local connection's membership in a game.
#[derive(Clone, Debug)]
pub struct Subscriber {
    pub conn: ConnId,
    pub mailbox: Mailbox,
    pub player: PlayerId,
    pub role: Role,
    pub sent: Sent,
}

/// The last version of a game a connection has been sent, shared by the connection (which
/// alone writes it) with the hub: an event the connection already sent, such as its own move
/// sent with the ack, is not offered to it again, so its task is not woken only to drop it.
#[derive(Clone, Debug, Default)]
pub struct Sent(Arc<AtomicU64>);

impl Sent {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, version: u64) {
        self.0.store(version, Ordering::Relaxed);
    }

    /// Whether the connection was already sent `version` (the connection still checks
    /// versions itself: a stale read here only costs a wake-up).
    pub(super) fn has(&self, version: Option<u64>) -> bool {
        version.is_some_and(|v| v <= self.get())
    }
}

/// A local member of a game: its subscription, and whether it is owed the game's latest
/// presence (its queue had no room for it).
pub(super) struct Member {
    pub(super) sub: Subscriber,
    pub(super) owes_presence: bool,
}

/// The pace of a game's presence on this instance.
#[derive(Default)]
struct PresencePace {
    /// The newest presence from the channel.
    latest: Option<Arc<ChannelEvent>>,
    /// Whether `latest` is still to be fanned out.
    unsent: bool,
    /// When presence was last fanned out.
    sent_at: Option<Instant>,
}

pub(super) struct Topic {
    pub(super) members: Vec<Member>,
    cache: Option<(u64, Latest)>,
    /// Who holds the seats, once both are taken: they never change hands after that.
    pub(super) seats: Option<Seats<Option<PlayerId>>>,
    /// True while the game's channel is subscribed on the current bus connection.
    pub(super) ready: watch::Sender<bool>,
    /// The newest version that came in on the game's channel.
    pub(super) heard: u64,
    presence: PresencePace,
}

/// The newest state of a game seen here: parsed, or still inside the event that brought it.
/// Most events only pass through to clients; their state is read only when a local player
/// acts on it, and then once.
#[derive(Debug)]
enum Latest {
    State(GameState),
    Event(Arc<ChannelEvent>),
}

impl Topic {
    pub(super) fn new() -> Topic {
        Topic {
            members: Vec::new(),
            cache: None,
            seats: None,
            ready: watch::Sender::new(false),
            heard: 0,
            presence: PresencePace::default(),
        }
    }

    /// Takes a presence message from the channel: fanned out now if the game's last one went
    /// out at least `every` ago, else kept (the newest wins) for [`Topic::flush_presence`].
    /// True if something is left to send later.
    pub(super) fn on_presence(
        &mut self,
        event: Arc<ChannelEvent>,
        now: Instant,
        every: Duration,
    ) -> bool {
        self.presence.latest = Some(event);
        self.presence.unsent = true;
        self.flush_presence(now, every)
    }

    /// Sends the latest presence to every member if it is unsent and the interval has passed,
    /// and to members owed it whenever their queue has room. True if something is left.
    pub(super) fn flush_presence(&mut self, now: Instant, every: Duration) -> bool {
        let Some(event) = self.presence.latest.clone() else {
            return false;
        };
        let paced = self
            .presence
            .sent_at
            .is_some_and(|at| now.duration_since(at) < every);
        if self.presence.unsent && !paced {
            self.presence.unsent = false;
            self.presence.sent_at = Some(now);
            for m in &mut self.members {
                m.owes_presence = true;
            }
        }
        self.members.retain_mut(|m| {
            if !m.owes_presence {
                return true;
            }
            match m.sub.mailbox.offer_presence(&event) {
                Offer::Sent => {
                    m.owes_presence = false;
                    true
                }
                Offer::Owed => true,
                Offer::Gone => false,
            }
        });
        self.presence.unsent || self.members.iter().any(|m| m.owes_presence)
    }

    fn is_newer(&self, version: u64) -> bool {
        self.cache.as_ref().is_none_or(|(v, _)| version > *v)
    }

    pub(super) fn observe(&mut self, version: u64, state: &GameState) {
        if self.is_newer(version) {
            self.cache = Some((version, Latest::State(state.clone())));
        }
    }

    pub(super) fn observe_event(&mut self, version: u64, event: &Arc<ChannelEvent>) {
        self.heard = self.heard.max(version);
        if self.is_newer(version) {
            self.cache = Some((version, Latest::Event(event.clone())));
        }
    }

    pub(super) fn latest(&mut self) -> Option<(u64, GameState)> {
        let (version, latest) = self.cache.as_mut()?;
        let version = *version;
        let state = match latest {
            Latest::State(state) => state.clone(),
            Latest::Event(event) => {
                let Some(state) = event_state(&event.payload) else {
                    // Not a state after all: forget it, the store has the real one.
                    self.cache = None;
                    return None;
                };
                *latest = Latest::State(state.clone());
                state
            }
        };
        Some((version, state))
    }
}

#[cfg(test)]
mod tests {
    use super::super::mailbox::Outbound;
    use super::*;
    use tictactoe_protocol::ServerMsg;
    use tictactoe_protocol::ids::GameId;
    use tictactoe_rules::Mark;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    fn presence_event(n: u32) -> Arc<ChannelEvent> {
        Arc::new(ChannelEvent {
            game: GameId::try_from("g1".to_string()).unwrap(),
            version: None,
            payload: format!("{{\"type\":\"presence\",\"n\":{n}}}").into(),
        })
    }

    fn member(queue: usize) -> (Member, mpsc::Receiver<Outbound>, CancellationToken) {
        let (tx, rx) = mpsc::channel(queue);
        let kill = CancellationToken::new();
        let sub = Subscriber {
            conn: 1,
            mailbox: Mailbox::new(tx, kill.clone()),
            player: PlayerId::try_from("p1".to_string()).unwrap(),
            role: Role::X,
            sent: Sent::default(),
        };
        let m = Member {
            sub,
            owes_presence: false,
        };
        (m, rx, kill)
    }

    fn received(rx: &mut mpsc::Receiver<Outbound>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|o| match o {
                Outbound::Game(e) => e.payload.to_string(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn presence_goes_at_once_then_at_most_once_per_interval_the_latest_winning() {
        let every = Duration::from_millis(250);
        let mut t = Topic::new();
        let (m, mut rx, _) = member(64);
        t.members.push(m);
        let t0 = Instant::now();
        assert!(
            !t.on_presence(presence_event(1), t0, every),
            "first goes at once"
        );
        for n in 2..=50 {
            assert!(t.on_presence(
                presence_event(n),
                t0 + Duration::from_millis(n.into()),
                every
            ));
        }
        assert_eq!(received(&mut rx), [r#"{"type":"presence","n":1}"#]);
        // Too early: still held.
        assert!(t.flush_presence(t0 + Duration::from_millis(200), every));
        assert!(received(&mut rx).is_empty());
        assert!(!t.flush_presence(t0 + every, every));
        assert_eq!(received(&mut rx), [r#"{"type":"presence","n":50}"#]);
        // Nothing new: nothing sent.
        assert!(!t.flush_presence(t0 + every * 3, every));
        assert!(received(&mut rx).is_empty());
    }

    #[test]
    fn presence_never_closes_a_client_short_of_room_and_is_owed_until_it_has_some() {
        let every = Duration::from_millis(250);
        let mut t = Topic::new();
        let (m, mut rx, kill) = member(8);
        t.members.push(m);
        // Game events fill the queue to its presence headroom.
        for _ in 0..6 {
            assert!(t.members[0].sub.mailbox.offer(Outbound::Requeue));
        }
        let t0 = Instant::now();
        assert!(t.on_presence(presence_event(1), t0, every), "owed");
        assert!(
            t.on_presence(presence_event(2), t0 + every, every),
            "still owed"
        );
        assert!(!kill.is_cancelled(), "presence never closes a client");
        assert_eq!(rx.len(), 6);
        // The client reads; the latest presence is then delivered, once.
        while rx.try_recv().is_ok() {}
        assert!(!t.flush_presence(t0 + every * 2, every));
        assert_eq!(received(&mut rx), [r#"{"type":"presence","n":2}"#]);
        // Game events still close a client whose queue is full.
        for _ in 0..9 {
            t.members[0].sub.mailbox.offer(Outbound::Requeue);
        }
        assert!(kill.is_cancelled());
    }

    #[test]
    fn the_cache_keeps_the_newest_version() {
        let mut t = Topic::new();
        let a = GameState::new("a");
        let b = a.seat_o("b").unwrap();
        t.observe(2, &b);
        t.observe(1, &a);
        assert_eq!(t.latest(), Some((2, b.clone())));
        // A newer event's state is read from it when asked for, an older one is ignored.
        let c = b
            .play(Mark::X, tictactoe_rules::Cell::new(4).unwrap())
            .unwrap();
        let event = |version, state: &GameState| {
            let msg = ServerMsg::Moved {
                game: GameId::try_from("g1".to_string()).unwrap(),
                version,
                mark: Mark::X,
                cell: tictactoe_rules::Cell::new(4).unwrap(),
                state: state.clone(),
            };
            Arc::new(ChannelEvent {
                game: GameId::try_from("g1".to_string()).unwrap(),
                version: Some(version),
                payload: msg.to_json().into(),
            })
        };
        t.observe_event(2, &event(2, &c));
        assert_eq!(t.latest(), Some((2, b)));
        t.observe_event(3, &event(3, &c));
        assert!(matches!(t.cache, Some((3, Latest::Event(_)))));
        assert_eq!(t.latest(), Some((3, c.clone())));
        assert!(matches!(t.cache, Some((3, Latest::State(_)))));
    }
}
