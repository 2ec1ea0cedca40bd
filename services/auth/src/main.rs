//! `dream-auth`: accounts, sessions and tokens, profiles, XP and the leaderboard.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "dream-auth", version, about = "Dream's auth service")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = service_kit::Telemetry::init("auth");
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = service_kit::KitConfig::from_env("auth", 8081)?;
            let kit = config.kit(true)?;
            let listeners = config.listeners()?;
            tracing::info!(addr = %listeners.public_addr()?, admin = %listeners.admin_addr()?, "auth listening");
            let served = service_kit::serve(
                kit,
                listeners,
                config.shutdown_timeout,
                auth::API,
                |_: &mut actix_web::web::ServiceConfig| {},
            )
            .await;
            telemetry.shutdown();
            served
        }
    }
}
