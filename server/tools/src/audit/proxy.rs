//! A userspace TCP proxy on 127.0.0.1 whose links can be frozen or degraded while they run,
//! for the chaos run's network faults (this kernel has no `tc netem`).
//!
//! - **frozen**: nothing is forwarded either way and nothing is closed; bytes wait in the
//!   proxy and the kernel, as behind a wedged middlebox. New connections are accepted and
//!   wait too. Thawed, everything that waited is delivered, late: a command the instance gave
//!   up on may still reach Redis.
//! - **degraded**: every chunk is delayed by `delay`, and with probability `loss` by one
//!   retransmission timeout more (200 ms, Linux's minimum RTO): what a lost segment costs a
//!   TCP stream, which never loses bytes. Order is kept.

use super::super::loadgen::Rng;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a lost segment costs: Linux's minimum retransmission timeout.
const RTO: Duration = Duration::from_millis(200);
/// Chunks in flight per direction while degraded.
const QUEUE: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LinkState {
    Normal,
    Frozen,
    Degraded { delay: Duration, loss: f64 },
}

pub struct FaultProxy {
    pub name: String,
    pub addr: SocketAddr,
    state: watch::Sender<LinkState>,
    stop: CancellationToken,
}

impl FaultProxy {
    /// Listens on `listen` and forwards every connection to `upstream`.
    pub async fn start(
        name: &str,
        listen: SocketAddr,
        upstream: SocketAddr,
        seed: u64,
    ) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (state, _) = watch::channel(LinkState::Normal);
        let stop = CancellationToken::new();
        let shared = Shared {
            upstream,
            state: state.clone(),
            rng: Arc::new(Mutex::new(Rng::new(seed))),
            stop: stop.clone(),
        };
        tokio::spawn(accept_loop(listener, shared));
        Ok(FaultProxy {
            name: name.to_string(),
            addr,
            state,
            stop,
        })
    }

    pub fn set(&self, state: LinkState) {
        self.state.send_replace(state);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Clone)]
struct Shared {
    upstream: SocketAddr,
    state: watch::Sender<LinkState>,
    /// Loss draws, shared by every link: seeded, though the interleaving is the scheduler's.
    rng: Arc<Mutex<Rng>>,
    stop: CancellationToken,
}

impl Shared {
    /// Waits while the links are frozen; false once the proxy stops.
    async fn unfrozen(&self) -> bool {
        let mut rx = self.state.subscribe();
        tokio::select! {
            _ = self.stop.cancelled() => false,
            r = rx.wait_for(|s| *s != LinkState::Frozen) => r.is_ok(),
        }
    }

    /// When a chunk read now may be delivered.
    fn due(&self, now: Instant) -> Instant {
        match *self.state.borrow() {
            LinkState::Degraded { delay, loss } => {
                let lost = {
                    let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                    (rng.below(1_000_000) as f64) < loss * 1_000_000.0
                };
                now + delay + if lost { RTO } else { Duration::ZERO }
            }
            _ => now,
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Shared) {
    loop {
        let client = tokio::select! {
            _ = shared.stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(_) => continue,
            },
        };
        tokio::spawn(link(client, shared.clone()));
    }
}

async fn link(client: TcpStream, shared: Shared) {
    // A frozen path hangs new connections too, before they reach the far side.
    if !shared.unfrozen().await {
        return;
    }
    let Ok(upstream) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    tokio::join!(
        direction(cr, uw, shared.clone()),
        direction(ur, cw, shared.clone())
    );
}

/// Forwards one direction until its reader ends (then shuts the writer) or the proxy stops.
async fn direction(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, shared: Shared) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE);
    let reader = {
        let shared = shared.clone();
        async move {
            let mut last_due = Instant::now();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                if !shared.unfrozen().await {
                    return;
                }
                let n = tokio::select! {
                    _ = shared.stop.cancelled() => return,
                    r = from.read(&mut buf) => match r {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    },
                };
                // Never before an earlier chunk: a stream keeps its order.
                last_due = shared.due(Instant::now()).max(last_due);
                if tx.send((last_due, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    };
    let writer = async {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::select! {
                _ = shared.stop.cancelled() => return,
                _ = tokio::time::sleep_until(due) => {}
            }
            if !shared.unfrozen().await || to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream, within: Duration) -> Option<Duration> {
        let t = Instant::now();
        s.write_all(b"ping").await.ok()?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(within, s.read_exact(&mut buf))
            .await
            .ok()?
            .ok()?;
        assert_eq!(&buf, b"ping");
        Some(t.elapsed())
    }

    #[tokio::test]
    async fn a_frozen_link_delivers_nothing_until_thawed_then_everything() {
        let proxy = FaultProxy::start("p", "127.0.0.1:0".parse().unwrap(), echo_server().await, 1)
            .await
            .unwrap();
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        assert!(round_trip(&mut s, Duration::from_secs(5)).await.is_some());
        proxy.set(LinkState::Frozen);
        assert_eq!(round_trip(&mut s, Duration::from_millis(300)).await, None);
        proxy.set(LinkState::Normal);
        // The frozen "ping" arrives now, then this one.
        let mut buf = [0u8; 8];
        s.write_all(b"ping").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"pingping");
    }

    #[tokio::test]
    async fn a_degraded_link_adds_its_delay_each_way() {
        let proxy = FaultProxy::start("p", "127.0.0.1:0".parse().unwrap(), echo_server().await, 1)
            .await
            .unwrap();
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        proxy.set(LinkState::Degraded {
            delay: Duration::from_millis(50),
            loss: 0.0,
        });
        let rtt = round_trip(&mut s, Duration::from_secs(5)).await.unwrap();
        assert!(rtt >= Duration::from_millis(100), "{rtt:?}");
        // Every chunk "lost": one RTO more each way.
        proxy.set(LinkState::Degraded {
            delay: Duration::ZERO,
            loss: 1.0,
        });
        let rtt = round_trip(&mut s, Duration::from_secs(5)).await.unwrap();
        assert!(rtt >= 2 * RTO, "{rtt:?}");
        proxy.set(LinkState::Normal);
        assert!(round_trip(&mut s, Duration::from_secs(5)).await.is_some());
    }
}
