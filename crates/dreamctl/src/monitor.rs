//! `dreamctl monitor`: the dashboard of pools, cache and latency, from the running system's own
//! figures: each service's pools (from its `/metrics`), Redis (our keys by family, hit rate over
//! the last interval, memory, clients), latency percentiles per operation from the services'
//! histograms, and the recent slow queries. Anything that does not answer shows as down; the
//! dashboard itself never fails because of it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use db_core::cache::census::{CensusView, KeyCensus, ServerInfo, server_info};
use db_core::cache::keys::Keyspace;
use db_core::instrumentation::SlowQuery;
use db_core::{RedisConfig, RedisPool};
use prometheus_parse::{Scrape, Value};
use serde::Serialize;

/// The p95 target of the hot operations.
pub const P95_TARGET_MS: f64 = 200.0;

#[derive(Debug, Clone, Serialize)]
pub struct Pool {
    pub role: String,
    pub open: f64,
    pub idle: f64,
    pub in_use: f64,
    pub overflow: f64,
    pub max: f64,
    pub waiters: f64,
    pub timeouts: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    pub name: String,
    pub url: String,
    /// `green`, `yellow`, `red` or `down`.
    pub status: &'static str,
    pub pools: Vec<Pool>,
    pub slow_queries: Vec<SlowQuery>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RedisView {
    pub up: bool,
    pub prefix: String,
    pub server: Option<ServerInfo>,
    pub keys: Option<CensusView>,
    /// Hits / (hits + misses) of our cache over `window`.
    pub hit_rate: Option<f64>,
    pub hits: u64,
    pub misses: u64,
    pub window: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub operation: &'static str,
    pub requests: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub meets_target: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub at: DateTime<Utc>,
    pub services: Vec<ServiceView>,
    pub redis: RedisView,
    pub latency: Vec<Latency>,
}

/// The hot operations the dashboard tracks: (name, service, route filter, method filter).
const OPERATIONS: &[(&str, &str, &str, &str)] = &[
    ("gateway (all)", "gateway", "", ""),
    (
        "read conversation",
        "chat",
        "/api/v1/conversations/:character_id/messages",
        "GET",
    ),
    ("list matches", "chat", "/api/v1/matches", "GET"),
    (
        "message send",
        "chat",
        "/api/v1/conversations/:character_id/messages",
        "POST",
    ),
    ("AI reply", "ai", "/reply", ""),
    ("photo generation", "media", "/generate", ""),
];

type Buckets = BTreeMap<u64, f64>; // upper bound (as f64 bits of ms * 1000) → cumulative count

/// What one refresh remembers for the next, so rates and percentiles cover the last interval.
#[derive(Default)]
pub struct Previous {
    cache: Option<(u64, u64)>,
    buckets: BTreeMap<&'static str, Buckets>,
}

pub struct Monitor {
    services: Vec<(String, String)>,
    http: reqwest::Client,
    redis: Option<RedisPool>,
    prefix: String,
    census: KeyCensus,
    previous: Previous,
    interval: Duration,
}

impl Monitor {
    pub fn new(
        services: Vec<(String, String)>,
        redis: &RedisConfig,
        interval: Duration,
    ) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self {
            services,
            http,
            redis: RedisPool::new(redis).ok(),
            prefix: redis.key_prefix.clone(),
            census: KeyCensus::new(Keyspace::new(redis.key_prefix.clone())),
            previous: Previous::default(),
            interval,
        })
    }

    async fn text(&self, url: String) -> Option<String> {
        let res = self.http.get(url).send().await.ok()?;
        if !res.status().is_success() {
            return None;
        }
        res.text().await.ok()
    }

    /// One refresh. `census_steps` bounds the Redis SCAN work done now.
    pub async fn snapshot(&mut self, census_steps: usize) -> Snapshot {
        let mut services = Vec::new();
        let mut scrapes = Vec::new();
        for (name, url) in &self.services {
            let metrics = self.text(format!("{url}/metrics")).await;
            let scrape =
                metrics.and_then(|m| Scrape::parse(m.lines().map(|l| Ok(l.to_owned()))).ok());
            let slow: Vec<SlowQuery> = match self.text(format!("{url}/internal/slow-queries")).await
            {
                Some(t) => serde_json::from_str(&t).unwrap_or_default(),
                None => Vec::new(),
            };
            let pools = scrape.as_ref().map(pools).unwrap_or_default();
            let status = match &scrape {
                None => "down",
                Some(_) if pools.iter().any(|p| p.waiters > 0.0 || p.timeouts > 0.0) => "red",
                Some(_) if pools.iter().any(|p| p.max > 0.0 && p.in_use / p.max >= 0.8) => "yellow",
                Some(_) => "green",
            };
            services.push(ServiceView {
                name: name.clone(),
                url: url.clone(),
                status,
                pools,
                slow_queries: slow,
            });
            if let Some(s) = scrape {
                scrapes.push((name.clone(), s));
            }
        }
        let latency = OPERATIONS
            .iter()
            .map(|(op, service, route, method)| {
                let now = histogram(&scrapes, service, route, method);
                let window = match self.previous.buckets.get(op) {
                    Some(before) => now
                        .iter()
                        .map(|(le, c)| (*le, c - before.get(le).copied().unwrap_or(0.0)))
                        .collect(),
                    None => now.clone(),
                };
                self.previous.buckets.insert(op, now);
                percentiles(op, &window)
            })
            .collect();
        let redis = self.redis_view(&scrapes, census_steps).await;
        Snapshot {
            at: Utc::now(),
            services,
            redis,
            latency,
        }
    }

    async fn redis_view(&mut self, scrapes: &[(String, Scrape)], census_steps: usize) -> RedisView {
        let (hits, misses) = scrapes.iter().fold((0.0, 0.0), |(h, m), (_, s)| {
            (h + sum(s, "cache_hits"), m + sum(s, "cache_misses"))
        });
        let (hits, misses) = (hits as u64, misses as u64);
        let (window_hits, window_misses, window) = match self.previous.cache {
            Some((h, m)) => (
                hits.saturating_sub(h),
                misses.saturating_sub(m),
                format!("last {} s", self.interval.as_secs()),
            ),
            None => (hits, misses, "since the services started".to_owned()),
        };
        self.previous.cache = Some((hits, misses));
        let hit_rate = (window_hits + window_misses > 0)
            .then(|| window_hits as f64 / (window_hits + window_misses) as f64);
        let (server, keys) = match &self.redis {
            Some(r) => {
                let server = server_info(r).await.ok();
                let census = if server.is_some() && self.census.step(r, census_steps).await.is_ok()
                {
                    Some(self.census.view())
                } else {
                    None
                };
                (server, census)
            }
            None => (None, None),
        };
        RedisView {
            up: server.is_some(),
            prefix: self.prefix.clone(),
            server,
            keys,
            hit_rate,
            hits: window_hits,
            misses: window_misses,
            window,
        }
    }
}

fn sum(s: &Scrape, metric: &str) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == metric)
        .map(|x| match x.value {
            Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

fn pools(s: &Scrape) -> Vec<Pool> {
    let gauge = |metric: &str, role: &str, state: Option<&str>| {
        s.samples
            .iter()
            .filter(|x| {
                x.metric == metric
                    && x.labels.get("role") == Some(role)
                    && state.is_none_or(|st| x.labels.get("state") == Some(st))
            })
            .map(|x| match x.value {
                Value::Gauge(v) | Value::Untyped(v) | Value::Counter(v) => v,
                _ => 0.0,
            })
            .sum::<f64>()
    };
    let mut roles: Vec<String> = s
        .samples
        .iter()
        .filter(|x| x.metric == "db_pool_connections")
        .filter_map(|x| x.labels.get("role").map(str::to_owned))
        .collect();
    roles.sort();
    roles.dedup();
    roles
        .into_iter()
        .map(|r| Pool {
            open: gauge("db_pool_connections", &r, Some("open")),
            idle: gauge("db_pool_connections", &r, Some("idle")),
            in_use: gauge("db_pool_connections", &r, Some("in_use")),
            overflow: gauge("db_pool_connections", &r, Some("overflow")),
            max: gauge("db_pool_connections", &r, Some("max")),
            waiters: gauge("db_pool_connections", &r, Some("waiters")),
            timeouts: gauge("db_pool_timeouts", &r, None),
            role: r,
        })
        .collect()
}

/// Cumulative request counts per latency bound (ms, as ordered integer keys), summed over the
/// matching routes of a service.
fn histogram(scrapes: &[(String, Scrape)], service: &str, route: &str, method: &str) -> Buckets {
    let mut out = Buckets::new();
    for (_, s) in scrapes.iter().filter(|(n, _)| n == service) {
        for x in s
            .samples
            .iter()
            .filter(|x| x.metric == "http_request_duration_seconds")
        {
            let r = x.labels.get("route").unwrap_or("");
            let m = x.labels.get("method").unwrap_or("");
            if !r.contains(route) || (!method.is_empty() && m != method) {
                continue;
            }
            if let Value::Histogram(buckets) = &x.value {
                for b in buckets {
                    let key = if b.less_than.is_finite() {
                        (b.less_than * 1e6) as u64
                    } else {
                        u64::MAX
                    };
                    *out.entry(key).or_default() += b.count;
                }
            }
        }
    }
    out
}

fn percentiles(operation: &'static str, b: &Buckets) -> Latency {
    let total = b
        .get(&u64::MAX)
        .copied()
        .or_else(|| b.values().last().copied())
        .unwrap_or(0.0);
    let q = |q: f64| -> Option<f64> {
        if total <= 0.0 {
            return None;
        }
        let want = q * total;
        let mut prev_bound = 0.0;
        let mut prev_count = 0.0;
        for (bound, count) in b {
            if *count >= want {
                if *bound == u64::MAX {
                    return Some(prev_bound); // beyond the last bound: report the last one
                }
                let upper = *bound as f64 / 1e3; // ms
                let span = count - prev_count;
                let frac = if span > 0.0 {
                    (want - prev_count) / span
                } else {
                    1.0
                };
                return Some(prev_bound + (upper - prev_bound) * frac);
            }
            prev_bound = *bound as f64 / 1e3;
            prev_count = *count;
        }
        Some(prev_bound)
    };
    let p95 = q(0.95);
    Latency {
        operation,
        requests: total as u64,
        p50_ms: q(0.5),
        p95_ms: p95,
        p99_ms: q(0.99),
        meets_target: p95.map(|p| p <= P95_TARGET_MS),
    }
}

fn dot(status: &str) -> &'static str {
    match status {
        "green" => "🟢",
        "yellow" => "🟡",
        "red" => "🔴",
        _ => "⚫",
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.2}"))
}

/// The dashboard as text.
pub fn render(s: &Snapshot) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "Dream — {}\n", s.at.format("%Y-%m-%d %H:%M:%S UTC"));
    let _ = writeln!(out, "SERVICES AND POOLS");
    let _ = writeln!(
        out,
        "  {:<3}{:<9} {:<8} {:>5} {:>5} {:>7} {:>9} {:>5} {:>8} {:>9}",
        "", "service", "pool", "open", "idle", "in use", "overflow", "max", "waiters", "timeouts"
    );
    for svc in &s.services {
        if svc.pools.is_empty() {
            let what = if svc.status == "down" {
                format!("down ({})", svc.url)
            } else {
                "no database pool".to_owned()
            };
            let _ = writeln!(out, "  {} {:<9} {what}", dot(svc.status), svc.name);
        }
        for p in &svc.pools {
            let _ = writeln!(
                out,
                "  {} {:<9} {:<8} {:>5} {:>5} {:>7} {:>9} {:>5} {:>8} {:>9}",
                dot(svc.status),
                svc.name,
                p.role,
                p.open,
                p.idle,
                p.in_use,
                p.overflow,
                p.max,
                p.waiters,
                p.timeouts
            );
        }
    }
    let r = &s.redis;
    let _ = writeln!(out, "\nREDIS (prefix {})", r.prefix);
    match &r.server {
        None => {
            let _ = writeln!(out, "  ⚫ down: the services serve from PostgreSQL");
        }
        Some(info) => {
            let keys = r.keys.as_ref();
            let _ = writeln!(
                out,
                "  🟢 up (v{}), memory {}, {} clients, {} keys under our prefix{}",
                info.version,
                info.used_memory,
                info.connected_clients,
                keys.map_or(0, |k| k.total),
                if keys.is_some_and(|k| !k.complete) {
                    " (first count still running)"
                } else {
                    ""
                }
            );
        }
    }
    let _ = writeln!(
        out,
        "  cache hit rate {} ({} hits, {} misses, {})",
        r.hit_rate
            .map_or_else(|| "—".to_owned(), |h| format!("{:.1}%", h * 100.0)),
        r.hits,
        r.misses,
        r.window
    );
    if let Some(keys) = &r.keys {
        let _ = writeln!(out, "\nKEYS BY FAMILY");
        for (family, n) in keys.families.iter().filter(|(_, n)| *n > 0) {
            let _ = writeln!(out, "  {family:<14} {n:>9}");
        }
        if keys.other > 0 {
            let _ = writeln!(out, "  {:<14} {:>9}", "other", keys.other);
        }
    }
    let _ = writeln!(out, "\nLATENCY (ms; target p95 ≤ {P95_TARGET_MS})");
    let _ = writeln!(
        out,
        "  {:<20} {:>9} {:>9} {:>9} {:>9}",
        "operation", "requests", "p50", "p95", "p99"
    );
    for l in &s.latency {
        let verdict = match l.meets_target {
            Some(true) => "🟢",
            Some(false) => "🔴",
            None => "  ",
        };
        let _ = writeln!(
            out,
            "  {:<20} {:>9} {:>9} {:>9} {:>9} {verdict}",
            l.operation,
            l.requests,
            ms(l.p50_ms),
            ms(l.p95_ms),
            ms(l.p99_ms)
        );
    }
    let _ = writeln!(out, "\nSLOW QUERIES (most recent)");
    let mut slow: Vec<(&str, &SlowQuery)> = s
        .services
        .iter()
        .flat_map(|svc| svc.slow_queries.iter().map(move |q| (svc.name.as_str(), q)))
        .collect();
    slow.sort_by_key(|s| std::cmp::Reverse(s.1.at));
    if slow.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for (svc, q) in slow.iter().take(10) {
        let sql: String = q.sql.chars().take(90).collect();
        let _ = writeln!(
            out,
            "  {} {:<6} {:>9.1} ms  {:<28} {sql}",
            q.at.format("%H:%M:%S"),
            svc,
            q.duration_ms,
            q.name
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_within_buckets() {
        // 100 requests: 50 under 1 ms, 90 under 2 ms, all under 5 ms.
        let b: Buckets = [
            (1_000, 50.0),
            (2_000, 90.0),
            (5_000, 100.0),
            (u64::MAX, 100.0),
        ]
        .into_iter()
        .collect();
        let l = percentiles("x", &b);
        assert_eq!(l.requests, 100);
        assert!((l.p50_ms.unwrap() - 1.0).abs() < 1e-9);
        assert!((l.p95_ms.unwrap() - 3.5).abs() < 1e-9);
        assert_eq!(l.meets_target, Some(true));
        assert_eq!(percentiles("none", &Buckets::new()).p95_ms, None);
    }
}
