//! The auth service's OpenAPI document, generated from its handlers.

use service_kit::openapi::BearerAuth;
use utoipa::OpenApi;

use crate::handlers::{auth, leaderboard, users};

#[derive(OpenApi)]
#[openapi(
    info(title = "Dream auth", description = "Accounts, sessions, profiles and the leaderboard"),
    paths(
        auth::register::handle,
        auth::login::handle,
        auth::refresh::handle,
        auth::logout::handle,
        users::get_me::handle,
        users::update_me::handle,
        users::get_stats::handle,
        leaderboard::handle,
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
