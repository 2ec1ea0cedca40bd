//! The media service's OpenAPI document, generated from its handlers.

use service_kit::openapi::BearerAuth;
use utoipa::OpenApi;

use crate::handlers::{media, photos};

#[derive(OpenApi)]
#[openapi(
    info(title = "Dream media", description = "Photos the characters send"),
    paths(photos::generate, photos::job, photos::gallery, media::download),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
