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

/// The whole machine's CPU time as (busy, total) jiffies, from `/proc/stat`.
pub fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
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
    /// Hits and misses per cache family (`conversation`, `photos`, …), every service summed.
    pub families: BTreeMap<String, (f64, f64)>,
    pub db_queries: f64,
    /// API requests the gateway answered.
    pub gateway_requests: f64,
    /// chat's histogram of the send's `INSERT` (its COMMIT included: one statement in its own
    /// transaction is answered once it is durable): bucket bound in µs (`u64::MAX` for +Inf)
    /// to the cumulative count.
    pub send_insert: BTreeMap<u64, f64>,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        for (family, (h, m)) in &o.families {
            let e = self.families.entry(family.clone()).or_default();
            e.0 += h;
            e.1 += m;
        }
        self.db_queries += o.db_queries;
        self.gateway_requests += o.gateway_requests;
        for (le, n) in &o.send_insert {
            *self.send_insert.entry(*le).or_default() += n;
        }
    }

    /// Cache hits and misses, every family summed.
    pub fn cache_totals(&self) -> (f64, f64) {
        self.families
            .values()
            .fold((0.0, 0.0), |(h, m), (fh, fm)| (h + fh, m + fm))
    }

    pub fn delta(&self, before: &Counters) -> Counters {
        Counters {
            families: self
                .families
                .iter()
                .map(|(family, (h, m))| {
                    let (h0, m0) = before.families.get(family).copied().unwrap_or_default();
                    (family.clone(), (h - h0, m - m0))
                })
                .collect(),
            db_queries: self.db_queries - before.db_queries,
            gateway_requests: self.gateway_requests - before.gateway_requests,
            send_insert: self
                .send_insert
                .iter()
                .map(|(le, n)| (*le, n - before.send_insert.get(le).copied().unwrap_or(0.0)))
                .collect(),
        }
    }

    /// How many sends' `INSERT`s chat timed, and the share of them that took over `micros`
    /// (which must be one of the histogram's bounds); `None` without either.
    pub fn send_insert_over(&self, micros: u64) -> Option<(f64, f64)> {
        let all = *self.send_insert.get(&u64::MAX)?;
        let within = *self.send_insert.get(&micros)?;
        (all > 0.0).then(|| (all, (all - within) / all))
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
        total.add(&parse(name, &text));
    }
    total
}

/// The counters in one service's `/metrics` text.
pub fn parse(service: &str, text: &str) -> Counters {
    let mut total = Counters::default();
    let Ok(scrape) = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))) else {
        return total;
    };
    for s in &scrape.samples {
        match (s.metric.as_str(), &s.value) {
            ("cache_requests_total", Value::Counter(v)) => {
                let family = total
                    .families
                    .entry(s.labels.get("family").unwrap_or("").to_owned())
                    .or_default();
                match s.labels.get("result") {
                    Some("hit") => family.0 += v,
                    Some("miss") => family.1 += v,
                    _ => {}
                }
            }
            ("db_query_duration_seconds", Value::Histogram(buckets))
                if service == "chat" && s.labels.get("query") == Some("insert chat_messages") =>
            {
                for b in buckets {
                    let le = if b.less_than.is_finite() {
                        (b.less_than * 1e6).round() as u64
                    } else {
                        u64::MAX
                    };
                    *total.send_insert.entry(le).or_default() += b.count;
                }
            }
            ("db_queries_per_request_sum", Value::Untyped(v) | Value::Counter(v)) => {
                total.db_queries += v;
            }
            // The gateway forwards /api/ through its default service: "unmatched".
            ("http_request_duration_seconds_count", Value::Untyped(v) | Value::Counter(v))
                if service == "gateway"
                    && s.labels
                        .get("route")
                        .is_some_and(|r| r == "unmatched" || r.starts_with("/api/")) =>
            {
                total.gateway_requests += v;
            }
            _ => {}
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

/// The CPU seconds of each watched process that is running.
pub fn cpu_by_pid(pids: &[(String, Vec<u32>)]) -> BTreeMap<u32, f64> {
    pids.iter()
        .flat_map(|(_, pids)| pids)
        .filter_map(|p| Some((*p, cpu_seconds(*p)?)))
        .collect()
}

/// Each watched name's CPU over the run (its processes together: only those running at both
/// ends count, so one that exited or started meanwhile takes nothing away or adds its whole
/// life) and peak resident memory.
pub fn usage_map(
    pids: &[(String, Vec<u32>)],
    cpu_before: &BTreeMap<u32, f64>,
    peaks: &BTreeMap<String, u64>,
    seconds: f64,
) -> BTreeMap<String, Usage> {
    pids.iter()
        .map(|(name, pids)| {
            let cpu: f64 = pids
                .iter()
                .filter_map(|p| Some(cpu_seconds(*p)? - cpu_before.get(p)?))
                .sum();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_gone_during_a_run_takes_none_of_the_others_cpu_away() {
        let me = std::process::id();
        // No such process: the kernel's pids stop at 2^22.
        let gone = 4_000_000_000;
        let watched = [("proxy".to_owned(), vec![me, gone])];
        let mut before = cpu_by_pid(&watched);
        assert_eq!(before.keys().copied().collect::<Vec<_>>(), [me]);
        // As if `gone` had used 100 s before it exited.
        before.insert(gone, 100.0);
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            std::hint::black_box(spin.elapsed());
        }
        let usage = usage_map(&watched, &before, &BTreeMap::new(), 1.0);
        let cpu = usage.get("proxy").map_or(-1.0, |u| u.cpu_percent);
        assert!((0.0..100.0).contains(&cpu), "{cpu}");
    }

    #[test]
    fn counters_come_out_of_real_metrics_text() {
        let gw = parse("gateway", include_str!("../testdata/gateway-metrics.txt"));
        assert!(gw.gateway_requests > 0.0, "{gw:?}");
        let chat_text = include_str!("../testdata/chat-metrics.txt");
        let chat = parse("chat", chat_text);
        assert!(
            chat.cache_totals().0 > 0.0 && chat.db_queries > 0.0,
            "{chat:?}"
        );
        assert_eq!(chat.gateway_requests, 0.0);
        // Per family, and the families add up to the text's hits and misses.
        assert!(
            chat.families
                .get("conversation")
                .is_some_and(|(h, _)| *h > 0.0),
            "{chat:?}"
        );
        let in_text = |result: &str| -> f64 {
            chat_text
                .lines()
                .filter(|l| l.starts_with("cache_requests_total{"))
                .filter(|l| l.contains(&format!("result=\"{result}\"")))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        assert_eq!(chat.cache_totals(), (in_text("hit"), in_text("miss")));
        // The send's INSERT, from its histogram: 12,762 timed, 7,188 within 5 ms.
        let (n, over) = chat.send_insert_over(5_000).unwrap_or_default();
        assert_eq!(n, 12_762.0);
        assert!(
            (over - (12_762.0 - 7_188.0) / 12_762.0).abs() < 1e-12,
            "{over}"
        );
        assert_eq!(
            chat.send_insert_over(4_000),
            None,
            "not a bound of the histogram"
        );
        assert_eq!(gw.send_insert_over(5_000), None, "only chat's is read");
        // A run's share comes from the difference of two scrapes.
        let mut later = chat.clone();
        for (le, n) in later.send_insert.iter_mut() {
            *n += if *le <= 5_000 { 90.0 } else { 100.0 };
        }
        assert_eq!(
            later.delta(&chat).send_insert_over(5_000),
            Some((100.0, 0.1))
        );
    }
}
