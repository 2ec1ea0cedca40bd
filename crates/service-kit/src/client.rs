//! Who is calling: the client's address, as the gateway established it. The gateway replaces
//! whatever forwarding headers a client sent with one `X-Forwarded-For` holding the address it
//! trusts (see the gateway's `TRUSTED_PROXIES`); services read only that.

use std::net::IpAddr;

use actix_web::HttpRequest;

/// The one forwarding header services read, set by the gateway.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// The caller's address: the gateway's `X-Forwarded-For` (its last entry), else the peer.
pub fn address(req: &HttpRequest) -> Option<IpAddr> {
    req.headers()
        .get(FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| req.peer_addr().map(|a| a.ip()))
}

/// The key rate limits count an address under: an IPv4 address alone, written as usual (the
/// gateway sends an IPv4 client's key as its `X-Forwarded-For`), an IPv6 address by its /64 (one
/// subscriber usually holds a whole /64, and would otherwise have 2^64 addresses).
pub fn limit_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// [`limit_key`] of the caller (`unknown` without an address).
pub fn limit_key_of(req: &HttpRequest) -> String {
    address(req).map_or_else(|| "unknown".to_owned(), limit_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_grouped_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        let b: IpAddr = "2001:db8:1:2:ffff::9"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(limit_key(a), limit_key(b));
        assert_ne!(limit_key(a), limit_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(limit_key(mapped), "192.0.2.7");
        // An IPv4 key is the address as written: the gateway forwards it as X-Forwarded-For.
        assert_eq!(limit_key(IpAddr::from([192, 0, 2, 7])), "192.0.2.7");
    }
}
