//! `dream-chat`: characters, matches, conversations, search and memories.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    service_kit::run::<chat::Chat>().await
}
