//! Opening one client connection: a socket bound to a chosen source address, a WebSocket
//! handshake, and the protocol's request/reply, each bounded by a timeout and each failure
//! named by a short kind for the report.

use futures_util::{SinkExt, StreamExt};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tictactoe_protocol::{ClientMsg, ErrorCode, ServerMsg};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

pub type Ws = WebSocketStream<TcpStream>;

/// TCP connect, then the HTTP upgrade: each may wait this long. A listen backlog that
/// overflowed makes the kernel retry SYNs after 1 s, 3 s...: this still leaves room for that.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a reply to a request (hello, create, join).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for one frame to be written.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for our close handshake at the end.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Server frames are a few hundred bytes; tungstenite's 128 KiB default read buffer would
/// cost gigabytes at tens of thousands of client connections.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(256 * 1024))
        .max_frame_size(Some(256 * 1024))
}

/// Why something failed: a kind for the transport table, an error code the server sent, or
/// the run being stopped (which is not a failure at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Transport(String),
    Server(ErrorCode),
    Stopped,
}

impl Failure {
    pub fn transport(kind: &str) -> Failure {
        Failure::Transport(kind.to_string())
    }
}

/// A URL checked and resolved once, before any connection.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub addr: Result<SocketAddr, String>,
}

/// Parses a `ws://host:port/path` URL and resolves its host, preferring IPv4 (loopback
/// source addresses are IPv4).
pub async fn resolve(url: &str) -> Target {
    let addr = async {
        let request = url
            .into_client_request()
            .map_err(|e| format!("not a WebSocket URL: {e}"))?;
        let uri = request.uri();
        if uri.scheme_str() != Some("ws") {
            return Err("only ws:// URLs are supported (no TLS in the load generator)".into());
        }
        let host = uri.host().ok_or("the URL has no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((host, port)),
        )
        .await
        .map_err(|_| format!("resolving {host} timed out"))?
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| format!("{host} has no address"))
    }
    .await;
    Target {
        url: url.to_string(),
        addr,
    }
}

/// The kind of an I/O error, as named in the report.
fn io_kind(prefix: &str, e: &std::io::Error) -> Failure {
    use std::io::ErrorKind as K;
    // EMFILE has no stable ErrorKind; it is the usual wall at high connection counts.
    if e.raw_os_error() == Some(24) {
        return Failure::transport("too_many_open_files");
    }
    let kind = match e.kind() {
        K::ConnectionRefused => "refused",
        K::ConnectionReset => "reset",
        K::ConnectionAborted => "aborted",
        K::AddrNotAvailable => "addr_not_available",
        K::AddrInUse => "addr_in_use",
        K::TimedOut => "timeout",
        K::BrokenPipe => "broken_pipe",
        K::UnexpectedEof => "eof",
        _ => "io",
    };
    Failure::Transport(format!("{prefix}_{kind}"))
}

/// The kind of a WebSocket error on an open connection.
pub fn ws_error_kind(e: &WsError) -> Failure {
    match e {
        WsError::Io(io) => io_kind("ws", io),
        WsError::ConnectionClosed | WsError::AlreadyClosed => Failure::transport("ws_closed"),
        WsError::Protocol(_) => Failure::transport("ws_protocol"),
        WsError::Capacity(_) => Failure::transport("ws_capacity"),
        WsError::Utf8(_) => Failure::transport("ws_utf8"),
        _ => Failure::transport("ws_other"),
    }
}

/// Connects a socket bound to `source` (port chosen by the kernel) and upgrades it.
pub async fn connect(url: &str, addr: SocketAddr, source: Option<IpAddr>) -> Result<Ws, Failure> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| io_kind("socket", &e))?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| io_kind("bind", &e))?;
    }
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr))
        .await
        .map_err(|_| Failure::transport("connect_timeout"))?
        .map_err(|e| io_kind("connect", &e))?;
    // One small frame per move: without this, Nagle holds a frame back until the previous
    // one is acknowledged, which would measure delayed ACKs instead of the server.
    stream
        .set_nodelay(true)
        .map_err(|e| io_kind("socket", &e))?;
    let upgrade = tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()));
    match tokio::time::timeout(CONNECT_TIMEOUT, upgrade).await {
        Err(_) => Err(Failure::transport("handshake_timeout")),
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(WsError::Http(response))) => Err(Failure::Transport(format!(
            "handshake_http_{}",
            response.status().as_u16()
        ))),
        Ok(Err(WsError::Io(e))) => Err(io_kind("handshake", &e)),
        Ok(Err(_)) => Err(Failure::transport("handshake_error")),
    }
}

/// Sends one client message as a text frame.
pub async fn send(ws: &mut Ws, msg: &ClientMsg) -> Result<(), Failure> {
    let text = serde_json::to_string(msg).map_err(|_| Failure::transport("encode"))?;
    match tokio::time::timeout(SEND_TIMEOUT, ws.send(Message::Text(text.into()))).await {
        Err(_) => Err(Failure::transport("send_timeout")),
        Ok(Err(e)) => Err(ws_error_kind(&e)),
        Ok(Ok(())) => Ok(()),
    }
}

/// What one frame from the server means to a client.
pub enum Incoming {
    Msg(Box<ServerMsg>),
    /// Control frames and anything else that needs no action.
    Nothing,
}

/// Interprets one item of the WebSocket stream. The end of the stream, a close frame or an
/// unparseable message all end the connection for us.
pub fn incoming(item: Option<Result<Message, WsError>>) -> Result<Incoming, Failure> {
    match item {
        None => Err(Failure::transport("eof")),
        Some(Err(e)) => Err(ws_error_kind(&e)),
        Some(Ok(Message::Text(text))) => serde_json::from_str::<ServerMsg>(text.as_str())
            .map(|m| Incoming::Msg(Box::new(m)))
            .map_err(|_| Failure::transport("bad_message")),
        Some(Ok(Message::Close(frame))) => Err(Failure::Transport(match frame {
            Some(f) => format!("closed_{}", u16::from(f.code)),
            None => "closed".into(),
        })),
        Some(Ok(_)) => Ok(Incoming::Nothing),
    }
}

/// Sends `msg` (carrying request id `req`) and waits for its reply, skipping whatever else
/// arrives meanwhile: during set-up the game state comes from the replies themselves.
pub async fn request(ws: &mut Ws, msg: &ClientMsg, req: u64) -> Result<ServerMsg, Failure> {
    send(ws, msg).await?;
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        let item = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| Failure::transport("reply_timeout"))?;
        if let Incoming::Msg(m) = incoming(item)?
            && m.reply_req() == Some(req)
        {
            return match *m {
                ServerMsg::Error { code, .. } => Err(Failure::Server(code)),
                other => Ok(other),
            };
        }
    }
}

/// Closes politely, without waiting long for the server's answer.
pub async fn close(mut ws: Ws) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_urls_are_reported_not_resolved() {
        for url in ["http://127.0.0.1:1/ws", "not a url", "wss://127.0.0.1:1/ws"] {
            assert!(resolve(url).await.addr.is_err(), "{url}");
        }
        let t = resolve("ws://127.0.0.1:8080/ws").await;
        assert_eq!(t.addr, Ok("127.0.0.1:8080".parse().unwrap()));
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_named_failure() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let url = format!("ws://{addr}/ws");
        let e = connect(&url, addr, Some("127.0.0.1".parse().unwrap()))
            .await
            .err();
        assert_eq!(e, Some(Failure::transport("connect_refused")));
    }

    #[test]
    fn close_frames_and_garbage_end_the_connection_with_a_kind() {
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        let close = Message::Close(Some(CloseFrame {
            code: CloseCode::from(4001),
            reason: "too slow".into(),
        }));
        assert_eq!(
            incoming(Some(Ok(close))).err(),
            Some(Failure::transport("closed_4001"))
        );
        assert_eq!(
            incoming(Some(Ok(Message::Text("{".into())))).err(),
            Some(Failure::transport("bad_message"))
        );
        assert_eq!(incoming(None).err(), Some(Failure::transport("eof")));
        assert!(matches!(
            incoming(Some(Ok(Message::Ping(Default::default())))),
            Ok(Incoming::Nothing)
        ));
    }
}
