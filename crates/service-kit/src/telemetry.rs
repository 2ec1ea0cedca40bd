//! Logs and traces. JSON logs on stdout (filtered by `RUST_LOG`); when
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
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
        let logs = tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false);
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
            let spans = tracing_subscriber::EnvFilter::try_from_env("OTEL_TRACES_FILTER")
                .unwrap_or_else(|_| "info".into());
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer(service))
                .with_filter(spans)
        });
        let _ = tracing_subscriber::registry()
            .with(logs.with_filter(filter))
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
    let cx: Context = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    carrier.remove("traceparent")
}

/// The trace id of the current span, when tracing is on.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let cx = tracing::Span::current().context();
    let id = cx.span().span_context().trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}
