//! Prometheus metrics: request latency per route, queries per request, pool and cache figures;
//! the same middleware writes each request's access line.

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::dev::{ServiceRequest, ServiceResponse};
use metrics_exporter_prometheus::PrometheusBuilder;
pub use metrics_exporter_prometheus::PrometheusHandle;

use crate::Kit;

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];
const COUNT_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full("db_queries_per_request".into()),
                        COUNT_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness): keep serving ours.
            let _ = metrics::set_global_recorder(recorder);
            let upkeep = handle.clone();
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
            handle
        })
        .clone()
}

/// A request's two histograms (its duration, its query count)…
type Histograms = (metrics::Histogram, metrics::Histogram);
/// …found by its route pattern, method, status and whether it streamed.
type HistogramKey = (Option<String>, &'static str, u16, bool);

thread_local! {
    /// The histograms this worker has recorded into: looked up instead of rebuilt (four label
    /// strings) and registered again (a hash of them) on every request. Bounded: routes are
    /// declared, methods beyond the standard ones count as `OTHER`, statuses are three digits.
    static HISTOGRAMS: std::cell::RefCell<std::collections::HashMap<HistogramKey, Histograms>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The method as a label: the standard ones by name, any other as `OTHER` (a client choosing
/// methods must not choose how many series the server keeps).
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

fn histograms(
    pattern: Option<String>,
    method: &'static str,
    status: u16,
    streamed: bool,
) -> Histograms {
    HISTOGRAMS.with_borrow_mut(|cache| {
        cache
            .entry((pattern, method, status, streamed))
            .or_insert_with_key(|(pattern, method, status, streamed)| {
                // `{param}` becomes `:param`: braces inside label values trip some Prometheus
                // parsers.
                let route = pattern.as_deref().map_or_else(
                    || "unmatched".to_owned(),
                    |p| p.replace('{', ":").replace('}', ""),
                );
                let labels = [
                    ("route", route.clone()),
                    ("method", (*method).to_owned()),
                    ("status", status.to_string()),
                    ("streamed", streamed.to_string()),
                ];
                (
                    metrics::histogram!("http_request_duration_seconds", &labels),
                    metrics::histogram!("db_queries_per_request", "route" => route),
                )
            })
            .clone()
    })
}

/// A request being timed by route pattern, its database queries counted, then logged (see
/// [`crate::server`]'s layer, where every public request goes through it).
pub(crate) struct Timing {
    // Taken before the request is served: actix's router needs the request unshared.
    pattern: Option<String>,
    path: String,
    method: &'static str,
    started: Instant,
}

impl Timing {
    pub(crate) fn start(req: &ServiceRequest) -> Self {
        Self {
            pattern: req.match_pattern(),
            path: req.path().to_owned(),
            method: method_label(req.method()),
            started: Instant::now(),
        }
    }

    /// Records the request's duration and query count, and writes its access line.
    pub(crate) fn finish<B>(
        self,
        res: &Result<ServiceResponse<B>, actix_web::Error>,
        queries: u64,
        request_id: &str,
    ) {
        let elapsed = self.started.elapsed();
        let (status, error) = match res {
            Ok(r) => (r.status().as_u16(), r.response().error()),
            Err(e) => (e.as_response_error().status_code().as_u16(), Some(e)),
        };
        // A streamed answer is timed to its start (its head): the dashboard judges it apart.
        let streamed = res.as_ref().is_ok_and(|r| {
            r.headers()
                .get(actix_web::http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
        });
        // 5xx causes are logged where they happen (`ApiError::error_response`); the access line
        // names the problem a client was told about.
        let problem = error
            .and_then(|e| e.as_error::<crate::ApiError>())
            .map(|e| (e.code(), e.to_string()));
        let method = self.method;
        crate::telemetry::access(method, &self.path, status, elapsed, problem, request_id);
        let (duration, query_count) = histograms(self.pattern, method, status, streamed);
        duration.record(elapsed.as_secs_f64());
        query_count.record(queries as f64);
    }
}

/// Renders the metrics, refreshing the pool and cache gauges first.
pub fn render(kit: &Kit) -> String {
    for (role, s) in kit.store.pool_stats() {
        let g = |state: &'static str, v: f64| {
            metrics::gauge!("db_pool_connections", "role" => role, "state" => state).set(v)
        };
        g("open", s.size.into());
        g("idle", s.idle.into());
        g("in_use", s.in_use.into());
        g("overflow", s.overflow.into());
        g("max", s.max_size.into());
        g("waiters", s.waiters as f64);
        metrics::gauge!("db_pool_timeouts", "role" => role).set(s.timeouts as f64);
        metrics::gauge!("db_pool_connections_created", "role" => role)
            .set(s.connections_created as f64);
        metrics::gauge!("db_pool_connections_closed", "role" => role)
            .set(s.connections_closed as f64);
    }
    for f in kit.store.cache().stats() {
        metrics::gauge!("cache_hits", "family" => f.family).set(f.hits as f64);
        metrics::gauge!("cache_misses", "family" => f.family).set(f.misses as f64);
        metrics::gauge!("cache_bypassed", "family" => f.family).set(f.bypassed as f64);
    }
    metrics::gauge!("cache_redis_healthy").set(if kit.store.cache().redis_healthy() {
        1.0
    } else {
        0.0
    });
    metrics::gauge!("db_slow_queries").set(db_core::instrumentation::slow_query_total() as f64);
    kit.metrics.render()
}

#[cfg(test)]
mod tests {
    use actix_web::http::Method;

    /// A client inventing methods cannot make the server keep a series per invention.
    #[test]
    fn methods_beyond_the_standard_ones_share_one_label() {
        assert_eq!(super::method_label(&Method::GET), "GET");
        assert_eq!(super::method_label(&Method::DELETE), "DELETE");
        for invented in ["PURGE", "FOO1", "FOO2"] {
            let method = Method::from_bytes(invented.as_bytes()).unwrap_or(Method::GET);
            assert_eq!(super::method_label(&method), "OTHER", "{invented}");
        }
    }
}
