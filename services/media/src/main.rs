//! `dream-media`: the photos characters send, and the workers that make them.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = service_kit::Telemetry::init("media");
    let config = service_kit::KitConfig::from_env("media", 8084)?;
    let kit = config.kit(false)?;
    let media = media::routes::media_from_env()?;
    tracing::info!(
        store = media.storage.url(),
        generator = media.generator.name(),
        workers = media.jobs.workers,
        "media storage and generator"
    );
    let _listener_task = kit.store.cache.spawn_invalidation_listener();
    let workers = media::jobs::Workers::spawn(kit.clone(), media.clone());
    let listeners = config.listeners()?;
    tracing::info!(addr = %listeners.public_addr()?, admin = %listeners.admin_addr()?, "media listening");
    let served = service_kit::serve(
        kit,
        listeners,
        config.shutdown_timeout,
        media::API,
        media::routes::data(media),
    )
    .await;
    workers.shutdown(config.shutdown_timeout).await;
    telemetry.shutdown();
    served
}
