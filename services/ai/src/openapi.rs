//! The ai service's OpenAPI document, generated from its handlers.

use service_kit::openapi::BearerAuth;
use utoipa::OpenApi;

use crate::handlers::reply;

#[derive(OpenApi)]
#[openapi(info(title = "Dream ai", description = "Characters' replies"), paths(reply::handle), modifiers(&BearerAuth))]
struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
