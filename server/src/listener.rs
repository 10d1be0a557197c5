//! The accept loop: admits each TCP connection (or refuses it at once, without ever failing
//! `accept` for want of file descriptors), tunes its socket, and serves HTTP/1 on it with a
//! deadline for the request headers, until shutdown. Upgraded connections leave this loop and
//! live on as WebSocket connections (`connection`), tracked by the app.
//!
//! It replaces `axum::serve`, which has no header-read timeout and no connection caps: a
//! silent or dripping socket would otherwise be held forever.

use crate::admission::Refusal;
use crate::app::App;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
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
const POLITE_REFUSALS: usize = 64;
/// How long a polite refusal waits for the client's request before closing.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Accepts on `listener` until `shutdown`, then stops accepting, asks open HTTP connections to
/// finish (idle ones close at once) and waits up to `grace` for them.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) {
    // HTTP exchanges in progress; upgraded connections are tracked by `App::connections`.
    let exchanges = TaskTracker::new();
    let polite = Arc::new(Semaphore::new(POLITE_REFUSALS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(app.config.header_read_timeout);
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
        let exempt = app.trusted_proxies.contains(&peer.ip());
        let slot = match app.admission.admit(peer.ip(), exempt) {
            Ok(slot) => slot,
            Err(refusal) => {
                metrics::counter!("connections_refused_total", "reason" => refusal.label())
                    .increment(1);
                refuse(stream, refusal, &polite);
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
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            stream.write_all(&response).await?;
            stream.shutdown().await?;
            // Read what the client sent until it closes, so the close is orderly.
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
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
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
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
}
