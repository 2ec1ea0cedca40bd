//! `dreamctl monitor`: what the running system says about itself, most important first, in an
//! 80×24 terminal: each process's health (its `/ready`), its request and error rates and its
//! database pools; Redis; latency percentiles per operation against the target of that kind of
//! operation (a streamed reply or a password hash is not judged like a read); the latest slow
//! queries. Rates and percentiles cover the last interval (the counters' difference between two
//! refreshes). Anything that does not answer shows as down; the dashboard itself never fails
//! because of it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use db_core::cache::census::{CensusView, KeyCensus, ServerInfo, server_info};
use db_core::cache::keys::Keyspace;
use db_core::instrumentation::SlowQuery;
use db_core::{RedisConfig, RedisPool};
use prometheus_parse::{Scrape, Value};
use serde::Serialize;

/// The lines and columns the text dashboard fits in.
pub const ROWS: usize = 24;
pub const COLUMNS: usize = 80;

/// A kind of operation and the p95 it should stay under.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Target {
    pub kind: &'static str,
    pub p95_ms: f64,
}

/// Reads and writes of the hot path: the guide's figures are 28–92 ms; 200 ms leaves room for a
/// busy machine and still means "something is wrong" when passed.
const HOT: Target = Target {
    kind: "hot path",
    p95_ms: 200.0,
};
/// Sign-ins and sign-ups hash a password with Argon2 on purpose (about 50 ms of a core each in
/// a release build, and they queue behind each other when many arrive).
const HASHING: Target = Target {
    kind: "password hashing",
    p95_ms: 1_000.0,
};
/// A streamed reply's answer starts once the generation is recorded, before the first token:
/// the time measured is that of the stream's start.
const STREAM_START: Target = Target {
    kind: "stream start",
    p95_ms: 1_000.0,
};
/// A reply answered whole waits for every token the model writes (the builtin provider writes
/// 30 ms per token; a hosted model is slower still).
const WHOLE_REPLY: Target = Target {
    kind: "model writes it all",
    p95_ms: 15_000.0,
};

/// An operation the dashboard tracks, from the latency histogram of one service.
struct Operation {
    name: &'static str,
    service: &'static str,
    /// Any of these route patterns (substring of the `route` label).
    routes: &'static [&'static str],
    method: &'static str,
    /// `Some(true)`: streamed answers only; `Some(false)`: whole answers only.
    streamed: Option<bool>,
    target: Target,
}

const OPERATIONS: &[Operation] = &[
    Operation {
        name: "read conversation",
        service: "chat",
        routes: &["/conversations/:character_id/messages"],
        method: "GET",
        streamed: None,
        target: HOT,
    },
    Operation {
        name: "list matches",
        service: "chat",
        routes: &["/matches"],
        method: "GET",
        streamed: None,
        target: HOT,
    },
    Operation {
        name: "send a message",
        service: "chat",
        routes: &["/conversations/:character_id/messages"],
        method: "POST",
        streamed: None,
        target: HOT,
    },
    Operation {
        name: "photo gallery",
        service: "media",
        routes: &["/photos/:character_id"],
        method: "GET",
        streamed: None,
        target: HOT,
    },
    Operation {
        name: "ask for a photo",
        service: "media",
        routes: &["/generate"],
        method: "POST",
        streamed: None,
        target: HOT,
    },
    Operation {
        name: "sign in / sign up",
        service: "auth",
        routes: &["/auth/login", "/auth/register"],
        method: "POST",
        streamed: None,
        target: HASHING,
    },
    Operation {
        name: "AI reply, streamed",
        service: "ai",
        routes: &["/reply"],
        method: "POST",
        streamed: Some(true),
        target: STREAM_START,
    },
    Operation {
        name: "AI reply, whole",
        service: "ai",
        routes: &["/reply"],
        method: "POST",
        streamed: Some(false),
        target: WHOLE_REPLY,
    },
];

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

/// Requests a process answered, by kind of status: totals since it started, and per second over
/// the last interval (`None` on the first refresh, which has nothing to compare with).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Traffic {
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    pub requests_per_s: Option<f64>,
    pub client_errors_per_s: Option<f64>,
    pub server_errors_per_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    pub name: String,
    pub url: String,
    /// What its `/ready` says (`ready`, `degraded` when Redis is away, `not_ready`), or `down`
    /// when it does not answer.
    pub health: String,
    /// `ok`, or why the pools are a worry: `timeouts` (a request gave up waiting for a
    /// connection since the last refresh), `full` (requests wait on a pool at its maximum),
    /// `busy` (80 % of a pool in use).
    pub pools_state: &'static str,
    pub traffic: Traffic,
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
    pub service: &'static str,
    pub target: Target,
    pub requests: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub meets_target: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub at: DateTime<Utc>,
    /// Seconds the rates and percentiles cover (`None`: since each process started).
    pub window_s: Option<f64>,
    pub services: Vec<ServiceView>,
    pub redis: RedisView,
    pub latency: Vec<Latency>,
}

type Buckets = BTreeMap<u64, f64>; // upper bound in µs (u64::MAX for +Inf) → cumulative count

/// What one refresh remembers for the next, so rates and percentiles cover the last interval.
#[derive(Default)]
struct Previous {
    at: Option<Instant>,
    cache: Option<(u64, u64)>,
    traffic: BTreeMap<String, Traffic>,
    timeouts: BTreeMap<String, f64>,
    buckets: BTreeMap<&'static str, Buckets>,
}

pub struct Monitor {
    services: Vec<(String, String)>,
    http: reqwest::Client,
    redis: Option<RedisPool>,
    prefix: String,
    census: KeyCensus,
    previous: Previous,
}

impl Monitor {
    pub fn new(services: Vec<(String, String)>, redis: &RedisConfig) -> anyhow::Result<Self> {
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
        })
    }

    async fn text(&self, url: String) -> Option<String> {
        let res = self.http.get(url).send().await.ok()?;
        if !res.status().is_success() {
            return None;
        }
        res.text().await.ok()
    }

    /// `/ready`'s `status`, whatever the HTTP status (503 says "not ready" too), or `down`.
    async fn health(&self, url: &str) -> String {
        let Ok(res) = self.http.get(format!("{url}/ready")).send().await else {
            return "down".to_owned();
        };
        let ok = res.status().is_success();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        match body["status"].as_str() {
            Some(s) => s.to_owned(),
            None if ok => "ready".to_owned(),
            None => "not_ready".to_owned(),
        }
    }

    /// One refresh. `census_steps` bounds the Redis SCAN work done now.
    pub async fn snapshot(&mut self, census_steps: usize) -> Snapshot {
        let now = Instant::now();
        let window = self.previous.at.map(|at| now.duration_since(at));
        self.previous.at = Some(now);
        let mut services = Vec::new();
        let mut scrapes = Vec::new();
        for (name, url) in &self.services {
            let health = self.health(url).await;
            let scrape = self
                .text(format!("{url}/metrics"))
                .await
                .and_then(|m| Scrape::parse(m.lines().map(|l| Ok(l.to_owned()))).ok());
            let slow: Vec<SlowQuery> = match self.text(format!("{url}/internal/slow-queries")).await
            {
                Some(t) => serde_json::from_str(&t).unwrap_or_default(),
                None => Vec::new(),
            };
            let pools = scrape.as_ref().map(pools).unwrap_or_default();
            // A request waiting while a connection opens is normal; waiting on a full pool,
            // or giving up on one (a timeout since the last refresh), is not.
            let timeouts: f64 = pools.iter().map(|p| p.timeouts).sum();
            let new_timeouts = timeouts
                > self
                    .previous
                    .timeouts
                    .get(name)
                    .copied()
                    .unwrap_or(timeouts);
            if scrape.is_some() {
                self.previous.timeouts.insert(name.clone(), timeouts);
            }
            let pools_state = if new_timeouts {
                "timeouts"
            } else if pools
                .iter()
                .any(|p| p.waiters > 0.0 && p.max > 0.0 && p.in_use >= p.max)
            {
                "full"
            } else if pools.iter().any(|p| p.max > 0.0 && p.in_use / p.max >= 0.8) {
                "busy"
            } else {
                "ok"
            };
            let mut traffic = scrape.as_ref().map(traffic).unwrap_or_default();
            if let (Some(w), Some(before)) = (window, self.previous.traffic.get(name)) {
                let per_s = |now: u64, then: u64| now.saturating_sub(then) as f64 / w.as_secs_f64();
                traffic.requests_per_s = Some(per_s(traffic.requests, before.requests));
                traffic.client_errors_per_s =
                    Some(per_s(traffic.client_errors, before.client_errors));
                traffic.server_errors_per_s =
                    Some(per_s(traffic.server_errors, before.server_errors));
            }
            if scrape.is_some() {
                self.previous.traffic.insert(name.clone(), traffic);
            }
            services.push(ServiceView {
                name: name.clone(),
                url: url.clone(),
                health: if scrape.is_none() && health != "down" {
                    "no_metrics".to_owned()
                } else {
                    health
                },
                pools_state,
                traffic,
                pools,
                slow_queries: slow,
            });
            if let Some(s) = scrape {
                scrapes.push((name.clone(), s));
            }
        }
        let latency = OPERATIONS
            .iter()
            .map(|op| {
                let now = histogram(&scrapes, op);
                let window = match self.previous.buckets.get(op.name) {
                    Some(before) => now
                        .iter()
                        .map(|(le, c)| (*le, (c - before.get(le).copied().unwrap_or(0.0)).max(0.0)))
                        .collect(),
                    None => now.clone(),
                };
                self.previous.buckets.insert(op.name, now);
                percentiles(op, &window)
            })
            .collect();
        let redis = self.redis_view(&scrapes, census_steps, window).await;
        Snapshot {
            at: Utc::now(),
            window_s: window.map(|w| (w.as_secs_f64() * 10.0).round() / 10.0),
            services,
            redis,
            latency,
        }
    }

    async fn redis_view(
        &mut self,
        scrapes: &[(String, Scrape)],
        census_steps: usize,
        window: Option<Duration>,
    ) -> RedisView {
        let (hits, misses) = scrapes.iter().fold((0.0, 0.0), |(h, m), (_, s)| {
            (h + sum(s, "cache_hits"), m + sum(s, "cache_misses"))
        });
        let (hits, misses) = (hits as u64, misses as u64);
        let (window_hits, window_misses, window) = match (self.previous.cache, window) {
            (Some((h, m)), Some(w)) => (
                hits.saturating_sub(h),
                misses.saturating_sub(m),
                format!("last {:.0} s", w.as_secs_f64()),
            ),
            _ => (hits, misses, "since start".to_owned()),
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

fn number(v: &Value) -> f64 {
    match v {
        Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v) => *v,
        _ => 0.0,
    }
}

fn sum(s: &Scrape, metric: &str) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == metric)
        .map(|x| number(&x.value))
        .sum()
}

/// Requests by kind of status, from the latency histogram's `+Inf` buckets.
fn traffic(s: &Scrape) -> Traffic {
    let mut t = Traffic::default();
    for x in s
        .samples
        .iter()
        .filter(|x| x.metric == "http_request_duration_seconds")
    {
        let Value::Histogram(buckets) = &x.value else {
            continue;
        };
        let count = buckets.iter().map(|b| b.count).fold(0.0, f64::max) as u64;
        let status: u16 = x
            .labels
            .get("status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        t.requests += count;
        match status {
            400..=499 => t.client_errors += count,
            500.. => t.server_errors += count,
            _ => {}
        }
    }
    t
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
            .map(|x| number(&x.value))
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

/// Cumulative request counts per latency bound, summed over the operation's routes in every
/// scrape of its service (replicas named `chat-1`, `chat-2` count as `chat`).
fn histogram(scrapes: &[(String, Scrape)], op: &Operation) -> Buckets {
    let mut out = Buckets::new();
    let of_service = |name: &str| {
        name == op.service
            || name
                .strip_prefix(op.service)
                .is_some_and(|rest| rest.starts_with('-'))
    };
    for (_, s) in scrapes.iter().filter(|(n, _)| of_service(n)) {
        for x in s
            .samples
            .iter()
            .filter(|x| x.metric == "http_request_duration_seconds")
        {
            let route = x.labels.get("route").unwrap_or("");
            let method = x.labels.get("method").unwrap_or("");
            let streamed = x.labels.get("streamed") == Some("true");
            if !op.routes.iter().any(|r| route.ends_with(r))
                || method != op.method
                || op.streamed.is_some_and(|want| want != streamed)
            {
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

fn percentiles(op: &Operation, b: &Buckets) -> Latency {
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
        operation: op.name,
        service: op.service,
        target: op.target,
        requests: total as u64,
        p50_ms: q(0.5),
        p95_ms: p95,
        p99_ms: q(0.99),
        meets_target: p95.map(|p| p <= op.target.p95_ms),
    }
}

/// How the text looks: colors only on a terminal.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    /// Lines available (the slow queries get what is left); `None`: no limit.
    pub rows: Option<usize>,
}

fn paint(style: Style, good: bool, text: &str) -> String {
    match (style.color, good) {
        (false, _) => text.to_owned(),
        (true, true) => format!("\x1b[32m{text}\x1b[0m"),
        (true, false) => format!("\x1b[1;31m{text}\x1b[0m"),
    }
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => "—".to_owned(),
        Some(v) if v >= 1_000.0 => format!("{:.1} s", v / 1e3),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.1}"))
}

fn target(ms: f64) -> String {
    if ms >= 1_000.0 {
        format!("{:.0} s", ms / 1e3)
    } else {
        format!("{ms:.0} ms")
    }
}

/// The dashboard as text: at most [`COLUMNS`] wide, and within `style.rows` lines.
pub fn render(s: &Snapshot, style: Style) -> String {
    use std::fmt::Write;
    let mut lines: Vec<String> = Vec::new();
    let up = s.services.iter().filter(|v| v.health != "down").count();
    let window = s
        .window_s
        .map_or_else(|| "since start".to_owned(), |w| format!("last {w:.0} s"));
    lines.push(format!(
        "Dream · {} · {}/{} processes answer · rates over the {window}",
        s.at.format("%H:%M:%S UTC"),
        up,
        s.services.len(),
    ));
    lines.push(String::new());
    lines.push(format!(
        "{:<9} {:<10} {:>7} {:>7} {:>7}  {}",
        "SERVICE", "HEALTH", "REQ/S", "4XX/S", "5XX/S", "DB POOLS in use/max"
    ));
    for v in &s.services {
        let healthy = matches!(v.health.as_str(), "ready") && v.pools_state == "ok";
        let health = if v.pools_state != "ok" && v.health == "ready" {
            v.pools_state.to_owned()
        } else {
            v.health.clone()
        };
        let health = paint(style, healthy, &format!("{health:<10}"));
        if v.health == "down" {
            let url: String = v.url.chars().take(50).collect();
            lines.push(format!("{:<9} {health} no answer from {url}", v.name));
            continue;
        }
        let mut pools: String = v
            .pools
            .iter()
            .map(|p| {
                let mut t = format!("{} {}/{}", p.role, p.in_use, p.max);
                if p.waiters > 0.0 {
                    let _ = write!(t, " ({} waiting)", p.waiters);
                }
                t
            })
            .collect::<Vec<_>>()
            .join(", ");
        if pools.is_empty() {
            pools = "—".to_owned();
        }
        let pools: String = pools.chars().take(COLUMNS - 46).collect();
        let errors = |v: Option<f64>| {
            let text = format!("{:>7}", rate(v));
            if v.is_some_and(|v| v > 0.0) {
                paint(style, false, &text)
            } else {
                text
            }
        };
        lines.push(format!(
            "{:<9} {health} {:>7} {} {}  {pools}",
            v.name.chars().take(9).collect::<String>(),
            rate(v.traffic.requests_per_s),
            errors(v.traffic.client_errors_per_s),
            errors(v.traffic.server_errors_per_s),
        ));
    }
    lines.push(String::new());
    let r = &s.redis;
    let hit = format!(
        "hits {} ({})",
        r.hit_rate
            .map_or_else(|| "—".to_owned(), |h| format!("{:.1}%", h * 100.0)),
        r.window
    );
    lines.push(match &r.server {
        None => format!(
            "REDIS {} — served from PostgreSQL",
            paint(style, false, "down")
        ),
        Some(info) => {
            let keys = r.keys.as_ref();
            format!(
                "REDIS {} {} · {} · {} clients · {}{} keys · {hit}",
                paint(style, true, "up"),
                info.version,
                info.used_memory,
                info.connected_clients,
                keys.map_or(0, |k| k.total),
                if keys.is_some_and(|k| !k.complete) {
                    "+"
                } else {
                    ""
                },
            )
        }
    });
    lines.push(String::new());
    lines.push(format!(
        "{:<20} {:>7} {:>6} {:>7} {:>7} {:>7}",
        "LATENCY ms", "target", "req", "p50", "p95", "p99"
    ));
    for l in &s.latency {
        let verdict = match l.meets_target {
            Some(true) => paint(style, true, "ok"),
            Some(false) => paint(style, false, "SLOW"),
            None => String::new(),
        };
        lines.push(format!(
            "{:<20} {:>7} {:>6} {:>7} {:>7} {:>7}  {verdict}",
            l.operation,
            target(l.target.p95_ms),
            l.requests,
            ms(l.p50_ms),
            ms(l.p95_ms),
            ms(l.p99_ms)
        ));
    }
    lines.push(String::new());
    let mut slow: Vec<(&str, &SlowQuery)> = s
        .services
        .iter()
        .flat_map(|svc| svc.slow_queries.iter().map(move |q| (svc.name.as_str(), q)))
        .collect();
    slow.sort_by_key(|s| std::cmp::Reverse(s.1.at));
    let room = style
        .rows
        .map_or(10, |rows| rows.saturating_sub(lines.len() + 1).max(1));
    lines.push(format!(
        "SLOW QUERIES ({} in all, latest first)",
        slow.len()
    ));
    if slow.is_empty() {
        lines.push("none".to_owned());
    }
    for (svc, q) in slow.iter().take(room) {
        let line = format!(
            "{} {:<6} {:>8.1} ms {} {}",
            q.at.format("%H:%M:%S"),
            svc,
            q.duration_ms,
            q.name,
            q.sql.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        lines.push(line.chars().take(COLUMNS).collect());
    }
    let mut out = String::new();
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op() -> &'static Operation {
        &OPERATIONS[0]
    }

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
        let l = percentiles(op(), &b);
        assert_eq!(l.requests, 100);
        assert!((l.p50_ms.unwrap() - 1.0).abs() < 1e-9);
        assert!((l.p95_ms.unwrap() - 3.5).abs() < 1e-9);
        assert_eq!(l.meets_target, Some(true));
        assert_eq!(percentiles(op(), &Buckets::new()).p95_ms, None);
    }

    #[test]
    fn each_kind_is_judged_against_its_own_target() {
        // Every request took between 0.5 and 1 s.
        let b: Buckets = [(500_000, 0.0), (1_000_000, 10.0), (u64::MAX, 10.0)]
            .into_iter()
            .collect();
        let by_name = |name: &str| OPERATIONS.iter().find(|o| o.name == name).unwrap();
        assert_eq!(
            percentiles(by_name("read conversation"), &b).meets_target,
            Some(false)
        );
        assert_eq!(
            percentiles(by_name("sign in / sign up"), &b).meets_target,
            Some(true)
        );
        assert_eq!(
            percentiles(by_name("AI reply, whole"), &b).meets_target,
            Some(true)
        );
    }

    #[test]
    fn traffic_counts_requests_by_kind_of_status() {
        let text = "\
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",status=\"200\",le=\"0.1\"} 7
http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",status=\"200\",le=\"+Inf\"} 8
http_request_duration_seconds_sum{route=\"/a\",method=\"GET\",status=\"200\"} 0.5
http_request_duration_seconds_count{route=\"/a\",method=\"GET\",status=\"200\"} 8
http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",status=\"404\",le=\"0.1\"} 3
http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",status=\"404\",le=\"+Inf\"} 3
http_request_duration_seconds_sum{route=\"/a\",method=\"GET\",status=\"404\"} 0.1
http_request_duration_seconds_count{route=\"/a\",method=\"GET\",status=\"404\"} 3
http_request_duration_seconds_bucket{route=\"/b\",method=\"GET\",status=\"503\",le=\"0.1\"} 2
http_request_duration_seconds_bucket{route=\"/b\",method=\"GET\",status=\"503\",le=\"+Inf\"} 2
http_request_duration_seconds_sum{route=\"/b\",method=\"GET\",status=\"503\"} 0.1
http_request_duration_seconds_count{route=\"/b\",method=\"GET\",status=\"503\"} 2
";
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let t = traffic(&scrape);
        assert_eq!((t.requests, t.client_errors, t.server_errors), (13, 3, 2));
    }
}
