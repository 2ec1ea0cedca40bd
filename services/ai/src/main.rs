//! `dream-ai`: the characters' replies.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let ai = ai::routes::ai_from_env()?;
    let listeners = config.listeners()?;
    tracing::info!(addr = %listeners.public_addr()?, admin = %listeners.admin_addr()?, "ai listening");
    let served = service_kit::serve(
        kit,
        listeners,
        config.shutdown_timeout,
        ai::API,
        ai::routes::data(ai),
    )
    .await;
    flusher.shutdown().await?;
    telemetry.shutdown();
    served
}
