//! Who is calling, and how much of the gateway they hold. The client is the peer, unless the
//! peer is a configured trusted proxy (`TRUSTED_PROXIES`, e.g. the ingress controller's pod
//! network): then it is the rightmost `X-Forwarded-For` address that is not a trusted proxy
//! (everything left of it could have been written by the client). Each client may have a
//! bounded number of requests in the gateway at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// From a comma-separated list of addresses or CIDRs (`10.0.0.0/8, 192.168.1.7`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        spec.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("TRUSTED_PROXIES: {s:?} is not an address or CIDR"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// No proxy is trusted: the gateway faces its clients itself.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request whose peer is `peer` and whose `X-Forwarded-For`
    /// values are `forwarded` (in header order).
    pub fn client(&self, peer: IpAddr, forwarded: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return canonical(peer);
        }
        let hops = forwarded.iter().flat_map(|v| v.split(',')).map(str::trim);
        let mut client = canonical(peer);
        for hop in hops.collect::<Vec<_>>().into_iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                // Unparsable: nothing further left can be trusted to mean anything.
                break;
            };
            client = canonical(ip);
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }

    /// [`TrustedProxies::client`] of an actix request.
    pub fn client_of(&self, req: &HttpRequest) -> IpAddr {
        let peer = req
            .peer_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        self.client(peer, &forwarded)
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Requests each client has in the gateway right now.
#[derive(Clone)]
pub struct Occupancy {
    inner: Arc<Mutex<HashMap<String, usize>>>,
    max: usize,
}

/// A client's place, given back when dropped.
pub struct Place {
    inner: Arc<Mutex<HashMap<String, usize>>>,
    key: String,
}

impl Occupancy {
    pub fn new(max_per_client: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(HashMap::new())),
            max: max_per_client.max(1),
        }
    }

    /// A place for `key`, unless it already holds the most it may.
    pub fn enter(&self, key: &str) -> Option<Place> {
        let mut map = self.inner.lock().ok()?;
        let n = map.entry(key.to_owned()).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Place {
            inner: self.inner.clone(),
            key: key.to_owned(),
        })
    }

    pub fn clients(&self) -> usize {
        self.inner.lock().map_or(0, |m| m.len())
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Ok(mut map) = self.inner.lock()
            && let Some(n) = map.get_mut(&self.key)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("203.0.113.9"), &["1.2.3.4"]),
            ip("203.0.113.9")
        );
        let ingress = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7").unwrap_or_default();
        // The ingress appended the real client to whatever the client claimed.
        assert_eq!(
            ingress.client(ip("10.1.2.3"), &["6.6.6.6, 198.51.100.4"]),
            ip("198.51.100.4")
        );
        // Two trusted hops.
        assert_eq!(
            ingress.client(ip("10.1.2.3"), &["198.51.100.4, 192.168.1.7"]),
            ip("198.51.100.4")
        );
        // Several header lines are one list.
        assert_eq!(
            ingress.client(ip("10.1.2.3"), &["6.6.6.6", "198.51.100.4"]),
            ip("198.51.100.4")
        );
        // Nothing forwarded: the proxy itself.
        assert_eq!(ingress.client(ip("10.1.2.3"), &[]), ip("10.1.2.3"));
        // Garbage stops the walk at the last good hop.
        assert_eq!(
            ingress.client(ip("10.1.2.3"), &["198.51.100.4, nonsense"]),
            ip("10.1.2.3")
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn a_client_holds_at_most_its_share() {
        let o = Occupancy::new(2);
        let a = o.enter("a");
        let b = o.enter("a");
        assert!(a.is_some() && b.is_some());
        assert!(o.enter("a").is_none());
        assert!(o.enter("b").is_some());
        drop(a);
        assert!(o.enter("a").is_some());
        drop(b);
        assert_eq!(o.clients(), 0, "places given back leave no entry");
    }
}
