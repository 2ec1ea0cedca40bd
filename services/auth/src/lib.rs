//! The auth service: accounts (Argon2id), rotating refresh sessions, EdDSA access tokens,
//! profiles, XP stats and the leaderboard. `main.rs` only starts it.

pub mod handlers;
pub mod passwords;
pub mod routes;
pub mod sessions;

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
