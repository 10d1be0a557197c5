//! The accept loop: admits each TCP connection (or refuses it at once, without ever failing
//! `accept` for want of file descriptors), tunes its socket, and serves HTTP/1 on it with a
//! deadline for the request headers, until shutdown. Upgraded connections leave this loop and
//! live on as WebSocket connections (`connection`), tracked by the app.
//!
//! It replaces `axum::serve`, which has no header-read timeout and no connection caps: a
//! silent or dripping socket would otherwise be held forever. The game port and the metrics
//! port each run one, with their own [`Gate`].
//!
//! A full instance still answers its health checks: a few connections beyond the cap (a
//! handful per address) are read for their request line, and `/healthz` says the process is
//! alive while `/readyz` says it is full; anything else is refused as before. An orchestrator
//! then stops sending players without restarting the instance and dropping everyone on it.

use crate::admission::{Admission, Refusal};
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

/// Kernel send buffer per connection (Linux doubles it). Game frames are a few hundred
/// bytes; an autotuned buffer would let a client that stopped reading park megabytes in the
/// kernel before its own queue ever filled and it was closed.
const SEND_BUFFER: usize = 64 * 1024;

/// Refusals answered politely at once (response written, the request read away so that the
/// close does not turn into a reset that destroys the response). More than this are answered
/// with one non-blocking write and closed.
pub const POLITE_REFUSALS: usize = 64;
/// How long a polite refusal waits for the client's request before closing.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Connections beyond the cap read for a health check at once, in all and per address.
const PROBE_LANE: usize = 16;
const PROBE_LANE_PER_ADDRESS: usize = 2;
/// The longest request line a health check needs.
const PROBE_REQUEST_MAX: usize = 1024;

/// Who may connect to one listener, and how long they have to speak.
pub struct Gate {
    /// The listener's connection caps.
    pub admission: Arc<Admission>,
    /// Peers exempt from the per-address caps (the load balancer).
    pub trusted: crate::trusted_proxies::TrustedProxies,
    pub header_read_timeout: Duration,
    /// Refusals answered politely at once; more are answered with one write and closed.
    pub polite_refusals: usize,
}

/// An address as it is compared, counted and logged: an IPv4 client reaching an IPv6 socket
/// arrives as `::ffff:a.b.c.d`, and is the IPv4 address it maps.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Accepts on `listener` until `shutdown`, then stops accepting, asks open HTTP connections to
/// finish (idle ones close at once) and waits up to `grace` for them.
pub async fn serve(
    listener: TcpListener,
    gate: Gate,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) {
    // HTTP exchanges in progress; upgraded connections are tracked by `App::connections`.
    let exchanges = TaskTracker::new();
    let polite = Arc::new(Semaphore::new(gate.polite_refusals));
    let probe_lane = Arc::new(Admission::new(
        PROBE_LANE,
        PROBE_LANE_PER_ADDRESS,
        PROBE_LANE_PER_ADDRESS,
    ));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(gate.header_read_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors despite the cap (or a connection reset while it
                    // waited in the backlog): the pending connection stays queued; try again
                    // shortly rather than spin.
                    metrics::counter!("accept_errors_total").increment(1);
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let peer = SocketAddr::new(canonical(peer.ip()), peer.port());
        let exempt = gate.trusted.contains(&peer.ip());
        let slot = match gate.admission.admit(peer.ip(), exempt) {
            Ok(slot) => slot,
            Err(refusal) => {
                metrics::counter!("connections_refused_total", "reason" => refusal.label())
                    .increment(1);
                match probe_lane.admit(peer.ip(), false) {
                    Ok(lane) if refusal == Refusal::Full => {
                        exchanges.spawn(answer_when_full(stream, lane));
                    }
                    _ => refuse(stream, refusal, &polite),
                }
                continue;
            }
        };
        tune_socket(&stream);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            async move { router.call(req).await }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let shutdown = shutdown.clone();
        exchanges.spawn(async move {
            let mut conn = std::pin::pin!(conn.with_upgrades());
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                // Header timeouts, resets, malformed requests: the client's business.
                tracing::debug!(error = %e, %peer, "HTTP connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    exchanges.close();
    if tokio::time::timeout(grace, exchanges.wait()).await.is_err() {
        tracing::warn!(
            remaining = exchanges.len(),
            "HTTP connections still open after the grace period"
        );
    }
}

fn tune_socket(stream: &TcpStream) {
    // A move is one small frame that must leave at once, not wait for Nagle's algorithm.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
    if let Err(e) = socket2::SockRef::from(stream).set_send_buffer_size(SEND_BUFFER) {
        tracing::debug!(error = %e, "SO_SNDBUF not set");
    }
}

/// Answers a connection that came while the listener was full: a health check as such, any
/// other request with the usual 503. The lane's slot bounds how many wait at once.
async fn answer_when_full(mut stream: TcpStream, lane: crate::admission::Slot) {
    let _lane = lane;
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        let mut head = Vec::with_capacity(256);
        let mut buf = [0u8; 256];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < PROBE_REQUEST_MAX {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            head.extend_from_slice(&buf[..n]);
        }
        answer_and_close(&mut stream, &full_response(&head)).await
    })
    .await;
}

/// Writes `response`, then reads what the client sent until it closes, so that the close is
/// orderly (a close with unread data becomes a reset, which destroys the response).
async fn answer_and_close(stream: &mut TcpStream, response: &[u8]) -> std::io::Result<()> {
    stream.write_all(response).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 1024];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}

/// What a full listener answers to the request beginning with `head`.
fn full_response(head: &[u8]) -> Vec<u8> {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let target = line.split(|&b| b == b' ').nth(1).unwrap_or_default();
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let get = line.starts_with(b"GET ") || line.starts_with(b"HEAD ");
    match (get, path) {
        (true, b"/healthz") => response("200 OK", "text/plain; charset=utf-8", "ok\n"),
        (true, b"/readyz") => response(
            "503 Service Unavailable",
            "application/json",
            "{\"ready\":false,\"full\":true}",
        ),
        _ => refusal_response(Refusal::Full),
    }
}

fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\nretry-after: 1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers a connection that was not admitted and closes it.
fn refuse(stream: TcpStream, refusal: Refusal, polite: &Arc<Semaphore>) {
    let response = refusal_response(refusal);
    let Ok(permit) = polite.clone().try_acquire_owned() else {
        let _ = stream.try_write(&response);
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        let _ =
            tokio::time::timeout(REFUSAL_LINGER, answer_and_close(&mut stream, &response)).await;
    });
}

fn refusal_response(refusal: Refusal) -> Vec<u8> {
    let (status, body) = match refusal {
        Refusal::Full => ("503 Service Unavailable", "server full: retry shortly\n"),
        Refusal::Address => (
            "429 Too Many Requests",
            "too many connections from this address\n",
        ),
    };
    response(status, "text/plain; charset=utf-8", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_complete_http_responses() {
        for (refusal, status) in [(Refusal::Full, "503"), (Refusal::Address, "429")] {
            let text = String::from_utf8(refusal_response(refusal)).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")));
            assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        }
    }

    #[test]
    fn a_full_listener_says_alive_but_not_ready() {
        let status = |req: &str| {
            let r = String::from_utf8(full_response(req.as_bytes())).unwrap();
            r.split(' ').nth(1).unwrap().to_string()
        };
        assert_eq!(status("GET /healthz HTTP/1.1\r\nHost: x\r\n"), "200");
        assert_eq!(status("GET /healthz?full=1 HTTP/1.1\r\n"), "200");
        assert_eq!(status("GET /readyz HTTP/1.1\r\n"), "503");
        assert_eq!(status("GET /ws HTTP/1.1\r\n"), "503");
        assert_eq!(status("POST /healthz HTTP/1.1\r\n"), "503");
        assert_eq!(status("GET /healthzz HTTP/1.1\r\n"), "503");
        assert_eq!(status(""), "503");
    }

    #[test]
    fn ipv4_mapped_peers_are_their_ipv4_address() {
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(canonical(mapped), "127.0.0.1".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }
}
