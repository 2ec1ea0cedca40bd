//! `dream-gateway`: the one public entry.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::TcpListener;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use db_core::{Cache, RedisConfig, RedisPool};
use gateway::{Gateway, GatewayConfig};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = service_kit::Telemetry::init("gateway");
    let config = GatewayConfig::from_env()?;
    let production = db_core::Environment::from_env()? == db_core::Environment::Production;
    let cache = Cache::new(RedisPool::new(&RedisConfig::from_env()?)?);
    let keys =
        service_kit::TokenKeys::from_env(false, production, std::time::Duration::from_secs(900))?;
    let listener = TcpListener::bind((config.host.as_str(), config.port))?;
    let gw = web::Data::new(Gateway::new(config.clone(), cache, keys)?);
    let _checks = gw.spawn_health_checks();
    tracing::info!(addr = %listener.local_addr()?, "gateway listening");
    HttpServer::new(move || {
        App::new()
            .app_data(gw.clone())
            .wrap(from_fn(service_kit::metrics::middleware))
            .wrap(from_fn(service_kit::request_id::middleware))
            .wrap(service_kit::TracingLogger::default())
            .wrap(gateway::cors(&config.cors_origins))
            .configure(gateway::configure)
    })
    .on_connect(service_kit::no_delay)
    .workers(service_kit::http_workers()?)
    .shutdown_timeout(20)
    .listen(listener)?
    .run()
    .await?;
    telemetry.shutdown();
    Ok(())
}
