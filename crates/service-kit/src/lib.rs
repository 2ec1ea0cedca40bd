#![doc = include_str!("../README.md")]

pub mod auth;
pub mod checks;
pub mod error;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod request_id;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use db_core::{Cache, Db, PgConfig, RedisConfig, RedisPool, SlowQueryConfig, Store};
use metrics_exporter_prometheus::PrometheusHandle;

pub use auth::{AuthUser, TokenKeys};
pub use error::{ApiError, ApiResult};

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
    pub pg: PgConfig,
    pub redis: RedisConfig,
    pub slow: SlowQueryConfig,
    /// `CACHE_ENABLED=false` serves everything from PostgreSQL (the benchmark's `--no-cache`).
    pub cache_enabled: bool,
    /// How long a stopping server lets in-flight requests finish.
    pub shutdown_timeout: Duration,
    pub access_ttl: Duration,
}

impl KitConfig {
    /// `{SERVICE}_PORT` (e.g. `AUTH_PORT`) or `PORT`, then `default_port`.
    pub fn from_env(service: &'static str, default_port: u16) -> anyhow::Result<Self> {
        use db_core::config::env_or;
        let env = db_core::Environment::from_env()?;
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
            pg: PgConfig::from_env(service)?,
            redis: RedisConfig::from_env()?,
            slow: SlowQueryConfig::from_env()?,
            cache_enabled: env_or("CACHE_ENABLED", true)?,
            shutdown_timeout: Duration::from_secs(env_or("SHUTDOWN_TIMEOUT_S", 20)?),
            access_ttl: Duration::from_secs(env_or("ACCESS_TOKEN_TTL_S", 900)?),
        })
    }

    /// Builds the kit: pools (no connection is opened yet), cache, keys, metrics.
    pub fn kit(&self, sign_tokens: bool) -> anyhow::Result<Kit> {
        let db = Db::new(&self.pg, self.slow);
        let cache = if self.cache_enabled {
            Cache::new(RedisPool::new(&self.redis)?)
        } else {
            Cache::disabled()
        };
        Ok(Kit {
            service: self.service,
            store: Store::new(db, cache),
            keys: TokenKeys::from_env(sign_tokens, self.production, self.access_ttl)?,
            metrics: metrics::install(),
        })
    }
}

/// JSON bodies: at most 64 KiB; unreadable ones are 400 problems, never actix's plain text.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(64 * 1024)
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
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let n: usize = db_core::config::env_or("HTTP_WORKERS", cores)?;
    anyhow::ensure!(n > 0, "HTTP_WORKERS must be at least 1");
    Ok(n)
}

async fn not_found() -> ApiResult<actix_web::HttpResponse> {
    Err(ApiError::NotFound)
}

/// Starts a service on `listener` with the kit's routes and middleware around `routes`, and
/// stops gracefully on SIGINT/SIGTERM: in-flight requests finish, then pending write-behind
/// state is flushed.
pub async fn serve<F>(
    kit: Kit,
    listener: TcpListener,
    shutdown_timeout: Duration,
    routes: F,
) -> anyhow::Result<()>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let data = web::Data::new(kit.clone());
    let keys = web::Data::new(kit.keys.clone());
    let workers = http_workers()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(keys.clone())
            .app_data(json_config())
            .app_data(query_config())
            .app_data(path_config())
            .wrap(from_fn(metrics::middleware))
            .wrap(from_fn(request_id::middleware))
            .wrap(tracing_actix_web::TracingLogger::default())
            .configure(health::configure)
            .configure(routes.clone())
            .default_service(web::to(not_found))
    })
    .on_connect(no_delay)
    .workers(workers)
    .shutdown_timeout(shutdown_timeout.as_secs())
    .listen(listener)?
    .run();
    server.await?;
    let flushed = kit.store.flush_affection().await?;
    tracing::info!(
        service = kit.service,
        points = flushed.points,
        "stopped; write-behind state flushed"
    );
    Ok(())
}

pub use telemetry::Telemetry;
pub use tracing_actix_web::TracingLogger;
