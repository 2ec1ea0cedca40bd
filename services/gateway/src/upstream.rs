//! The services behind the gateway: each a list of replicas, balanced round-robin over those
//! whose circuit breaker is closed. A replica that refuses connections is ejected for a moment;
//! a background check of `/health` brings it back as soon as it answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use db_core::cache::Breaker;

pub struct Replica {
    pub url: String,
    /// `url` parsed once (none if it does not parse: every request to it answers 502).
    pub base: Option<BaseUrl>,
    pub breaker: Breaker,
}

/// A replica's address parsed once, so that a request's URI is built without parsing the
/// scheme and host again.
pub struct BaseUrl {
    pub scheme: hyper::http::uri::Scheme,
    pub authority: hyper::http::uri::Authority,
    /// The path in front of every forwarded path (`/chat` for `http://10.0.0.1/chat`), without
    /// a trailing slash.
    pub path: String,
    /// The `Host` a request to it carries: its authority (the URL parser left out a default
    /// port, and credentials are refused). Made here once: left to the forwarding client, it
    /// was formatted again for every request.
    pub host: hyper::header::HeaderValue,
}

impl BaseUrl {
    /// `None` for what the forwarding client cannot use as it stands, credentials in the URL
    /// included (`http://user:pass@chat`: nothing would send them).
    pub fn parse(url: &str) -> Option<Self> {
        // The URL parser first: it takes what an operator may write (a host without a path, a
        // trailing slash) and gives the URI parser a normal form.
        let url = reqwest::Url::parse(url).ok()?;
        if !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let uri: hyper::Uri = url.as_str().parse().ok()?;
        let path = url.path().trim_end_matches('/').to_owned();
        let authority = uri.authority()?.clone();
        Some(Self {
            scheme: uri.scheme()?.clone(),
            host: hyper::header::HeaderValue::from_str(authority.as_str()).ok()?,
            authority,
            path,
        })
    }
}

pub struct Service {
    pub name: &'static str,
    pub replicas: Vec<Replica>,
    next: AtomicUsize,
}

impl Service {
    pub fn new(name: &'static str, urls: &[String]) -> Self {
        Self {
            name,
            replicas: urls
                .iter()
                .map(|u| Replica {
                    url: u.trim_end_matches('/').to_owned(),
                    base: BaseUrl::parse(u),
                    breaker: Breaker::new(2, Duration::from_secs(5)),
                })
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Replicas to try, in order: healthy ones round-robin first, none twice.
    pub fn pick(&self, tries: usize) -> Vec<&Replica> {
        let n = self.replicas.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.replicas[(start + i) % n])
            .filter(|r| r.breaker.allow())
            .take(tries)
            .collect()
    }
}

/// Every service by name.
pub struct Upstreams {
    pub services: Vec<Service>,
}

impl Upstreams {
    pub fn get(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Probes ejected replicas every second and closes their breaker when they answer.
    pub fn spawn_health_checks(
        self: &Arc<Self>,
        client: reqwest::Client,
    ) -> tokio::task::JoinHandle<()> {
        let upstreams = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                for s in &upstreams.services {
                    for r in s.replicas.iter().filter(|r| r.breaker.is_open()) {
                        let probe = client
                            .get(format!("{}/health", r.url))
                            .timeout(Duration::from_millis(500))
                            .send()
                            .await;
                        if probe.is_ok_and(|res| res.status().is_success()) {
                            r.breaker.success();
                        }
                    }
                }
            }
        })
    }
}
