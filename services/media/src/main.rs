//! `dream-media`: the photos characters send, and the workers that make them.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    service_kit::run::<media::MediaService>().await
}
