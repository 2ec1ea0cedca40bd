//! What the services spend: CPU time and resident memory from `/proc`, cache and query
//! counters from their Prometheus `/metrics`.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// CPU seconds (user + system) a process has used; `None` if it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields that follow it start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_S)
}

/// Resident memory in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The counters `run` compares before and after.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub cache_hits: f64,
    pub cache_misses: f64,
    pub db_queries: f64,
    /// API requests the gateway answered.
    pub gateway_requests: f64,
}

impl Counters {
    pub fn delta(&self, before: &Counters) -> Counters {
        Counters {
            cache_hits: self.cache_hits - before.cache_hits,
            cache_misses: self.cache_misses - before.cache_misses,
            db_queries: self.db_queries - before.db_queries,
            gateway_requests: self.gateway_requests - before.gateway_requests,
        }
    }
}

/// Sums the counters over every service's `/metrics` (histograms' `_sum` and `_count` parse as
/// plain samples).
pub async fn scrape(http: &reqwest::Client, services: &[(String, String)]) -> Counters {
    let mut total = Counters::default();
    for (name, url) in services {
        let Ok(res) = http
            .get(format!("{url}/metrics"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        else {
            continue;
        };
        let Ok(text) = res.text().await else { continue };
        let Ok(scrape) = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))) else {
            continue;
        };
        for s in &scrape.samples {
            match (s.metric.as_str(), &s.value) {
                ("cache_requests_total", Value::Counter(v)) => match s.labels.get("result") {
                    Some("hit") => total.cache_hits += v,
                    Some("miss") => total.cache_misses += v,
                    _ => {}
                },
                ("db_queries_per_request_sum", Value::Untyped(v) | Value::Counter(v)) => {
                    total.db_queries += v;
                }
                ("http_request_duration_seconds_count", Value::Untyped(v) | Value::Counter(v))
                    if name == "gateway"
                        && s.labels
                            .get("route")
                            .is_some_and(|r| r.starts_with("/api/")) =>
                {
                    total.gateway_requests += v;
                }
                _ => {}
            }
        }
    }
    total
}

/// Per-service CPU and peak memory over a run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Percent of one core, averaged over the run.
    pub cpu_percent: f64,
    pub peak_rss_mb: f64,
}

pub fn usage_map(
    pids: &[(String, u32)],
    cpu_before: &BTreeMap<String, f64>,
    peaks: &BTreeMap<String, u64>,
    seconds: f64,
) -> BTreeMap<String, Usage> {
    pids.iter()
        .map(|(name, pid)| {
            let cpu =
                cpu_seconds(*pid).unwrap_or(0.0) - cpu_before.get(name).copied().unwrap_or(0.0);
            (
                name.clone(),
                Usage {
                    cpu_percent: 100.0 * cpu / seconds,
                    peak_rss_mb: peaks.get(name).copied().unwrap_or(0) as f64 / 1_048_576.0,
                },
            )
        })
        .collect()
}
