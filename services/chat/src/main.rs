//! `dream-chat`: characters, matches, conversations, search and memories.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = service_kit::Telemetry::init("chat");
    let config = service_kit::KitConfig::from_env("chat", 8082)?;
    let kit = config.kit(false)?;
    let _listener_task = kit.store.cache.spawn_invalidation_listener();
    let flusher = kit
        .store
        .cache
        .spawn_affection_flusher(kit.store.db.clone(), std::time::Duration::from_secs(5));
    let listeners = config.listeners()?;
    tracing::info!(addr = %listeners.public_addr()?, admin = %listeners.admin_addr()?, "chat listening");
    let served = service_kit::serve(
        kit,
        listeners,
        config.shutdown_timeout,
        chat::API,
        |_: &mut actix_web::web::ServiceConfig| {},
    )
    .await;
    let flushed = flusher.shutdown().await?;
    tracing::info!(points = flushed.points, "affection flushed");
    telemetry.shutdown();
    served
}
