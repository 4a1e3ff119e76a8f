//! Open connections per client address, so that one address cannot take the whole connection
//! cap (`BATON_MAX_CONNECTIONS`) and shut everybody else out.
//!
//! Addresses are grouped the way clients are handed them: an IPv4 address stands alone, an
//! IPv6 address counts with its /64 (what one subscriber gets, and what one attacker can spread
//! over at no cost). Peers in `BATON_TRUSTED_PROXIES` are not counted: a proxy carries many
//! clients' connections, and it is the proxy's place to limit them.

use crate::config::{canonical, TrustedProxies};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// How many connections each address has open, against a limit (0: no limit).
#[derive(Debug)]
pub struct PeerCounts {
    limit: usize,
    exempt: TrustedProxies,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A place taken by one connection; given back when dropped.
#[derive(Debug)]
pub struct PeerSlot {
    counts: Arc<PeerCounts>,
    group: Option<IpAddr>,
}

/// The group an address counts in: IPv4 (also IPv4-mapped IPv6) as it is, IPv6 by its /64.
pub fn group(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        v4 => v4,
    }
}

impl PeerCounts {
    pub fn new(limit: usize, exempt: TrustedProxies) -> Arc<Self> {
        Arc::new(Self {
            limit,
            exempt,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection from `ip`, or `None` when its group is at the limit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<PeerSlot> {
        if self.limit == 0 || self.exempt.contains(ip) {
            return Some(PeerSlot {
                counts: self.clone(),
                group: None,
            });
        }
        let g = group(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(g).or_default();
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            counts: self.clone(),
            group: Some(g),
        })
    }

    /// Connections counted for `ip`'s group now.
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&group(ip)).copied().unwrap_or(0)
    }

    /// Groups with at least one connection counted.
    pub fn groups(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let Some(g) = self.group else { return };
        let mut open = self.counts.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&g) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&g);
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
    fn an_address_gets_its_limit_and_its_places_back() {
        let c = PeerCounts::new(2, TrustedProxies::default());
        let a = c.admit(ip("192.0.2.1")).unwrap();
        let _b = c.admit(ip("192.0.2.1")).unwrap();
        assert!(c.admit(ip("192.0.2.1")).is_none());
        // Another address is not affected.
        let _other = c.admit(ip("192.0.2.2")).unwrap();
        drop(a);
        assert_eq!(c.open(ip("192.0.2.1")), 1);
        assert!(c.admit(ip("192.0.2.1")).is_some());
    }

    #[test]
    fn the_map_forgets_addresses_without_connections() {
        let c = PeerCounts::new(4, TrustedProxies::default());
        let slots: Vec<_> = (0..50)
            .map(|i| c.admit(ip(&format!("198.51.100.{i}"))).unwrap())
            .collect();
        assert_eq!(c.groups(), 50);
        drop(slots);
        assert_eq!(c.groups(), 0);
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let c = PeerCounts::new(2, TrustedProxies::default());
        let _a = c.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = c.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert!(c.admit(ip("2001:db8:1:2:abcd::1")).is_none());
        assert!(c.admit(ip("2001:db8:1:3::1")).is_some());
        let _v4 = c.admit(ip("203.0.113.7")).unwrap();
        let _mapped = c.admit(ip("::ffff:203.0.113.7")).unwrap();
        assert!(c.admit(ip("203.0.113.7")).is_none());
    }

    #[test]
    fn trusted_proxies_and_a_zero_limit_are_not_counted() {
        let proxies = TrustedProxies(vec!["10.0.0.0/8".parse().unwrap()]);
        let c = PeerCounts::new(1, proxies);
        let held: Vec<_> = (0..10).map(|_| c.admit(ip("10.1.2.3")).unwrap()).collect();
        assert_eq!(c.groups(), 0);
        drop(held);
        let off = PeerCounts::new(0, TrustedProxies::default());
        let held: Vec<_> = (0..10)
            .map(|_| off.admit(ip("192.0.2.1")).unwrap())
            .collect();
        assert_eq!(held.len(), 10);
    }
}
