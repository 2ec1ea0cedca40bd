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

    /// The client of an actix request: its connection's (see [`TrustedProxies::on_connect`]),
    /// else [`TrustedProxies::client`] of its peer and `X-Forwarded-For`.
    pub fn client_of(&self, req: &HttpRequest) -> Client {
        if let Some(client) = req.conn_data::<Client>() {
            return client.clone();
        }
        let peer = req
            .peer_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        Client::new(self.client(peer, &forwarded))
    }

    /// A new connection from a peer that is not a trusted proxy: every request on it comes
    /// from that peer, whatever it says, so its [`Client`] is made once and kept with the
    /// connection. A trusted proxy's connection carries many clients: none is kept.
    pub fn on_connect(&self, conn: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>()
            && let Ok(peer) = tcp.peer_addr()
            && !self.trusts(peer.ip())
        {
            data.insert(Client::new(canonical(peer.ip())));
        }
    }
}

/// Who a request comes from, as the gateway established it: the key its rate limits and share
/// of the gateway count under, and the `X-Forwarded-For` (its address) services are told.
#[derive(Debug, Clone)]
pub struct Client {
    pub key: Arc<str>,
    pub forwarded_for: hyper::header::HeaderValue,
}

impl Client {
    pub fn new(ip: IpAddr) -> Self {
        let key = service_kit::client::limit_key(ip);
        // An IPv4 client's key is its address as written ([`service_kit::client::limit_key`]).
        let written = match ip {
            IpAddr::V4(_) => key.clone(),
            IpAddr::V6(v6) => v6.to_string(),
        };
        Self {
            key: key.into(),
            forwarded_for: hyper::header::HeaderValue::try_from(written)
                .unwrap_or(hyper::header::HeaderValue::from_static("unknown")),
        }
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
    inner: Arc<Mutex<HashMap<Arc<str>, usize>>>,
    max: usize,
}

/// A client's place, given back when dropped.
pub struct Place {
    inner: Arc<Mutex<HashMap<Arc<str>, usize>>>,
    key: Arc<str>,
}

impl Occupancy {
    pub fn new(max_per_client: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(HashMap::new())),
            max: max_per_client.max(1),
        }
    }

    /// A place for `key`, unless it already holds the most it may.
    pub fn enter(&self, key: &Arc<str>) -> Option<Place> {
        let mut map = self.inner.lock().ok()?;
        let n = map.entry(key.clone()).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Place {
            inner: self.inner.clone(),
            key: key.clone(),
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
    fn a_client_is_counted_by_its_key_and_forwarded_by_its_address() {
        let v4 = Client::new(ip("192.0.2.7"));
        assert_eq!(&*v4.key, "192.0.2.7");
        assert_eq!(v4.forwarded_for, "192.0.2.7");
        let v6 = Client::new(ip("2001:db8:1:2::9"));
        assert_eq!(&*v6.key, "2001:db8:1:2::/64");
        assert_eq!(v6.forwarded_for, "2001:db8:1:2::9");
    }

    /// A connection from a peer is kept with its client; one from a trusted proxy is not.
    #[tokio::test]
    async fn a_direct_connection_keeps_its_client() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (conn, _) = listener.accept().await.unwrap();
        for (proxies, kept) in [
            (TrustedProxies::default(), true),
            (TrustedProxies::parse("10.0.0.0/8").unwrap(), true),
            (TrustedProxies::parse("127.0.0.1").unwrap(), false),
        ] {
            let mut data = actix_web::dev::Extensions::new();
            proxies.on_connect(&conn, &mut data);
            let client = data.get::<Client>();
            assert_eq!(client.is_some(), kept, "{proxies:?}");
            if let Some(client) = client {
                assert_eq!(&*client.key, "127.0.0.1");
                assert_eq!(client.forwarded_for, "127.0.0.1");
            }
        }
    }

    #[test]
    fn a_client_holds_at_most_its_share() {
        let o = Occupancy::new(2);
        let (key_a, key_b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let a = o.enter(&key_a);
        let b = o.enter(&"a".into());
        assert!(a.is_some() && b.is_some());
        assert!(o.enter(&key_a).is_none());
        assert!(o.enter(&key_b).is_some());
        drop(a);
        assert!(o.enter(&key_a).is_some());
        drop(b);
        assert_eq!(o.clients(), 0, "places given back leave no entry");
    }
}
