//! The auth service: accounts (Argon2id), rotating refresh sessions, EdDSA access tokens,
//! profiles, XP stats and the leaderboard. `main.rs` only starts it.

pub mod handlers;
pub mod passwords;
pub mod routes;
pub mod sessions;

/// The auth service: it alone holds the private key and mints tokens.
#[derive(Clone)]
pub struct Auth;

impl service_kit::Service for Auth {
    const NAME: &'static str = "auth";
    const DEFAULT_PORT: u16 = 8081;
    const SIGNS_TOKENS: bool = true;
    const API: service_kit::Api = API;

    async fn start(_kit: &service_kit::Kit) -> anyhow::Result<Self> {
        Ok(Auth)
    }
}

/// The auth service's API.
pub const API: service_kit::Api = service_kit::Api {
    title: "Dream auth",
    description: "Accounts, sessions, profiles and the leaderboard",
    routes: routes::configure,
};

/// Its OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    API.document()
}
