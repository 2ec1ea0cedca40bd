//! The gateway: the one public entry. Forwards exactly the operations the services declare
//! (`routes`, `directory`), checks access tokens (and revocations), applies per-address and
//! per-user rate limits shared through Redis, bounds what each client and everyone together
//! may hold, balances over replicas with health checks, and streams answers through.

pub mod clients;
pub mod directory;
pub mod proxy;
pub mod routes;
pub mod upstream;
pub mod webapp;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use db_core::{Cache, Revocations, SyncedLimits};
use service_kit::TokenKeys;
use service_kit::config::var_or as env_or;
use service_kit::metrics::PrometheusHandle as Handle;
use upstream::{Service, Upstreams};

use crate::clients::{Occupancy, TrustedProxies};
use crate::directory::Directory;

/// The gateway's settings, read once at start-up.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub host: String,
    pub port: u16,
    /// `ADMIN_PORT` (default the port + 1000): `/health`, `/ready`, `/metrics`.
    pub admin_port: u16,
    /// Replica URLs per service, from `AUTH_URLS`, `CHAT_URLS`, `AI_URLS`, `MEDIA_URLS`.
    pub upstreams: Vec<(&'static str, Vec<String>)>,
    pub ip_limit_per_min: u64,
    pub user_limit_per_min: u64,
    /// `GATEWAY_LIMIT_SYNC_MS`: how often this gateway adds its counted hits to the shared
    /// counters in Redis and reads back every replica's (see [`db_core::SyncedLimits`]); the
    /// limits are shared within what the other replicas count in that time.
    pub limit_sync: Duration,
    pub max_body_bytes: usize,
    /// `GATEWAY_BODY_TIMEOUT_MS`: a request body must have arrived whole by then (408): a
    /// client sending a byte now and then cannot hold the gateway.
    pub body_timeout: Duration,
    /// `CORS_ORIGINS`: comma-separated, or `*`.
    pub cors_origins: String,
    /// `GATEWAY_MAX_IN_FLIGHT`: requests waiting on an upstream at once (from sending to the
    /// answer's head; reading a client's body or streaming an answer holds no slot). Past it,
    /// an immediate 503: an overloaded machine sheds load instead of queueing it. 128: past it,
    /// more requests in flight only queue in front of the upstreams (3x overload, all on one
    /// core: 256 answered no more, but refused 2x slower and held 12 MiB more; 64 and 32
    /// refused faster still, and starved the upstreams).
    pub max_in_flight: usize,
    /// `GATEWAY_MAX_LONG_IN_FLIGHT`: the same bound for the operations that may take minutes
    /// (a reply written whole before it is answered), counted apart, so that they can never
    /// take the slots every other request needs.
    pub max_long_in_flight: usize,
    /// `GATEWAY_MAX_CONNECTIONS`: client connections held at once; past it, new ones wait in
    /// the kernel's backlog. With the in-flight bounds, the gateway's memory stays flat under
    /// any load.
    pub max_connections: usize,
    /// `GATEWAY_MAX_PER_CLIENT`: requests one client address may have in the gateway at once
    /// (429 past it), so that one client cannot take every slot.
    pub max_per_client: usize,
    /// `TRUSTED_PROXIES`: whose `X-Forwarded-For` is believed (see [`clients`]).
    pub trusted_proxies: TrustedProxies,
    pub access_ttl: Duration,
    /// The cache's lifetimes (the same variables as every service).
    pub ttls: db_core::cache::Ttls,
    pub shutdown_timeout: Duration,
    pub production: bool,
    /// `WEB_DIR`: the built web app (`web/dist`), served at `/` (see [`webapp`]); unset, none.
    pub web_dir: Option<String>,
}

impl GatewayConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let urls = |var: &'static str, default: &str| {
            env_or(var, default.to_owned()).map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
        };
        let port = env_or("GATEWAY_PORT", env_or("PORT", 8080)?)?;
        Ok(Self {
            host: env_or("HOST", "127.0.0.1".to_owned())?,
            port,
            admin_port: env_or("ADMIN_PORT", port.saturating_add(1000))?,
            upstreams: vec![
                ("auth", urls("AUTH_URLS", "http://127.0.0.1:8081")?),
                ("chat", urls("CHAT_URLS", "http://127.0.0.1:8082")?),
                ("ai", urls("AI_URLS", "http://127.0.0.1:8083")?),
                ("media", urls("MEDIA_URLS", "http://127.0.0.1:8084")?),
            ],
            ip_limit_per_min: env_or("RATE_LIMIT_IP_PER_MIN", 1200)?,
            user_limit_per_min: env_or("RATE_LIMIT_USER_PER_MIN", 600)?,
            limit_sync: Duration::from_millis(env_or("GATEWAY_LIMIT_SYNC_MS", 100)?.max(10)),
            max_body_bytes: env_or("MAX_BODY_BYTES", 1024 * 1024)?,
            body_timeout: Duration::from_millis(env_or("GATEWAY_BODY_TIMEOUT_MS", 10_000)?),
            cors_origins: env_or("CORS_ORIGINS", "*".to_owned())?,
            max_in_flight: env_or("GATEWAY_MAX_IN_FLIGHT", 128)?,
            max_long_in_flight: env_or("GATEWAY_MAX_LONG_IN_FLIGHT", 64)?,
            max_per_client: env_or("GATEWAY_MAX_PER_CLIENT", 64)?,
            max_connections: env_or("GATEWAY_MAX_CONNECTIONS", 4096)?,
            trusted_proxies: TrustedProxies::parse(&env_or("TRUSTED_PROXIES", String::new())?)
                .map_err(anyhow::Error::msg)?,
            access_ttl: service_kit::access_ttl()?,
            ttls: service_kit::config::cache_ttls()?,
            shutdown_timeout: Duration::from_secs(env_or("SHUTDOWN_TIMEOUT_S", 20)?),
            production: service_kit::config::environment()? == db_core::Environment::Production,
            web_dir: service_kit::config::var("WEB_DIR"),
        })
    }
}

pub struct Gateway {
    pub config: GatewayConfig,
    pub cache: Cache,
    pub keys: TokenKeys,
    pub revocations: Revocations,
    pub limits: SyncedLimits,
    pub upstreams: Arc<Upstreams>,
    pub directory: Arc<Directory>,
    /// The forwarding client of the thread asking (see [`Gateway::forwarder`]).
    forwarders: thread_local::ThreadLocal<proxy::Forwarder>,
    /// What the forwarding clients trust of an `https://` replica: the platform's roots, read
    /// once.
    tls: rustls::ClientConfig,
    /// The background work's client (health checks, the route table).
    client: reqwest::Client,
    pub metrics: Handle,
    pub in_flight: tokio::sync::Semaphore,
    pub long_in_flight: tokio::sync::Semaphore,
    pub occupancy: Occupancy,
    /// The web app, read once from `WEB_DIR`.
    pub webapp: Option<webapp::WebApp>,
}

/// How the gateway's background work talks to the services.
fn background_client() -> reqwest::Result<reqwest::Client> {
    service_kit::http::client(|b| {
        // Straight to the replicas, as the forwarding client goes: a proxy in the environment
        // must not make a replica look healthy that requests cannot reach.
        b.no_proxy()
            .connect_timeout(Duration::from_secs(1))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            // Never follow an upstream's redirect: the client gets it as it is.
            .redirect(reqwest::redirect::Policy::none())
    })
}

impl Gateway {
    pub fn new(config: GatewayConfig, cache: Cache, keys: TokenKeys) -> anyhow::Result<Self> {
        use rustls_platform_verifier::ConfigVerifierExt;
        let client = background_client()?;
        let tls = rustls::ClientConfig::with_platform_verifier()?;
        let upstreams = Arc::new(Upstreams {
            services: config
                .upstreams
                .iter()
                .map(|(name, urls)| Service::new(name, urls))
                .collect(),
        });
        let names: Vec<&'static str> = config.upstreams.iter().map(|(n, _)| *n).collect();
        let webapp = config
            .web_dir
            .as_deref()
            .map(|dir| webapp::WebApp::load(std::path::Path::new(dir)))
            .transpose()?;
        Ok(Self {
            webapp,
            in_flight: tokio::sync::Semaphore::new(config.max_in_flight.max(1)),
            long_in_flight: tokio::sync::Semaphore::new(config.max_long_in_flight.max(1)),
            occupancy: Occupancy::new(config.max_per_client),
            directory: Arc::new(Directory::new(&names)),
            revocations: Revocations::new(),
            limits: SyncedLimits::new(cache.clone()),
            config,
            cache,
            keys,
            upstreams,
            forwarders: thread_local::ThreadLocal::new(),
            tls,
            client,
            metrics: service_kit::metrics::install(),
        })
    }

    /// The client of the background work (and of tests that load the route table).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The client for requests forwarded on this thread. One per thread: a pooled
    /// connection's task runs on the runtime that opened it, so a connection shared between the
    /// HTTP workers (one single-threaded runtime each) would have every request and answer
    /// cross threads — two wake-ups through the kernel per request.
    pub fn forwarder(&self) -> &proxy::Forwarder {
        self.forwarders
            .get_or(|| proxy::forwarder(self.tls.clone()))
    }

    /// The background work: replica health checks, the route table, revocations heard on
    /// Redis, the rate-limit counters shared through Redis.
    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![
            self.upstreams.spawn_health_checks(self.client.clone()),
            self.directory
                .spawn(self.upstreams.clone(), self.client.clone()),
        ];
        tasks.extend(self.revocations.spawn_listener(&self.cache));
        tasks.push(self.limits.spawn(self.config.limit_sync));
        tasks
    }

    /// Ready when every service's routes are known and each has a replica taking requests.
    pub fn readiness(&self) -> (bool, serde_json::Value) {
        let snapshot = self.directory.snapshot();
        let mut services = serde_json::Map::new();
        let mut ready = snapshot.missing.is_empty();
        for s in &self.upstreams.services {
            let routed = !snapshot.missing.contains(&s.name);
            let up = s.replicas.iter().any(|r| !r.breaker.is_open());
            ready &= up;
            services.insert(
                s.name.to_owned(),
                serde_json::json!({ "routes_known": routed, "replicas_up": up }),
            );
        }
        let body = serde_json::json!({
            "status": if ready { "ready" } else { "not_ready" },
            "service": "gateway",
            "routes": snapshot.table.len(),
            "redis": if self.cache.redis_healthy() { "up" } else { "down" },
            "services": services,
        });
        (ready, body)
    }
}

/// The gateway process: configuration read once, the two listeners, the background work, a
/// graceful stop (the same lifecycle as every service: `service_kit::server::serve_http`).
pub async fn run() -> anyhow::Result<()> {
    use service_kit::server::{Http, HttpSettings, Listeners, Tasks, serve_http};
    let config = GatewayConfig::from_env()?;
    let cache = Cache::with_ttls(
        db_core::RedisPool::new(&service_kit::config::redis()?)?,
        config.ttls,
    );
    // Behind a proxy the gateway is reachable from elsewhere, whatever address it binds: the
    // public development keys (anyone can mint tokens with them) are refused then too.
    let dev_keys = match service_kit::auth::DevKeys::policy(config.production, &config.host) {
        service_kit::auth::DevKeys::Allowed if !config.trusted_proxies.is_empty() => {
            service_kit::auth::DevKeys::Exposed("a proxy (TRUSTED_PROXIES is set)".into())
        }
        policy => policy,
    };
    let keys = TokenKeys::from_env(false, dev_keys, config.access_ttl)?;
    let listeners = Listeners::bind(&config.host, config.port, config.admin_port)?;
    tracing::info!(
        service = "gateway",
        addr = %listeners.public_addr()?,
        admin = %listeners.admin_addr()?,
        "listening"
    );
    let gw = web::Data::new(Gateway::new(config.clone(), cache, keys)?);
    let mut tasks = Tasks::default();
    tasks.add(gw.spawn_background());
    let admin_gw = gw.clone();
    let cors = config.cors_origins.clone();
    serve_http(Http {
        name: "gateway",
        listeners,
        settings: HttpSettings {
            workers: service_kit::http_workers()?,
            max_connections: config.max_connections,
            shutdown_timeout: config.shutdown_timeout,
            // Every slot for upstream requests taken: refused before any middleware (the
            // handler checks again, for the requests that got past this one).
            saturated: Some({
                let gw = gw.clone();
                std::sync::Arc::new(move || gw.in_flight.available_permits() == 0)
            }),
            // A client connecting directly is the connection's for all its requests: its key
            // and forwarding header are made once (see `clients::Client`).
            on_connect: Some({
                let proxies = config.trusted_proxies.clone();
                std::sync::Arc::new(move |conn, data| proxies.on_connect(conn, data))
            }),
        },
        public: move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(gw.clone());
            public(cfg, &cors);
        },
        admin: move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(admin_gw.clone()).configure(configure_admin);
        },
    })
    .await
}

/// CORS for browsers: the configured origins (or any, with `*`), the methods the API uses.
pub fn cors(origins: &str) -> actix_cors::Cors {
    let base = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers([
            "authorization",
            "content-type",
            "x-request-id",
            "traceparent",
            "last-event-id",
            "idempotency-key",
            // Not `x-dream-session`: a page of another origin must not be able to ask for the
            // session cookies (see service_kit::session).
        ])
        .expose_headers([
            "x-request-id",
            "retry-after",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
        ])
        .max_age(600);
    if origins.trim() == "*" {
        base.allow_any_origin()
    } else {
        origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .fold(base, |c, o| c.allowed_origin(o))
    }
}

/// The public listener: [`configure`] behind CORS for the requests a page makes.
///
/// A browser sends `Origin` with every cross-origin request and preflight, so a request without
/// one is none of CORS's business (an `OPTIONS` without it is answered as any other request
/// without a route for it, not as a preflight): it skips the CORS layer, which cost the hop 2 %
/// of its instructions (1,850 per catalogue request) for headers that only a page reads
/// (`Access-Control-Expose-Headers`). Its answer still varies by `Origin` (another origin's
/// request for the same URL is answered with other headers), added to whatever the service's
/// answer varies by.
pub fn public(cfg: &mut web::ServiceConfig, cors_origins: &str) {
    use actix_web::dev::Service as _;
    use actix_web::http::header::{HeaderValue, ORIGIN, VARY};
    cfg.service(
        web::scope("")
            .guard(actix_web::guard::fn_guard(|ctx| {
                ctx.head().headers().contains_key(ORIGIN)
            }))
            .wrap(cors(cors_origins))
            .configure(configure),
    )
    .service(
        web::scope("")
            .wrap_fn(|req, srv| {
                let answer = srv.call(req);
                async move {
                    let mut res = answer.await?;
                    res.headers_mut()
                        .append(VARY, HeaderValue::from_static("Origin"));
                    Ok(res)
                }
            })
            .configure(configure),
    );
}

/// The gateway's own routes, and everything else forwarded (or refused).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/openapi.json", web::get().to(proxy::openapi))
        .route("/health", web::get().to(health))
        .default_service(web::to(front));
}

/// The web app's pages and files when `WEB_DIR` is set and the request is one of theirs;
/// everything else goes through [`proxy::forward`], unchanged.
async fn front(
    req: actix_web::HttpRequest,
    payload: web::Payload,
    gw: web::Data<Gateway>,
) -> Result<HttpResponse, service_kit::ApiError> {
    if let Some(res) = gw.webapp.as_ref().and_then(|app| app.serve(&req)) {
        return Ok(res);
    }
    proxy::forward(req, payload, gw).await
}

/// The admin listener.
pub fn configure_admin(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics));
}

/// The process is up. Says nothing about anything else (it is public and must stay cheap).
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok", "service": "gateway" }))
}

async fn ready(gw: web::Data<Gateway>) -> HttpResponse {
    let (ready, body) = gw.readiness();
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(gw: web::Data<Gateway>) -> HttpResponse {
    metrics::gauge!("gateway_routes").set(gw.directory.snapshot().table.len() as f64);
    metrics::gauge!("gateway_clients").set(gw.occupancy.clients() as f64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(gw.metrics.render())
}
