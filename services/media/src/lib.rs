//! The media service: the photos characters send. A request queues a job in PostgreSQL; workers
//! on any replica make the image (builtin renderer or an image API), store it through
//! `object_store`, and deliver it to the gallery and the conversation exactly once.

pub mod generator;
pub mod handlers;
pub mod jobs;
pub mod render;
pub mod routes;
pub mod storage;

/// The media service's API.
pub const API: service_kit::Api = service_kit::Api {
    title: "Dream media",
    description: "Photos the characters send",
    routes: routes::configure,
};

/// Its OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    API.document()
}
