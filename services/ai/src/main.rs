//! `dream-ai`: the characters' replies.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::TcpListener;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = service_kit::Telemetry::init("ai");
    let config = service_kit::KitConfig::from_env("ai", 8083)?;
    let kit = config.kit(false)?;
    let _listener_task = kit.store.cache.spawn_invalidation_listener();
    let flusher = kit
        .store
        .cache
        .spawn_affection_flusher(kit.store.db.clone(), std::time::Duration::from_secs(5));
    let listener = TcpListener::bind((config.host.as_str(), config.port))?;
    tracing::info!(addr = %listener.local_addr()?, "ai listening");
    let served = service_kit::serve(
        kit,
        listener,
        config.shutdown_timeout,
        ai::routes::configure,
    )
    .await;
    flusher.shutdown().await?;
    telemetry.shutdown();
    served
}
