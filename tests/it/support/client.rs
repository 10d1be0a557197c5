//! The WebSocket test client: requests matched to their replies by `req`, events waited for
//! by predicate (the others kept for later), and never a receive without a timeout; plus the
//! small readers of replies the tests share.

use super::WAIT;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tictactoe_protocol::{ErrorCode, ServerMsg};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Where a test client can connect: an instance in this process or an instance process.
pub trait Endpoint {
    fn ws_url(&self) -> String;
}

/// A client connected to `at` that has said hello as `name`.
pub async fn player(at: &impl Endpoint, name: &str) -> Ws {
    let mut ws = Ws::connect(&at.ws_url()).await;
    ws.hello(name).await;
    ws
}

/// The session of `ws` on another connection, to `at`: a client that reconnected.
pub async fn reconnected(ws: &Ws, at: &impl Endpoint, name: &str) -> Ws {
    let mut again = Ws::connect(&at.ws_url()).await;
    again.token = ws.token.clone();
    again.hello(name).await;
    again
}

/// A test WebSocket client speaking the protocol.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_req: u64,
    /// Messages received while waiting for something else, oldest first.
    backlog: VecDeque<ServerMsg>,
    pub token: Option<String>,
    pub player: Option<String>,
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        let (stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("websocket connect");
        Ws::over(stream)
    }

    /// Connects with a small kernel receive buffer, as a client that reads slowly looks to
    /// the server: what it does not read backs up into the server's queue instead of
    /// megabytes of loopback buffer.
    pub async fn connect_small_buffer(url: &str, addr: std::net::SocketAddr) -> Ws {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let tcp = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        let (stream, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp)),
        )
        .await
        .expect("handshake timed out")
        .expect("websocket handshake");
        Ws::over(stream)
    }

    fn over(stream: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Ws {
        Ws {
            stream,
            next_req: 1,
            backlog: Default::default(),
            token: None,
            player: None,
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    /// The next server message (from the backlog first).
    pub async fn recv(&mut self) -> ServerMsg {
        if let Some(m) = self.backlog.pop_front() {
            return m;
        }
        self.recv_wire().await
    }

    async fn recv_wire(&mut self) -> ServerMsg {
        loop {
            let frame = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("timed out waiting for a message")
                .expect("connection closed while waiting for a message")
                .expect("websocket error");
            match frame {
                Message::Text(t) => {
                    return serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("server sent a non-protocol message {t}: {e}"));
                }
                Message::Close(c) => panic!("connection closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// Waits for the first message matching `pred`, keeping the others for later `recv`s.
    pub async fn recv_until(&mut self, mut pred: impl FnMut(&ServerMsg) -> bool) -> ServerMsg {
        if let Some(i) = self.backlog.iter().position(&mut pred) {
            return self.backlog.remove(i).expect("index");
        }
        loop {
            let m = self.recv_wire().await;
            if pred(&m) {
                return m;
            }
            self.backlog.push_back(m);
        }
    }

    /// Sends a request with a fresh `req` and returns the reply carrying it.
    pub async fn request(&mut self, mut v: Value) -> ServerMsg {
        let req = self.next_req;
        self.next_req += 1;
        v["req"] = json!(req);
        self.send(v).await;
        self.recv_until(|m| reply_req(m) == Some(req)).await
    }

    pub async fn hello(&mut self, name: &str) -> ServerMsg {
        let mut v = json!({"type": "hello", "name": name});
        if let Some(t) = &self.token {
            v["token"] = json!(t);
        }
        let reply = self.request(v).await;
        match &reply {
            ServerMsg::Welcome { token, player, .. } => {
                if let Some(t) = token {
                    self.token = Some(t.clone());
                }
                self.player = Some(player.to_string());
            }
            other => panic!("expected welcome, got {other:?}"),
        }
        reply
    }

    /// `hello` with this client's token and the games (with last versions) it was in.
    pub async fn hello_resume(&mut self, name: &str, games: &[(&str, u64)]) -> ServerMsg {
        let resume: Vec<Value> = games
            .iter()
            .map(|(g, v)| json!({"game": g, "version": v}))
            .collect();
        let v = json!({"type": "hello", "name": name, "token": self.token, "resume": resume});
        let reply = self.request(v).await;
        if let ServerMsg::Welcome {
            token: Some(t),
            player,
            ..
        } = &reply
        {
            self.token = Some(t.clone());
            self.player = Some(player.to_string());
        }
        reply
    }

    /// Sends `v` again (same move id and all) while the answer is `unavailable`, as a client
    /// does while Redis comes back; returns the first other answer.
    pub async fn request_until_available(&mut self, v: Value) -> ServerMsg {
        let deadline = Instant::now() + WAIT;
        loop {
            let reply = self.request(v.clone()).await;
            if !matches!(
                reply,
                ServerMsg::Error {
                    code: ErrorCode::Unavailable,
                    ..
                }
            ) {
                return reply;
            }
            assert!(
                Instant::now() < deadline,
                "still unavailable after {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a game and returns its id (this client sits as X).
    pub async fn create(&mut self) -> String {
        match self.request(json!({"type": "create"})).await {
            ServerMsg::Snapshot { game, .. } => game.to_string(),
            other => panic!("expected snapshot, got {other:?}"),
        }
    }

    pub async fn join(&mut self, game: &str) -> ServerMsg {
        self.request(json!({"type": "join", "game": game})).await
    }

    pub async fn play(&mut self, game: &str, cell: i64) -> ServerMsg {
        self.request(json!({"type": "move", "game": game, "cell": cell}))
            .await
    }

    /// Waits for the versioned event `version` of `game`.
    pub async fn event(&mut self, game: &str, version: u64) -> ServerMsg {
        self.recv_until(|m| {
            m.game_version()
                .is_some_and(|(g, v)| g.as_str() == game && v == version)
        })
        .await
    }

    /// Waits for the connection to be closed by the server and returns the close frame.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        loop {
            match tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("timed out waiting for close")
            {
                Some(Ok(Message::Close(c))) => return c,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }

    /// Messages that arrive within `d` (for asserting that nothing else arrives).
    pub async fn drain_for(&mut self, d: Duration) -> Vec<ServerMsg> {
        let mut out: Vec<ServerMsg> = self.backlog.drain(..).collect();
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, self.stream.next()).await
        {
            if let Message::Text(t) = frame {
                out.push(serde_json::from_str(t.as_str()).expect("protocol message"));
            }
        }
        out
    }
}

/// Connects with extra handshake headers; `Err` carries the HTTP status of a refusal.
pub async fn try_connect(url: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().expect("request");
    for (k, v) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes())
                .expect("header name"),
            v.parse().expect("header value"),
        );
    }
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect timed out")
    {
        Ok((stream, _)) => Ok(Ws::over(stream)),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("connect failed: {e}"),
    }
}

/// Says hello as "ann" on `x` and "bob" on `o`; ann creates a game and bob takes O.
pub async fn seat_pair(mut x: Ws, mut o: Ws) -> (Ws, Ws, String) {
    x.hello("ann").await;
    o.hello("bob").await;
    let game = x.create().await;
    o.join(&game).await;
    (x, o, game)
}

/// The request id a reply echoes.
pub fn reply_req(m: &ServerMsg) -> Option<u64> {
    m.reply_req()
}

/// The error code of a reply, panicking if it is not an error.
pub fn error_code(m: &ServerMsg) -> ErrorCode {
    match m {
        ServerMsg::Error { code, .. } => *code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// The version an ack reports.
pub fn ack_version(m: &ServerMsg) -> u64 {
    match m {
        ServerMsg::Ack { info, .. } => info.version.expect("ack with a version"),
        other => panic!("expected an ack, got {other:?}"),
    }
}

/// A rate-limited error's `retry_after_ms`, panicking on anything else.
pub fn retry_after(m: &ServerMsg) -> u64 {
    match m {
        ServerMsg::Error {
            code: ErrorCode::RateLimited,
            retry_after_ms: Some(ms),
            ..
        } => *ms,
        other => panic!("expected rate_limited, got {other:?}"),
    }
}
