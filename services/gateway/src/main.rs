//! `dream-gateway`: the one public entry.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = service_kit::Telemetry::init("gateway");
    let result = gateway::run().await;
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "cannot run");
    }
    telemetry.shutdown();
    result
}
