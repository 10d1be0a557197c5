//! TRUSTED_PROXIES: the peers whose `X-Forwarded-For` is believed. Addresses, or networks
//! for load balancers whose addresses change (a cloud load balancer's nodes come and go
//! within its subnet): `10.0.0.2`, `10.0.0.0/16`, `fd00::/8`. Every address is compared in
//! its canonical form (IPv4-mapped IPv6 as IPv4), as peers are.

use std::net::IpAddr;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

/// An address and how many of its leading bits a peer must share with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl TrustedProxies {
    /// Parses the setting's entries (blank ones are skipped); `Err` holds the first entry
    /// that is neither an address nor a network.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, String> {
        let (trusted, bad) = TrustedProxies::parse_valid(entries);
        match bad.into_iter().next() {
            Some(entry) => Err(entry),
            None => Ok(trusted),
        }
    }

    /// The entries that parse, and the (trimmed) ones that do not.
    pub fn parse_valid<S: AsRef<str>>(entries: &[S]) -> (TrustedProxies, Vec<String>) {
        let mut networks = Vec::new();
        let mut bad = Vec::new();
        for entry in entries
            .iter()
            .map(|e| e.as_ref().trim())
            .filter(|e| !e.is_empty())
        {
            match Network::parse(entry) {
                Some(n) => networks.push(n),
                None => bad.push(entry.to_owned()),
            }
        }
        (TrustedProxies(networks), bad)
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(ip))
    }
}

impl Network {
    fn parse(entry: &str) -> Option<Network> {
        let (addr, prefix) = match entry.split_once('/') {
            Some((addr, prefix)) => (addr.parse::<IpAddr>().ok()?, Some(prefix.parse().ok()?)),
            None => (entry.parse::<IpAddr>().ok()?, None),
        };
        let bits = |ip: &IpAddr| if ip.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits(&addr));
        if prefix > bits(&addr) {
            return None;
        }
        // `::ffff:10.0.0.0/104` is `10.0.0.0/8`; a shorter prefix spans more than IPv4.
        let canonical = addr.to_canonical();
        let prefix = match (addr, canonical) {
            (IpAddr::V6(_), IpAddr::V4(_)) if prefix >= 96 => prefix - 96,
            (IpAddr::V6(_), IpAddr::V4(_)) => return Some(Network { addr, prefix }),
            _ => prefix,
        };
        Some(Network {
            addr: canonical,
            prefix,
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(
                u128::from(net.to_bits()) << 96,
                u128::from(ip.to_bits()) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(net.to_bits(), ip.to_bits(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether `a` and `b` agree on their first `prefix` bits (of 128).
fn same_prefix(a: u128, b: u128, prefix: u8) -> bool {
    match prefix {
        0 => true,
        p => (a ^ b) >> (128 - u32::from(p)) == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_networks_of_both_families() {
        let t = TrustedProxies::parse(&["10.0.0.2", " 172.16.0.0/12", "fd00::/8", ""]).unwrap();
        assert!(t.contains(&ip("10.0.0.2")));
        assert!(!t.contains(&ip("10.0.0.3")), "a bare address is a /32");
        assert!(t.contains(&ip("172.16.0.1")));
        assert!(t.contains(&ip("172.31.255.255")));
        assert!(!t.contains(&ip("172.32.0.0")));
        assert!(t.contains(&ip("fd12:3456::1")));
        assert!(!t.contains(&ip("fe80::1")));
        assert!(!t.contains(&ip("::1")));
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4_on_both_sides() {
        let t = TrustedProxies::parse(&["::ffff:10.0.0.0/104", "192.168.1.7"]).unwrap();
        assert!(t.contains(&ip("10.200.0.1")));
        assert!(t.contains(&ip("::ffff:10.200.0.1")));
        assert!(t.contains(&ip("::ffff:192.168.1.7")));
        assert!(!t.contains(&ip("11.0.0.1")));
    }

    #[test]
    fn the_widest_and_narrowest_prefixes() {
        let everyone = TrustedProxies::parse(&["0.0.0.0/0"]).unwrap();
        assert!(everyone.contains(&ip("203.0.113.9")));
        assert!(
            !everyone.contains(&ip("2001:db8::1")),
            "an IPv4 network holds no IPv6"
        );
        let one = TrustedProxies::parse(&["2001:db8::1/128"]).unwrap();
        assert!(one.contains(&ip("2001:db8::1")));
        assert!(!one.contains(&ip("2001:db8::2")));
    }

    #[test]
    fn entries_that_are_neither_are_named() {
        for bad in [
            "nginx",
            "10.0.0.300",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/",
            "/8",
        ] {
            assert_eq!(
                TrustedProxies::parse(&["10.0.0.1", bad]),
                Err(bad.to_owned()),
                "{bad}"
            );
        }
        assert_eq!(
            TrustedProxies::parse::<&str>(&[]),
            Ok(TrustedProxies::default())
        );
    }
}
