//! The ai service: the characters' replies, streamed, written exactly once.

pub mod generate;
pub mod handlers;
pub mod openai;
pub mod photos;
pub mod provider;
pub mod routes;

/// The ai service's API.
pub const API: service_kit::Api = service_kit::Api {
    title: "Dream ai",
    description: "Characters' replies",
    routes: routes::configure,
};

/// Its OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    API.document()
}
