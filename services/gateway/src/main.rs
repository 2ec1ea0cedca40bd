//! `dream-gateway`: the one public entry.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use db_core::{Cache, RedisConfig, RedisPool};
use gateway::{Gateway, GatewayConfig};
use service_kit::auth::DevKeys;
use service_kit::server::{Listeners, Tasks, run_until_stopped};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = service_kit::Telemetry::init("gateway");
    let config = GatewayConfig::from_env()?;
    let cache = Cache::new(RedisPool::new(&RedisConfig::from_env()?)?);
    let keys = service_kit::TokenKeys::from_env(
        false,
        DevKeys::policy(config.production, &config.host),
        config.access_ttl,
    )?;
    let listeners = Listeners::bind(&config.host, config.port, config.admin_port)?;
    let gw = web::Data::new(Gateway::new(config.clone(), cache, keys)?);
    let mut tasks = Tasks::default();
    tasks.add(gw.spawn_background());
    tracing::info!(addr = %listeners.public_addr()?, admin = %listeners.admin_addr()?, "gateway listening");
    let workers = service_kit::http_workers()?;
    let public = {
        let gw = gw.clone();
        let cors = config.cors_origins.clone();
        HttpServer::new(move || {
            App::new()
                .app_data(gw.clone())
                .wrap(from_fn(service_kit::metrics::middleware))
                .wrap(from_fn(service_kit::request_id::middleware))
                .wrap(service_kit::TracingLogger::default())
                .wrap(gateway::cors(&cors))
                .configure(gateway::configure)
        })
        .on_connect(service_kit::no_delay)
        .workers(workers)
        .shutdown_timeout(config.shutdown_timeout.as_secs())
        .disable_signals()
        .listen(listeners.public)?
        .run()
    };
    let admin = HttpServer::new(move || {
        App::new()
            .app_data(gw.clone())
            .configure(gateway::configure_admin)
    })
    .workers(1)
    .shutdown_timeout(config.shutdown_timeout.as_secs())
    .disable_signals()
    .listen(listeners.admin)?
    .run();
    run_until_stopped("gateway", vec![public, admin]).await?;
    drop(tasks);
    tracing::info!("gateway stopped");
    telemetry.shutdown();
    Ok(())
}
