//! The chat service. Every path acts on the caller's own data only: another user's
//! conversation, match or memory is a 404, never their data.

pub mod handlers;
pub mod routes;

/// The chat service: nothing of its own beyond the kit.
#[derive(Clone)]
pub struct Chat;

impl service_kit::Service for Chat {
    const NAME: &'static str = "chat";
    const DEFAULT_PORT: u16 = 8082;
    const API: service_kit::Api = API;

    async fn start(_kit: &service_kit::Kit) -> anyhow::Result<Self> {
        Ok(Chat)
    }
}

/// The chat service's API.
pub const API: service_kit::Api = service_kit::Api {
    title: "Dream chat",
    description: "Characters, matches, conversations, search and memories",
    routes: routes::configure,
};

/// Its OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    API.document()
}
