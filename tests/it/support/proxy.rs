//! A TCP proxy on 127.0.0.1 that can hang the links through it: frozen connections stay open
//! and the kernel keeps accepting their bytes, but nothing is forwarded either way and nothing
//! is reset, as with a wedged middlebox or a peer host that died before TCP gave up. New
//! connections still pass unless the proxy is told to hang those too. It can also slow every
//! link down, as a distant or congested Redis would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct FreezeProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: SocketAddr,
    /// One token per open connection: cancelling it freezes that connection.
    open: Mutex<Vec<CancellationToken>>,
    /// New connections are accepted and frozen at once, never reaching the upstream.
    hang_new: AtomicBool,
    accepted: AtomicUsize,
    /// Microseconds each chunk waits before it is forwarded, either way.
    delay_us: AtomicU64,
    /// Cancelled on drop: every task and socket goes away with the proxy.
    stop: CancellationToken,
}

impl FreezeProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FreezeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Shared {
            upstream,
            open: Mutex::new(Vec::new()),
            hang_new: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            delay_us: AtomicU64::new(0),
            stop: CancellationToken::new(),
        });
        tokio::spawn(accept_loop(listener, shared.clone()));
        FreezeProxy { addr, shared }
    }

    /// A proxy in front of a Redis on this machine.
    pub async fn to_redis(port: u16) -> FreezeProxy {
        FreezeProxy::start(SocketAddr::from(([127, 0, 0, 1], port))).await
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Hangs every connection open now; connections made afterwards work.
    pub fn freeze_open(&self) {
        for token in self.shared.open.lock().unwrap().drain(..) {
            token.cancel();
        }
    }

    /// While set, new connections are accepted and hung at once: together with
    /// [`Self::freeze_open`], the far side is unreachable from behind this proxy.
    pub fn hang_new(&self, on: bool) {
        self.shared.hang_new.store(on, Ordering::SeqCst);
    }

    /// Delays every chunk forwarded from now on by `d`, each way: a round trip through the
    /// proxy takes at least twice that.
    pub fn set_delay(&self, d: Duration) {
        self.shared
            .delay_us
            .store(d.as_micros() as u64, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FreezeProxy {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let client = tokio::select! {
            _ = shared.stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(_) => continue,
            },
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let frozen = CancellationToken::new();
        if shared.hang_new.load(Ordering::SeqCst) {
            frozen.cancel();
        } else {
            shared.open.lock().unwrap().push(frozen.clone());
        }
        tokio::spawn(pipe(client, shared.clone(), frozen));
    }
}

/// Forwards both ways until the connection is frozen or either side closes; a frozen
/// connection's sockets are held open, unread, until the proxy is dropped.
async fn pipe(mut client: TcpStream, shared: Arc<Shared>, frozen: CancellationToken) {
    let mut upstream = None;
    if !frozen.is_cancelled() {
        match TcpStream::connect(shared.upstream).await {
            Ok(mut up) => {
                let _ = up.set_nodelay(true);
                let _ = client.set_nodelay(true);
                tokio::select! {
                    _ = shared.stop.cancelled() => return,
                    _ = frozen.cancelled() => {}
                    // Either side closed: close the other one too.
                    _ = forward_both(&mut client, &mut up, &shared) => return,
                }
                upstream = Some(up);
            }
            Err(_) => return,
        }
    }
    shared.stop.cancelled().await;
    drop((client, upstream));
}

/// Copies both ways until either side closes, each chunk held back by the current delay.
async fn forward_both(a: &mut TcpStream, b: &mut TcpStream, shared: &Shared) {
    let (mut ar, mut aw) = a.split();
    let (mut br, mut bw) = b.split();
    tokio::select! {
        _ = forward(&mut ar, &mut bw, shared) => {}
        _ = forward(&mut br, &mut aw, shared) => {}
    }
}

async fn forward(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    shared: &Shared,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let delay = shared.delay_us.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_micros(delay)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
