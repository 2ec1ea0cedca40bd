//! The life of a process: a public listener for the API, an admin listener for probes, metrics
//! and internal views (never routed to by the gateway, so nothing on it is reachable from the
//! internet), and a graceful stop of both on SIGINT/SIGTERM.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use futures_util::future::join_all;

/// The two sockets a process serves.
pub struct Listeners {
    pub public: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds `host:port` and `host:admin_port`.
    pub fn bind(host: &str, port: u16, admin_port: u16) -> anyhow::Result<Self> {
        let bind = |port: u16, what: &str| {
            TcpListener::bind((host, port))
                .map_err(|e| anyhow::anyhow!("cannot listen on {host}:{port} ({what}): {e}"))
        };
        Ok(Self {
            public: bind(port, "public")?,
            admin: bind(admin_port, "admin")?,
        })
    }

    /// Two ephemeral ports on 127.0.0.1 (tests).
    pub fn ephemeral() -> std::io::Result<Self> {
        Ok(Self {
            public: TcpListener::bind("127.0.0.1:0")?,
            admin: TcpListener::bind("127.0.0.1:0")?,
        })
    }

    pub fn public_addr(&self) -> std::io::Result<SocketAddr> {
        self.public.local_addr()
    }

    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin.local_addr()
    }
}

/// The most of a response body a connection's write buffer takes at once. actix keeps a
/// connection's write buffer (8 KiB to start) as large as the largest write it ever held, up to
/// 128 KiB, for as long as the connection lives: a 22 KB conversation written whole leaves
/// ~32 KiB behind on its keep-alive connection. Every server flushes once its buffer holds this
/// much (`h1_write_buffer_size`), so a body streamed in pieces of at most this size never makes
/// the buffer hold more than twice it — under a piece, then one piece (or a head under 4 KiB,
/// then one piece) — and the 8 KiB buffer never grows. The gateway cuts what it forwards so when
/// it holds many connections: see [`crowded`].
pub const RESPONSE_PIECE: usize = 4 * 1024;

/// The write buffer actix starts a connection with.
pub const WRITE_BUFFER: usize = 8 * 1024;

/// Connections held by the public listener of this process, now.
static OPEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts a public connection for as long as it lives (kept in the connection's data).
struct Open;

impl Open {
    fn new() -> Self {
        OPEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Past this many open connections, a process is crowded: what each connection keeps between
/// requests then matters more than the few writes a body in pieces costs.
pub const CROWDED: usize = 256;

/// Whether the public listener holds more than [`CROWDED`] connections. Below it, a body is best
/// written as the upstream's reads produce it (in pieces a conversation read cost the gateway
/// ~25 % more CPU and its client more reads); above it, in [`RESPONSE_PIECE`]s, so that a
/// thousand keep-alive clients hold ~16 MB instead of ~40 (measured: 1,000 connections, one
/// conversation each).
pub fn crowded() -> bool {
    OPEN.load(std::sync::atomic::Ordering::Relaxed) > CROWDED
}

/// Settings of the HTTP servers of a process.
#[derive(Clone)]
pub struct HttpSettings {
    pub workers: usize,
    /// Connections the public listener holds at once, across its workers (past it, new ones
    /// wait in the kernel's backlog): memory stays bounded under any load.
    pub max_connections: usize,
    /// How long a stopping server lets in-flight requests finish.
    pub shutdown_timeout: Duration,
    /// While it answers true, the public listener answers every request 503 (`Retry-After: 1`)
    /// before any middleware runs — no span, no request id, no histogram: under overload a
    /// refusal must cost as little as the machine allows. Counted in `http_shed_total`.
    pub saturated: Option<Saturated>,
    /// Run for each new connection of the public listener (after TCP_NODELAY is set): what a
    /// process works out once per connection rather than per request goes into the
    /// connection's data (`HttpRequest::conn_data`).
    pub on_connect: Option<OnConnect>,
}

/// See [`HttpSettings::saturated`].
pub type Saturated = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

/// See [`HttpSettings::on_connect`]: the connection (a `TcpStream`) and its data.
pub type OnConnect =
    std::sync::Arc<dyn Fn(&dyn std::any::Any, &mut actix_web::dev::Extensions) + Send + Sync>;

/// A process's two HTTP servers: what its public and admin listeners serve.
pub struct Http<P, A> {
    pub name: &'static str,
    pub listeners: Listeners,
    pub settings: HttpSettings,
    /// The public listener's routes (wrapped in the request id, metrics and request logging).
    pub public: P,
    /// The admin listener's routes (probes and scrapes: not logged).
    pub admin: A,
}

/// Serves both listeners until SIGINT/SIGTERM, then stops them gracefully. The one lifecycle of
/// every process, the services and the gateway alike.
pub async fn serve_http<P, A>(http: Http<P, A>) -> anyhow::Result<()>
where
    P: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    A: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let Http {
        name,
        listeners,
        settings,
        public,
        admin,
    } = http;
    const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(75);
    // Whether anything listens to the requests' root spans is settled at start (the log filter
    // and the trace exporter's are read once): when nothing does, the tracing layer is left out
    // rather than run for a disabled span, which cost the gateway's hop 5 % of its instructions
    // (a layer around every request, and its body entering the span at every chunk).
    let spans = tracing::enabled!(
        target: "tracing_actix_web::root_span_builder",
        tracing::Level::INFO
    );
    let public = HttpServer::new(move || {
        App::new()
            .configure(public.clone())
            .wrap(from_fn(each_request))
            .wrap(actix_web::middleware::Condition::new(
                spans,
                tracing_actix_web::TracingLogger::<RootSpan>::new(),
            ))
            .wrap(from_fn({
                let saturated = settings.saturated.clone();
                move |req, next| shed_when_saturated(saturated.clone(), req, next)
            }))
    })
    .on_connect({
        let hook = settings.on_connect.clone();
        move |conn, data| {
            crate::no_delay(conn, data);
            data.insert(Open::new());
            if let Some(hook) = &hook {
                hook(conn, data);
            }
        }
    })
    // Longer than any client of ours keeps an idle connection (the gateway's pool: 60 s), so a
    // connection is never closed here just as a request is sent on it (nginx's default too).
    .keep_alive(KEEP_ALIVE)
    // Flushed at `RESPONSE_PIECE`: a body handed over in pieces keeps the write buffer small.
    .h1_write_buffer_size(RESPONSE_PIECE)
    .workers(settings.workers)
    .max_connections((settings.max_connections / settings.workers.max(1)).max(1))
    .shutdown_timeout(settings.shutdown_timeout.as_secs())
    .disable_signals()
    .listen(listeners.public)?
    .run();
    let admin = HttpServer::new(move || {
        App::new()
            .configure(admin.clone())
            .wrap(from_fn(crate::request_id::middleware))
    })
    .workers(1)
    .shutdown_timeout(settings.shutdown_timeout.as_secs())
    .disable_signals()
    .listen(listeners.admin)?
    .run();
    run_until_stopped(name, vec![public, admin]).await?;
    tracing::info!(service = name, "stopped");
    Ok(())
}

/// Each request's root span, built only when something listens to it: tracing-actix-web's
/// default builder reads the connection info, makes a request id of its own and formats the
/// span's name for every request before its span macro finds the span off.
struct RootSpan;

impl tracing_actix_web::RootSpanBuilder for RootSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        // The default builder's span has this target and level.
        if tracing::enabled!(
            target: "tracing_actix_web::root_span_builder",
            tracing::Level::INFO
        ) {
            tracing_actix_web::DefaultRootSpanBuilder::on_request_start(request)
        } else {
            tracing::Span::none()
        }
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        if !span.is_disabled() {
            tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
        }
    }
}

/// The outermost middleware: a 503 before anything else runs while the server is saturated.
async fn shed_when_saturated(
    saturated: Option<Saturated>,
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    if saturated.is_some_and(|s| s()) {
        metrics::counter!("http_shed_total").increment(1);
        let mut req = req;
        let (head, body) = req.parts_mut();
        drain_small_body(head.headers(), body).await;
        return Ok(req.into_response(crate::ApiError::shed()));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Reads the small body of a request about to be refused, so that its connection stays open:
/// actix closes a keep-alive connection whose body (of a stated length) was left unread, and
/// every refused POST would then cost its client a new connection — under overload thousands
/// a second, each accepted here (and a TLS handshake behind a real load balancer), the
/// kernel's backlog overflowing into SYN retransmits of a second and more. A large body, or
/// one not all there within a few milliseconds, is left unread: that connection closes.
pub async fn drain_small_body<S>(headers: &actix_web::http::header::HeaderMap, body: &mut S)
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, actix_web::error::PayloadError>>
        + Unpin,
{
    use futures_util::StreamExt;
    const AT_MOST: u64 = 64 * 1024;
    const WAIT: std::time::Duration = std::time::Duration::from_millis(5);
    let length = headers
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n > 0 && n <= AT_MOST) {
        let _ = tokio::time::timeout(WAIT, async { while let Some(Ok(_)) = body.next().await {} })
            .await;
    }
}

/// What every public request goes through inside its span, in one layer rather than three
/// (each boxes the future of the next): its request id, set for everything it runs and echoed
/// in the answer; the refusal of a compressed body; its histograms and access line.
async fn each_request<B: actix_web::body::MessageBody + 'static>(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>, actix_web::Error> {
    use actix_web::ResponseError;
    use actix_web::dev::ServiceResponse;
    let id = crate::request_id::from_request(&req);
    let timing = crate::metrics::Timing::start(&req);
    let served = async move {
        match compressed_body(&req) {
            Some(refused) => Ok(req
                .into_response(refused.error_response())
                .map_into_right_body()),
            None => next
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body),
        }
    };
    let (res, queries) =
        crate::request_id::scope(id.clone(), db_core::instrumentation::count_queries(served)).await;
    timing.finish(&res, queries, &id);
    let mut res = res?;
    crate::request_id::stamp(&mut res, &id);
    Ok(res)
}

/// A compressed request body is refused (415): actix would expand it before any size limit
/// applies, a few kilobytes sent for hundreds of megabytes held.
fn compressed_body(req: &actix_web::dev::ServiceRequest) -> Option<crate::ApiError> {
    let encoding = req
        .headers()
        .get(actix_web::http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .filter(|e| e != "identity")?;
    Some(crate::ApiError::UnsupportedMediaType(format!(
        "request bodies are not taken compressed (Content-Encoding: {encoding})"
    )))
}

/// Runs `servers` (built with `disable_signals`) until one fails or SIGINT/SIGTERM arrives,
/// then stops them all gracefully and waits for them.
pub async fn run_until_stopped(name: &'static str, servers: Vec<Server>) -> std::io::Result<()> {
    let handles: Vec<_> = servers.iter().map(Server::handle).collect();
    let mut all = Box::pin(join_all(servers));
    let signal = tokio::select! {
        results = &mut all => return results.into_iter().collect(),
        signal = shutdown_signal() => signal,
    };
    tracing::info!(
        service = name,
        signal,
        "stopping: finishing requests in flight"
    );
    // The stop commands go out now; the servers act on them while `all` is polled below (a
    // server only makes progress while its future is polled: awaiting a stop first would wait
    // forever).
    let stopped = join_all(handles.iter().map(|h| h.stop(true)));
    let results = all.await;
    stopped.await;
    results.into_iter().collect()
}

/// Resolves with the signal's name on SIGINT or SIGTERM.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// Background tasks that end with their owner: dropped (the server stopped, or a test's server
/// task was aborted), they are aborted.
#[derive(Default)]
pub struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Tasks {
    pub fn add(&mut self, tasks: impl IntoIterator<Item = tokio::task::JoinHandle<()>>) {
        self.0.extend(tasks);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// While saturated, a request is refused 503 before any middleware (no request id on the
    /// answer); once not, the same request is served through all of them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_saturated_server_refuses_before_any_middleware() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let saturated = Arc::new(AtomicBool::new(true));
        let flag = saturated.clone();
        let listeners = Listeners::ephemeral().unwrap();
        let base = format!("http://{}", listeners.public_addr().unwrap());
        let server = tokio::spawn(serve_http(Http {
            name: "test",
            listeners,
            settings: HttpSettings {
                workers: 1,
                max_connections: 16,
                shutdown_timeout: Duration::from_secs(1),
                saturated: Some(Arc::new(move || flag.load(Ordering::Relaxed))),
                on_connect: None,
            },
            public: |cfg: &mut web::ServiceConfig| {
                cfg.route("/ok", web::get().to(|| async { "fine" }));
            },
            admin: |_: &mut web::ServiceConfig| {},
        }));
        let addr = listeners_addr(&base);
        let http = reqwest::Client::new();
        let refused = http.get(format!("{base}/ok")).send().await.unwrap();
        assert_eq!(refused.status(), 503);
        assert_eq!(
            refused.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(refused.headers()["retry-after"], "1");
        assert!(
            !refused.headers().contains_key(crate::request_id::HEADER),
            "refused before the request id middleware"
        );

        // A refused POST leaves its connection open for the next request, as long as its body
        // is small: the body is read before the refusal.
        let post = |length: usize, body: &str| {
            format!(
                "POST /ok HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n{body}"
            )
        };
        let small = r#"{"content":"hello"}"#;
        let (reused, big) = tokio::task::spawn_blocking(move || {
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let reused: Vec<Option<String>> = (0..3)
                .map(|_| exchange(&mut conn, &post(small.len(), small)))
                .collect();
            // A body far larger than a refusal is worth reading: refused, connection closed.
            let big = exchange(&mut conn, &post(1 << 20, small));
            let mut rest = [0u8; 64];
            let closed = matches!(std::io::Read::read(&mut conn, &mut rest), Ok(0) | Err(_));
            (reused, (big, closed))
        })
        .await
        .unwrap();
        for (n, head) in reused.into_iter().enumerate() {
            let head = head.unwrap_or_else(|| panic!("refusal {n}: the connection was closed"));
            assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        }
        assert!(big.0.unwrap().starts_with("HTTP/1.1 503"));
        assert!(big.1, "the connection of a large unread body closes");

        saturated.store(false, Ordering::Relaxed);
        let served = http.get(format!("{base}/ok")).send().await.unwrap();
        assert_eq!(served.status(), 200);
        assert!(served.headers().contains_key(crate::request_id::HEADER));
        server.abort();
    }

    fn listeners_addr(base: &str) -> std::net::SocketAddr {
        base.trim_start_matches("http://").parse().unwrap()
    }

    /// Writes one request and reads one answer; its head, or `None` if the connection closed.
    fn exchange(conn: &mut std::net::TcpStream, request: &str) -> Option<String> {
        use std::io::{Read, Write};
        conn.write_all(request.as_bytes()).ok()?;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if got.len() >= end + 4 + length {
                    return Some(text[..end].to_owned());
                }
            }
        }
    }
}
