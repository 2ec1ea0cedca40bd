//! The chat service's OpenAPI document, generated from its handlers.

use service_kit::openapi::BearerAuth;
use utoipa::OpenApi;

use crate::handlers::{characters, conversations, matches, memories, search};

#[derive(OpenApi)]
#[openapi(
    info(title = "Dream chat", description = "Characters, matches, conversations, search and memories"),
    paths(
        characters::list::handle,
        characters::get::handle,
        matches::create::handle,
        matches::list::handle,
        conversations::list_messages::handle,
        conversations::send_message::handle,
        conversations::mark_read::handle,
        conversations::typing::set,
        conversations::typing::get,
        search::messages::handle,
        memories::list::handle,
        memories::create::handle,
        memories::update::handle,
        memories::delete::handle,
    ),
    components(schemas(db_core::queries::memories::MemoryHit)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
