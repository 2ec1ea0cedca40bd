//! Logs and traces. Logs on stdout (filtered by `RUST_LOG`), as JSON lines for machines
//! (`LOG_FORMAT=json`, the default) or as short colored lines for people (`compact`, what
//! `make dev` uses; `pretty` spreads each event over several lines); every request the public
//! listener answers is one line (`access`, below). When
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans are exported over OTLP/HTTP in batches, with W3C
//! `traceparent` propagation, so that a request through the gateway is one trace: the gateway's
//! span, the service's, and that service's database queries. Unset, nothing is exported and
//! nothing is slowed.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, global};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines look (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, with the request's span: for log collectors.
    Json,
    /// One short colored line per event, no span fields: for a terminal.
    Compact,
    /// The same events over several lines, with their source location.
    Pretty,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "compact" | "text" => Ok(Self::Compact),
            "pretty" => Ok(Self::Pretty),
            other => Err(format!("{other:?}: expected json, compact or pretty")),
        }
    }
}

static FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Whether spans are exported (an OTLP endpoint was configured at start-up). Without it no span
/// has a trace context, and asking for one on every request cost the gateway's hop half a
/// microsecond (the current span's context, a map for the propagator to write into).
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// The format chosen at start-up (JSON until [`Telemetry::init`] ran).
pub fn log_format() -> LogFormat {
    FORMAT.get().copied().unwrap_or(LogFormat::Json)
}

/// Wall-clock time of day with milliseconds: enough to read a development terminal.
struct TimeOfDay;

impl tracing_subscriber::fmt::time::FormatTime for TimeOfDay {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", chrono::Utc::now().format("%H:%M:%S%.3f"))
    }
}

/// Keeps the exporter alive; `shutdown` flushes what is still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs logging (and tracing, when an OTLP endpoint is configured) for `service`.
    pub fn init(service: &'static str) -> Self {
        // reqwest is built without a default TLS provider; install ring's before any client
        // (the OTLP exporter's included) is built.
        let _ = rustls::crypto::ring::default_provider().install_default();
        global::set_text_map_propagator(TraceContextPropagator::new());
        let filter =
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
        // An unreadable LOG_FORMAT is said once and JSON is kept: logging must start whatever
        // else is wrong, so that the rest can be reported.
        let format = match std::env::var("LOG_FORMAT") {
            Ok(v) if !v.trim().is_empty() => v.parse().unwrap_or_else(|e| {
                eprintln!("LOG_FORMAT={e}; logging JSON");
                LogFormat::Json
            }),
            _ => LogFormat::Json,
        };
        let format = *FORMAT.get_or_init(|| format);
        let logs: Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync> = match format {
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_filter(filter)
                .boxed(),
            // Spans are left out of this layer (per-layer filter): a request's span carries a
            // dozen OpenTelemetry fields that would follow every line. The access line says
            // what a person needs.
            LogFormat::Compact => tracing_subscriber::fmt::layer()
                .compact()
                .with_target(false)
                .with_timer(TimeOfDay)
                .with_filter(filter.and(tracing_subscriber::filter::filter_fn(|m| m.is_event())))
                .boxed(),
            LogFormat::Pretty => tracing_subscriber::fmt::layer()
                .pretty()
                .with_timer(TimeOfDay)
                .with_filter(filter.and(tracing_subscriber::filter::filter_fn(|m| m.is_event())))
                .boxed(),
        };
        let provider = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
            .and_then(|_| {
                match opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .build()
                {
                    Ok(exporter) => Some(
                        SdkTracerProvider::builder()
                            .with_batch_exporter(exporter)
                            .with_resource(Resource::builder().with_service_name(service).build())
                            .build(),
                    ),
                    Err(e) => {
                        eprintln!("OTLP exporter not started: {e}");
                        None
                    }
                }
            });
        // Each layer filters on its own: quiet logs must not silence the traces.
        let otel = provider.as_ref().map(|p| {
            global::set_tracer_provider(p.clone());
            EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
            let spans = tracing_subscriber::EnvFilter::try_from_env("OTEL_TRACES_FILTER")
                .unwrap_or_else(|_| "info".into());
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer(service))
                .with_filter(spans)
        });
        let _ = tracing_subscriber::registry()
            .with(logs)
            .with(otel)
            .try_init();
        Self { provider }
    }

    /// Exports what is buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("trace export at shutdown failed: {e}");
        }
    }
}

/// The `traceparent` header that continues the current span in another service, if tracing is on.
pub fn traceparent() -> Option<String> {
    if !exporting() {
        return None;
    }
    let cx: Context = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    carrier.remove("traceparent")
}

/// The trace id of the current span, when tracing is on.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    if !exporting() {
        return None;
    }
    let cx = tracing::Span::current().context();
    let id = cx.span().span_context().trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}

/// The request's line in the log (target `access`): method, path (never the query string,
/// which may carry secrets), status, milliseconds to the response's head, the request id and,
/// for a refusal or a failure, the problem's code and message. Successes are `info`, refusals
/// (4xx) `warn`, failures (5xx) `error`, so `RUST_LOG=info,access=warn` keeps only the
/// requests that went wrong.
pub fn access(
    method: &str,
    path: &str,
    status: u16,
    elapsed: std::time::Duration,
    problem: Option<(&str, String)>,
    request_id: &str,
) {
    let ms = elapsed.as_secs_f64() * 1e3;
    macro_rules! at_level {
        ($level:expr) => {
            match log_format() {
                LogFormat::Json => tracing::event!(
                    target: "access",
                    $level,
                    method,
                    path,
                    status,
                    ms = (ms * 10.0).round() / 10.0,
                    request_id,
                    code = problem.as_ref().map(|p| p.0),
                    detail = problem.as_ref().map(|p| p.1.as_str()),
                    "request"
                ),
                LogFormat::Compact | LogFormat::Pretty => {
                    let why = problem
                        .as_ref()
                        .map(|(code, detail)| format!(" {code}: {}", short(detail, 100)))
                        .unwrap_or_default();
                    tracing::event!(
                        target: "access",
                        $level,
                        "{method} {path} {status} {ms:.1} ms{why}  req={request_id}"
                    )
                }
            }
        };
    }
    match status {
        500.. => at_level!(tracing::Level::ERROR),
        400..=499 => at_level!(tracing::Level::WARN),
        _ => at_level!(tracing::Level::INFO),
    }
}

/// At most `max` characters of `s`, on one line.
fn short(s: &str, max: usize) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_parse_and_refuse_the_unknown() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!(" Compact ".parse(), Ok(LogFormat::Compact));
        assert_eq!("pretty".parse(), Ok(LogFormat::Pretty));
        assert!("yaml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn details_are_cut_to_one_short_line() {
        assert_eq!(short("a\nb", 10), "a b");
        assert_eq!(
            short(&"é".repeat(120), 100),
            format!("{}…", "é".repeat(100))
        );
    }
}
