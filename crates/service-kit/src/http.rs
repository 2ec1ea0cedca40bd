//! The one HTTP client every process calls out with (the gateway to its upstreams, ai to media
//! and to a model's API, media to an image API): rustls with ring, TCP_NODELAY, a connect
//! timeout, and every request carrying the caller's trace context, injected here and nowhere
//! else.

use std::time::Duration;

/// A client with the shared settings; `configure` adds what the caller needs (timeouts,
/// pooling).
pub fn client(
    configure: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> reqwest::Result<reqwest::Client> {
    // reqwest is built without a default TLS provider: ring's, installed once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    configure(
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            // Idle connections are dropped before the servers' keep-alive (75 s) closes them,
            // so none is reused at the moment the other side closes it.
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true),
    )
    .build()
}

/// Requests that continue the current trace.
pub trait Traced {
    /// Adds `traceparent` for the current span (when tracing is on), so the callee's spans join
    /// the caller's trace.
    fn traced(self) -> Self;
}

impl Traced for reqwest::RequestBuilder {
    fn traced(self) -> Self {
        match crate::telemetry::traceparent() {
            Some(tp) => self.header("traceparent", tp),
            None => self,
        }
    }
}
