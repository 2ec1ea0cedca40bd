//! `dream-ai`: the characters' replies.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    service_kit::run::<ai::AiService>().await
}
