//! Who may hold a socket on this instance: a cap on all open connections, and per client
//! address a cap on connections that have not become WebSockets yet and one on WebSockets.
//! Counted in process, since what they protect (file descriptors, memory) is the instance's
//! own. A slot is an RAII guard: it is given back however the connection ends.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// File descriptors kept back from `MAX_CONNECTIONS` when it is derived from the open-file
/// limit: Redis connections, files of the page, refusals in progress, the runtime's own.
const MIN_FD_RESERVE: u64 = 128;

/// Connections the metrics listener (`METRICS_ADDR`) holds at most; a few per address. Its
/// scrapers are a handful of collectors, not the public.
pub const METRICS_MAX_OPEN: usize = 16;
pub const METRICS_PER_ADDRESS: usize = 4;

/// The connection cap in force: `MAX_CONNECTIONS`, but never above the open-file limit minus a
/// reserve (a tenth of the limit, at least [`MIN_FD_RESERVE`]) and minus `elsewhere`, what
/// other listeners of the process may hold.
pub fn connection_cap(configured: usize, elsewhere: usize) -> usize {
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    let reserve = (limit / 10).max(MIN_FD_RESERVE) + elsewhere as u64;
    let ceiling = limit.saturating_sub(reserve).max(1) as usize;
    match configured {
        0 => ceiling,
        n if n > ceiling => {
            tracing::warn!(
                configured = n,
                open_file_limit = limit,
                "MAX_CONNECTIONS lowered to {ceiling}: more would run out of file descriptors"
            );
            ceiling
        }
        n => n,
    }
}

/// The address a per-address budget is kept for: IPv4 addresses as they are, IPv6 ones by
/// their /64 (one subscriber usually gets a whole /64 and picks addresses in it at will), an
/// IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn budget_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The instance holds as many connections as it may (503).
    Full,
    /// This address holds as many as it may (429).
    Address,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Full => "full",
            Refusal::Address => "address",
        }
    }
}

#[derive(Debug)]
pub struct Admission {
    max_open: usize,
    pending_per_address: usize,
    websockets_per_address: usize,
    /// Every admitted connection, pending or WebSocket. A connection in the middle of its
    /// upgrade holds both kinds of slot for a moment and is counted twice.
    open: AtomicUsize,
    /// Per budget key. A std mutex: held for a hash-map update, never across an await, and
    /// only on connect and disconnect.
    pending: Mutex<HashMap<IpAddr, usize>>,
    websockets: Mutex<HashMap<IpAddr, usize>>,
}

impl Admission {
    pub fn new(max_open: usize, pending_per_address: usize, websockets_per_address: usize) -> Self {
        Admission {
            max_open: max_open.max(1),
            pending_per_address: pending_per_address.max(1),
            websockets_per_address: websockets_per_address.max(1),
            open: AtomicUsize::new(0),
            pending: Mutex::new(HashMap::new()),
            websockets: Mutex::new(HashMap::new()),
        }
    }

    pub fn max_open(&self) -> usize {
        self.max_open
    }

    /// Connections held right now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A freshly accepted connection from `peer`. `exempt` peers (trusted proxies, which
    /// carry many clients) count only towards the instance-wide cap.
    pub fn admit(self: &Arc<Self>, peer: IpAddr, exempt: bool) -> Result<Slot, Refusal> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.max_open {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal::Full);
        }
        let key = if exempt {
            None
        } else {
            let key = budget_key(peer);
            if !take(&self.pending, key, self.pending_per_address) {
                self.open.fetch_sub(1, Ordering::Relaxed);
                return Err(Refusal::Address);
            }
            Some(key)
        };
        Ok(Slot {
            admission: self.clone(),
            kind: Kind::Pending,
            key,
        })
    }

    /// A connection from `client` becoming a WebSocket. Its pending slot is given back when
    /// the HTTP exchange ends; this one lasts as long as the WebSocket.
    pub fn websocket(self: &Arc<Self>, client: IpAddr) -> Result<Slot, Refusal> {
        let key = budget_key(client);
        if !take(&self.websockets, key, self.websockets_per_address) {
            return Err(Refusal::Address);
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            admission: self.clone(),
            kind: Kind::WebSocket,
            key: Some(key),
        })
    }
}

/// Counts one more for `key` unless it already holds `max`.
fn take(map: &Mutex<HashMap<IpAddr, usize>>, key: IpAddr, max: usize) -> bool {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    let n = map.entry(key).or_insert(0);
    if *n >= max {
        return false;
    }
    *n += 1;
    true
}

fn give_back(map: &Mutex<HashMap<IpAddr, usize>>, key: IpAddr) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

#[derive(Debug)]
enum Kind {
    Pending,
    WebSocket,
}

/// One admitted connection's place; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    kind: Kind,
    /// The per-address budget it counts against, if any.
    key: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(key) = self.key {
            match self.kind {
                Kind::Pending => give_back(&self.admission.pending, key),
                Kind::WebSocket => give_back(&self.admission.websockets, key),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_connection_cap_stays_below_the_open_file_limit() {
        let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        let derived = connection_cap(0, 0);
        assert!((derived as u64) < soft && derived > 0);
        assert_eq!(connection_cap(10, 0), 10.min(derived));
        assert_eq!(connection_cap(usize::MAX, 0), derived);
        // Another listener's connections come out of the same descriptors.
        assert_eq!(connection_cap(0, 16), derived.saturating_sub(16).max(1));
    }

    #[test]
    fn ipv6_clients_share_a_budget_per_64() {
        assert_eq!(budget_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            budget_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(budget_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(budget_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(budget_key(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn an_address_over_its_pending_cap_is_refused_and_others_are_not() {
        let a = Arc::new(Admission::new(100, 2, 10));
        let one = a.admit(ip("127.0.0.2"), false).unwrap();
        let _two = a.admit(ip("127.0.0.2"), false).unwrap();
        assert_eq!(
            a.admit(ip("127.0.0.2"), false).err(),
            Some(Refusal::Address)
        );
        let _other = a.admit(ip("127.0.0.1"), false).unwrap();
        // A trusted proxy carries many clients: only the instance cap applies.
        let proxied: Vec<_> = (0..5)
            .map(|_| a.admit(ip("10.0.0.1"), true).unwrap())
            .collect();
        drop(one);
        assert!(a.admit(ip("127.0.0.2"), false).is_ok());
        assert_eq!(a.open(), 2 + proxied.len());
    }

    #[test]
    fn the_instance_cap_counts_every_kind_of_connection() {
        let a = Arc::new(Admission::new(3, 10, 10));
        let p = a.admit(ip("127.0.0.1"), false).unwrap();
        let w = a.websocket(ip("127.0.0.1")).unwrap();
        let _q = a.admit(ip("127.0.0.3"), false).unwrap();
        assert_eq!(a.admit(ip("127.0.0.4"), false).err(), Some(Refusal::Full));
        drop(p);
        let _r = a.admit(ip("127.0.0.4"), false).unwrap();
        drop(w);
        assert_eq!(a.open(), 2);
    }

    #[test]
    fn websockets_per_address_are_capped_and_given_back() {
        let a = Arc::new(Admission::new(100, 10, 2));
        let w1 = a.websocket(ip("2001:db8::1")).unwrap();
        let _w2 = a.websocket(ip("2001:db8::2")).unwrap();
        assert_eq!(
            a.websocket(ip("2001:db8::3")).err(),
            Some(Refusal::Address),
            "same /64"
        );
        assert!(a.websocket(ip("2001:db8:0:1::1")).is_ok(), "another /64");
        drop(w1);
        assert!(a.websocket(ip("2001:db8::3")).is_ok());
    }
}
