//! `dream-auth`: accounts, sessions and tokens, profiles, XP and the leaderboard.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    service_kit::run::<auth::Auth>().await
}
