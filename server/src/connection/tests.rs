//! The connection driven through channels instead of a network socket, over the in-memory
//! store: what a client sees, request by request.

use super::serve;
use crate::app::App;
use crate::config::Config;
use axum::extract::ws::Message;
use futures_util::{Sink, Stream};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tictactoe_protocol::ids::GameId;
use tictactoe_protocol::{AckInfo, ErrorCode, Role, ServerMsg, close};
use tictactoe_rules::Mark;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;

/// Longest a test waits for a frame the server should send.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// The server's end of an in-test socket: frames from the test in, frames to the test out.
/// Like a real socket, frames leave only when flushed, each flush as one batch (one write).
struct ChannelSocket {
    incoming: UnboundedReceiver<Result<Message, axum::Error>>,
    outgoing: UnboundedSender<Vec<Message>>,
    unflushed: Vec<Message>,
}

impl ChannelSocket {
    /// The server's end, with the test's ends of its two channels.
    fn pair() -> (
        ChannelSocket,
        UnboundedSender<Result<Message, axum::Error>>,
        UnboundedReceiver<Vec<Message>>,
    ) {
        let (to_server, incoming) = unbounded_channel();
        let (outgoing, from_server) = unbounded_channel();
        let socket = ChannelSocket {
            incoming,
            outgoing,
            unflushed: Vec::new(),
        };
        (socket, to_server, from_server)
    }
}

impl Stream for ChannelSocket {
    type Item = Result<Message, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().incoming.poll_recv(cx)
    }
}

impl Sink<Message> for ChannelSocket {
    type Error = axum::Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        self.get_mut().unflushed.push(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        if this.unflushed.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let batch = std::mem::take(&mut this.unflushed);
        Poll::Ready(
            this.outgoing
                .send(batch)
                .map_err(|_| axum::Error::new("the test dropped its end")),
        )
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_flush(cx)
    }
}

/// An instance over the in-memory store, built as the binary builds one, with its hub's bus
/// running (joining a game waits for the game's channel to be subscribed) and no other
/// background work.
fn instance(config: Config) -> Arc<App> {
    let config = Config {
        instance_id: Some("test".into()),
        ..config
    };
    crate::application::Application::build(config, CancellationToken::new())
        .expect("the default settings use the memory store")
        .app
}

/// The test's end of a connection.
struct Peer {
    to_server: UnboundedSender<Result<Message, axum::Error>>,
    from_server: UnboundedReceiver<Vec<Message>>,
    /// The rest of the last batch received.
    received: std::collections::VecDeque<Message>,
}

impl Peer {
    fn connect(app: &Arc<App>) -> Peer {
        let (socket, to_server, from_server) = ChannelSocket::pair();
        tokio::spawn(serve(app.clone(), socket, IpAddr::from([127, 0, 0, 1])));
        Peer {
            to_server,
            from_server,
            received: Default::default(),
        }
    }

    fn send_frame(&self, frame: Message) {
        self.to_server
            .send(Ok(frame))
            .expect("the connection is open");
    }

    fn send(&self, msg: Value) {
        self.send_frame(Message::Text(msg.to_string().into()));
    }

    /// The next frame, pings aside.
    async fn frame(&mut self) -> Message {
        loop {
            match self.received.pop_front() {
                Some(Message::Ping(_)) => continue,
                Some(frame) => return frame,
                None => self.received = self.batch().await.into(),
            }
        }
    }

    /// The unread rest of the last write, or else the frames of the next one.
    async fn batch(&mut self) -> Vec<Message> {
        if !self.received.is_empty() {
            return self.received.drain(..).collect();
        }
        match tokio::time::timeout(RECV_TIMEOUT, self.from_server.recv()).await {
            Ok(Some(batch)) => batch,
            Ok(None) => panic!("the connection ended"),
            Err(_) => panic!("nothing received within {RECV_TIMEOUT:?}"),
        }
    }

    async fn recv(&mut self) -> ServerMsg {
        match self.frame().await {
            Message::Text(t) => serde_json::from_str(t.as_str()).expect("a server message"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next message `pick` accepts, skipping others (presence, chat history).
    async fn recv_until<T>(&mut self, mut pick: impl FnMut(ServerMsg) -> Option<T>) -> T {
        for _ in 0..20 {
            if let Some(found) = pick(self.recv().await) {
                return found;
            }
        }
        panic!("the expected message did not come");
    }

    async fn hello(&mut self, name: &str) -> ServerMsg {
        self.send(json!({"type": "hello", "req": 1, "name": name}));
        self.recv().await
    }

    /// Joins `game` (the free seat, if any) and returns the role the snapshot gives.
    async fn join(&mut self, game: &GameId) -> Role {
        self.send(json!({"type": "join", "req": 2, "game": game}));
        self.recv_until(|m| match m {
            ServerMsg::Snapshot {
                req: Some(2), you, ..
            } => Some(you),
            _ => None,
        })
        .await
    }

    async fn create(&mut self) -> GameId {
        self.send(json!({"type": "create", "req": 2}));
        self.recv_until(|m| match m {
            ServerMsg::Snapshot {
                req: Some(2),
                game,
                you: Role::X,
                ..
            } => Some(game),
            _ => None,
        })
        .await
    }
}

/// A text frame as a server message; pings and other control frames are none.
fn parse(frame: &Message) -> Option<ServerMsg> {
    match frame {
        Message::Text(t) => Some(serde_json::from_str(t.as_str()).expect("a server message")),
        _ => None,
    }
}

fn error_code(msg: &ServerMsg) -> Option<ErrorCode> {
    match msg {
        ServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test]
async fn requests_before_hello_are_refused_with_hello_required() {
    let app = instance(Config::default());
    let mut peer = Peer::connect(&app);
    peer.send(json!({"type": "create", "req": 7}));
    let refused = peer.recv().await;
    assert_eq!(error_code(&refused), Some(ErrorCode::HelloRequired));
    assert_eq!(refused.reply_req(), Some(7));
    // Pings need no session.
    peer.send(json!({"type": "ping", "req": 8}));
    assert_eq!(peer.recv().await, ServerMsg::Pong { req: Some(8) });
}

#[tokio::test]
async fn hello_issues_a_token_and_a_welcome_and_the_token_resumes_the_session() {
    let app = instance(Config::default());
    let mut first = Peer::connect(&app);
    let ServerMsg::Welcome {
        req: Some(1),
        token: Some(token),
        player,
        name,
        resumed: false,
        ..
    } = first.hello("Ann").await
    else {
        panic!("expected a welcome with a new token");
    };
    assert_eq!(name, "Ann");

    let mut again = Peer::connect(&app);
    again.send(json!({"type": "hello", "req": 1, "token": token}));
    let ServerMsg::Welcome {
        token: None,
        player: same,
        resumed: true,
        ..
    } = again.recv().await
    else {
        panic!("expected the session to resume");
    };
    assert_eq!(same, player);
}

#[tokio::test]
async fn a_second_hello_is_refused_and_the_connection_stays_open() {
    let app = instance(Config::default());
    let mut peer = Peer::connect(&app);
    peer.hello("Ann").await;
    peer.send(json!({"type": "hello", "req": 2}));
    assert_eq!(error_code(&peer.recv().await), Some(ErrorCode::BadRequest));
    peer.send(json!({"type": "ping", "req": 3}));
    assert_eq!(peer.recv().await, ServerMsg::Pong { req: Some(3) });
}

#[tokio::test]
async fn create_join_and_move_are_acknowledged_and_reach_both_players() {
    let app = instance(Config::default());
    let mut ann = Peer::connect(&app);
    ann.hello("Ann").await;
    let game = ann.create().await;

    let mut bob = Peer::connect(&app);
    bob.hello("Bob").await;
    assert_eq!(bob.join(&game).await, Role::O);
    let seated = ann
        .recv_until(|m| match m {
            ServerMsg::Seated { version, mark, .. } => Some((version, mark)),
            _ => None,
        })
        .await;
    assert_eq!(seated, (2, Mark::O));

    ann.send(
        json!({"type": "move", "req": 3, "game": game, "cell": 4, "mid": "m-1", "version": 2}),
    );
    let ack = ann
        .recv_until(|m| match m {
            ServerMsg::Ack { req: Some(3), info } => Some(info),
            _ => None,
        })
        .await;
    assert_eq!(
        ack,
        AckInfo {
            version: Some(3),
            ..AckInfo::default()
        }
    );
    for peer in [&mut ann, &mut bob] {
        let moved = peer
            .recv_until(|m| match m {
                ServerMsg::Moved {
                    version,
                    mark,
                    cell,
                    ..
                } => Some((version, mark, cell.index())),
                _ => None,
            })
            .await;
        assert_eq!(moved, (3, Mark::X, 4));
    }
}

/// The mover's connection sends the event right behind the ack, and skips the copy that then
/// comes through pub/sub: each event reaches each connection exactly once, in order.
#[tokio::test]
async fn the_mover_gets_its_event_right_after_the_ack_and_only_once() {
    let app = instance(Config::default());
    let mut ann = Peer::connect(&app);
    ann.hello("Ann").await;
    let game = ann.create().await;
    let mut bob = Peer::connect(&app);
    bob.hello("Bob").await;
    bob.join(&game).await;
    let seated = |m| matches!(m, ServerMsg::Seated { version: 2, .. }).then_some(());
    ann.recv_until(seated).await;

    for (req, cell, version) in [(3, 4, 3), (4, 0, 5)] {
        if version == 5 {
            // Bob's move in between: Ann must see it before her own next event.
            bob.send(json!({"type": "move", "req": 3, "game": game, "cell": 1}));
            let v4 = |m| matches!(m, ServerMsg::Moved { version: 4, .. }).then_some(());
            ann.recv_until(v4).await;
        }
        ann.send(json!({"type": "move", "req": req, "game": game, "cell": cell}));
        // The write that carries the ack carries the event right behind it.
        let after_ack = loop {
            let batch: Vec<ServerMsg> = ann.batch().await.iter().filter_map(parse).collect();
            if let Some(at) = batch.iter().position(|m| {
                matches!(m, ServerMsg::Ack { req: r, info } if *r == Some(req) && info.version == Some(version))
            }) {
                break batch.into_iter().nth(at + 1);
            }
        };
        match after_ack {
            Some(ServerMsg::Moved { version: v, .. }) => assert_eq!(v, version),
            other => panic!("expected the move's event in the ack's write, got {other:?}"),
        }
        // Bob has it, so the hub has queued Ann's copy too; what Ann gets next is the pong,
        // not that copy again.
        let mine = |m| matches!(m, ServerMsg::Moved { version: v, .. } if v == version);
        bob.recv_until(|m| mine(m).then_some(())).await;
        ann.send(json!({"type": "ping", "req": 9}));
        match ann.recv().await {
            ServerMsg::Pong { req: Some(9) } => {}
            other => panic!("expected the pong, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_spectator_cannot_move_and_a_stranger_must_join_first() {
    let app = instance(Config::default());
    let mut ann = Peer::connect(&app);
    ann.hello("Ann").await;
    let game = ann.create().await;

    let mut eve = Peer::connect(&app);
    eve.hello("Eve").await;
    eve.send(json!({"type": "move", "req": 2, "game": game, "cell": 0}));
    assert_eq!(error_code(&eve.recv().await), Some(ErrorCode::NotInGame));
    eve.send(json!({"type": "join", "req": 3, "game": game, "spectate": true}));
    eve.recv_until(|m| {
        matches!(
            m,
            ServerMsg::Snapshot {
                req: Some(3),
                you: Role::Spectator,
                ..
            }
        )
        .then_some(())
    })
    .await;
    eve.send(json!({"type": "move", "req": 4, "game": game, "cell": 0}));
    assert_eq!(
        eve.recv_until(|m| m.reply_req().filter(|r| *r == 4).map(|_| error_code(&m)))
            .await,
        Some(ErrorCode::NotYourSeat)
    );
}

#[tokio::test]
async fn a_binary_frame_is_answered_with_bad_json_and_the_connection_stays_open() {
    let app = instance(Config::default());
    let mut peer = Peer::connect(&app);
    peer.send_frame(Message::Binary(vec![1, 2, 3].into()));
    assert_eq!(error_code(&peer.recv().await), Some(ErrorCode::BadJson));
    peer.send(json!({"type": "ping", "req": 1}));
    assert_eq!(peer.recv().await, ServerMsg::Pong { req: Some(1) });
}

#[tokio::test(start_paused = true)]
async fn no_hello_within_the_timeout_closes_with_1008() {
    let config = Config {
        hello_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    let app = instance(config);
    let mut peer = Peer::connect(&app);
    match peer.frame().await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, close::POLICY),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn shutdown_closes_with_1012_after_hello() {
    let app = instance(Config::default());
    let mut peer = Peer::connect(&app);
    peer.hello("Ann").await;
    app.shutdown.cancel();
    match peer.frame().await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, close::SERVICE_RESTART),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn hello_with_a_token_puts_the_player_back_in_their_games() {
    let app = instance(Config::default());
    let mut first = Peer::connect(&app);
    let ServerMsg::Welcome {
        token: Some(token), ..
    } = first.hello("Ann").await
    else {
        panic!("expected a new token");
    };
    let game = first.create().await;

    let mut back = Peer::connect(&app);
    back.send(json!({"type": "hello", "req": 1, "token": token}));
    assert!(matches!(
        back.recv().await,
        ServerMsg::Welcome { resumed: true, .. }
    ));
    let restored = back
        .recv_until(|m| match m {
            ServerMsg::Snapshot {
                req: None,
                game,
                you,
                ..
            } => Some((game, you)),
            _ => None,
        })
        .await;
    assert_eq!(restored, (game, Role::X));
}

#[tokio::test]
async fn chat_in_a_joined_game_is_acknowledged_and_delivered_with_the_role() {
    let app = instance(Config::default());
    let mut ann = Peer::connect(&app);
    ann.hello("Ann").await;
    let game = ann.create().await;
    ann.send(json!({"type": "chat", "req": 3, "game": game, "text": "  hello  "}));
    let mut acked = false;
    let line = ann
        .recv_until(|m| match m {
            ServerMsg::Ack { req: Some(3), .. } => {
                acked = true;
                None
            }
            ServerMsg::Chat { line, .. } => Some(line),
            _ => None,
        })
        .await;
    assert!(acked, "the ack comes before the line is delivered");
    assert_eq!(
        (line.from.as_str(), line.role, line.text.as_str()),
        ("Ann", Some(Role::X), "hello")
    );
}

/// An idle connection's memory is mostly the state its task keeps. Each phase is boxed and
/// sized for itself, so the task holds little beyond the loop's state: inlined phases once
/// made every idle connection's task 5.7 KB instead of about 0.7.
#[tokio::test]
async fn a_connection_task_stays_small() {
    let app = instance(Config::default());
    let (socket, _to_server, _from_server) = ChannelSocket::pair();
    let task = serve(app, Box::new(socket), IpAddr::from([127, 0, 0, 1]));
    let size = std::mem::size_of_val(&task);
    assert!(size <= 1024, "the connection's future is {size} bytes");
}
