#![doc = include_str!("../README.md")]

pub mod auth;
pub mod checks;
pub mod client;
pub mod config;
pub mod contracts;
pub mod error;
pub mod health;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod request_id;
pub mod secret;
pub mod server;
pub mod session;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

use actix_web::web;
use db_core::{Cache, Db, PgConfig, RedisConfig, RedisPool, SlowQueryConfig, Store};
use metrics_exporter_prometheus::PrometheusHandle;

pub use auth::{AuthUser, MaybeUser, TokenKeys};
pub use error::{ApiError, ApiResult};
pub use openapi::{Api, ApiConfig};
pub use secret::Secret;
pub use server::Listeners;

/// What every service keeps in its app data.
#[derive(Clone)]
pub struct Kit {
    pub service: &'static str,
    pub store: Store,
    pub keys: TokenKeys,
    pub metrics: PrometheusHandle,
}

/// Settings every service reads from the environment.
#[derive(Debug, Clone)]
pub struct KitConfig {
    pub service: &'static str,
    pub production: bool,
    pub host: String,
    pub port: u16,
    /// `ADMIN_PORT`: `/health`, `/ready`, `/metrics` and `/internal/*`, never routed to by the
    /// gateway. Defaults to the public port + 1000.
    pub admin_port: u16,
    pub pg: PgConfig,
    pub redis: RedisConfig,
    pub slow: SlowQueryConfig,
    /// `CACHE_ENABLED=false` serves everything from PostgreSQL (the benchmark's `--no-cache`).
    pub cache_enabled: bool,
    /// The cache's lifetimes (`CACHE_TTL_<FAMILY>_S`, `CACHE_LOCAL_TTL_S`).
    pub ttls: db_core::cache::Ttls,
    /// How long a stopping server lets in-flight requests finish.
    pub shutdown_timeout: Duration,
    pub access_ttl: Duration,
}

impl KitConfig {
    /// `{SERVICE}_PORT` (e.g. `AUTH_PORT`) or `PORT`, then `default_port`.
    pub fn from_env(service: &'static str, default_port: u16) -> anyhow::Result<Self> {
        use config::var_or as env_or;
        let env = config::environment()?;
        let port_var = format!("{}_PORT", service.to_ascii_uppercase());
        let port = match std::env::var(&port_var).or_else(|_| std::env::var("PORT")) {
            Ok(p) => p
                .parse()
                .map_err(|e| anyhow::anyhow!("{port_var}/PORT={p:?}: {e}"))?,
            Err(_) => default_port,
        };
        Ok(Self {
            service,
            production: env == db_core::Environment::Production,
            host: env_or("HOST", "127.0.0.1".to_owned())?,
            port,
            admin_port: env_or("ADMIN_PORT", port.saturating_add(1000))?,
            pg: config::postgres(service)?,
            redis: config::redis()?,
            slow: config::slow_queries()?,
            cache_enabled: env_or("CACHE_ENABLED", true)?,
            ttls: config::cache_ttls()?,
            shutdown_timeout: Duration::from_secs(env_or("SHUTDOWN_TIMEOUT_S", 20)?),
            access_ttl: access_ttl()?,
        })
    }

    /// Binds the public and admin ports.
    pub fn listeners(&self) -> anyhow::Result<Listeners> {
        Listeners::bind(&self.host, self.port, self.admin_port)
    }

    /// Builds the kit: pools (no connection is opened yet), cache, keys, metrics.
    pub fn kit(&self, sign_tokens: bool) -> anyhow::Result<Kit> {
        let db = Db::new(&self.pg, self.slow);
        let cache = if self.cache_enabled {
            Cache::with_ttls(RedisPool::new(&self.redis)?, self.ttls)
        } else {
            Cache::disabled()
        };
        Ok(Kit {
            service: self.service,
            store: Store::new(db, cache),
            keys: TokenKeys::from_env(
                sign_tokens,
                auth::DevKeys::policy(self.production, &self.host),
                self.access_ttl,
            )?,
            metrics: metrics::install(),
        })
    }
}

/// `ACCESS_TOKEN_TTL_S` (default 900), at most [`db_core::revocations::MAX_ACCESS_TTL`]: a
/// revocation is remembered that long.
pub fn access_ttl() -> anyhow::Result<Duration> {
    let ttl = Duration::from_secs(config::var_or("ACCESS_TOKEN_TTL_S", 900)?);
    let max = db_core::revocations::MAX_ACCESS_TTL;
    anyhow::ensure!(
        !ttl.is_zero() && ttl <= max,
        "ACCESS_TOKEN_TTL_S must be between 1 and {}",
        max.as_secs()
    );
    Ok(ttl)
}

/// JSON bodies: at most 1 MiB (the gateway's `MAX_BODY_BYTES`; the largest declared body, a
/// character of one's own at its maximum lengths written as `\uXXXX` escapes, is about
/// 340 KB, so whatever the document calls valid is read and judged by its fields);
/// unreadable ones are 400 problems, never actix's plain text.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(1024 * 1024)
        .error_handler(|err, _| {
            use actix_web::error::JsonPayloadError;
            match err {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => ApiError::PayloadTooLarge.into(),
                JsonPayloadError::ContentType => {
                    ApiError::BadRequest("expected Content-Type: application/json".into()).into()
                }
                e => ApiError::BadRequest(format!("invalid JSON body: {e}")).into(),
            }
        })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _| ApiError::BadRequest(format!("invalid query string: {err}")).into())
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _| ApiError::BadRequest(format!("invalid path: {err}")).into())
}

/// `HttpServer::on_connect` hook: answers go out at once. Without TCP_NODELAY a response
/// written in two parts (headers, then a streamed body) waits for the client's delayed ACK,
/// and about one request in twenty took 40 ms more (the p95 of every operation in the
/// benchmark sat at 44 ms while p50 was under 3 ms).
pub fn no_delay(conn: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>()
        && let Err(e) = tcp.set_nodelay(true)
    {
        tracing::warn!(error = %e, "cannot set TCP_NODELAY");
    }
}

/// Worker threads of an HTTP server (`HTTP_WORKERS`): by default one per core the process may
/// use, as actix does. (On the 2-core benchmark machine one worker per service was no faster.)
pub fn http_workers() -> anyhow::Result<usize> {
    Ok(config::http_workers()?)
}

async fn not_found() -> ApiResult<actix_web::HttpResponse> {
    Err(ApiError::NotFound)
}

/// Starts a service: its API on the public listener (with `/health` and `/openapi.json`), the
/// admin endpoints on the admin listener, `data` adding the app data its handlers need, the
/// store's background work (revocations, catalogue invalidations). Stops gracefully on
/// SIGINT/SIGTERM.
pub async fn serve<D>(
    kit: Kit,
    listeners: Listeners,
    shutdown_timeout: Duration,
    api: Api,
    data: D,
) -> anyhow::Result<()>
where
    D: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let shared = web::Data::new(kit.clone());
    let keys = web::Data::new(kit.keys.clone());
    let revocations = web::Data::new(kit.store.revocations().clone());
    let document = web::Data::new(api.document());
    let mut tasks = server::Tasks::default();
    tasks.add(kit.store.spawn_background());
    let admin_kit = shared.clone();
    server::serve_http(server::Http {
        name: kit.service,
        listeners,
        settings: server::HttpSettings {
            workers: http_workers()?,
            max_connections: 4096,
            shutdown_timeout,
            saturated: None,
            on_connect: None,
        },
        public: move |cfg: &mut web::ServiceConfig| {
            (api.routes)(&mut ApiConfig::new(cfg));
            cfg.app_data(shared.clone())
                .app_data(keys.clone())
                .app_data(revocations.clone())
                .app_data(document.clone())
                .app_data(json_config())
                .app_data(query_config())
                .app_data(path_config())
                .configure(data.clone())
                .route("/health", web::get().to(health::health))
                .route("/openapi.json", web::get().to(openapi_json))
                .default_service(web::to(not_found));
        },
        admin: move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(admin_kit.clone())
                .configure(health::admin)
                .default_service(web::to(not_found));
        },
    })
    .await
}

/// A service binary: its name and port, its API, the settings and background work of its own.
/// [`run`] gives every service the same life: telemetry, configuration read once, the kit, the
/// listeners, a graceful stop.
pub trait Service: Clone + Send + Sync + Sized + 'static {
    const NAME: &'static str;
    const DEFAULT_PORT: u16;
    /// Only the auth service mints tokens.
    const SIGNS_TOKENS: bool = false;
    const API: Api;

    /// Reads the service's own settings (once) and starts its background work.
    fn start(kit: &Kit) -> impl std::future::Future<Output = anyhow::Result<Self>> + Send;

    /// Adds the app data its handlers need.
    fn configure(&self, _cfg: &mut web::ServiceConfig) {}

    /// Stops its background work, after the listeners have stopped, within `within`.
    fn stop(self, _within: Duration) -> impl std::future::Future<Output = ()> + Send {
        async {}
    }
}

/// The `main` of a service binary.
pub async fn run<S: Service>() -> anyhow::Result<()> {
    let telemetry = Telemetry::init(S::NAME);
    let started = async {
        let config = KitConfig::from_env(S::NAME, S::DEFAULT_PORT)?;
        let kit = config.kit(S::SIGNS_TOKENS)?;
        let service = S::start(&kit).await?;
        let listeners = config.listeners()?;
        tracing::info!(
            service = S::NAME,
            addr = %listeners.public_addr()?,
            admin = %listeners.admin_addr()?,
            "listening"
        );
        let data = service.clone();
        serve(
            kit,
            listeners,
            config.shutdown_timeout,
            S::API,
            move |cfg: &mut web::ServiceConfig| data.configure(cfg),
        )
        .await?;
        service.stop(config.shutdown_timeout).await;
        Ok::<_, anyhow::Error>(())
    };
    let result = started.await;
    if let Err(e) = &result {
        tracing::error!(service = S::NAME, error = %format!("{e:#}"), "cannot run");
    }
    telemetry.shutdown();
    result
}

async fn openapi_json(doc: web::Data<utoipa::openapi::OpenApi>) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().json(doc.as_ref())
}

pub use telemetry::Telemetry;
pub use tracing_actix_web::TracingLogger;
