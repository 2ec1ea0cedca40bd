use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, get, web};
use db_core::models::Message;
use db_core::pagination::KeysetPage;
use serde::Deserialize;
use service_kit::checks::{CharacterPath, limit};
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use crate::handlers::cursor;

#[derive(utoipa::IntoParams, Deserialize)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// Messages per page (1–100, default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// The `next` cursor of the page before.
    before: Option<String>,
}

/// Newest first, at most 100; `next` is the cursor of the page after.
#[utoipa::path(tag = "conversations", security(("bearer" = [])), params(CharacterPath, Params), responses((status = 200, body = KeysetPage<Message>), (status = 404, body = service_kit::error::Problem, description = "no match with this character")))]
#[get("/conversations/{character_id}/messages")]
pub async fn list_messages(
    kit: web::Data<Kit>,
    me: AuthUser,
    path: web::Path<CharacterPath>,
    params: web::Query<Params>,
) -> ApiResult<HttpResponse> {
    let character = path.id()?;
    let before = cursor(params.before.as_deref())?;
    let limit = limit("limit", params.limit, 50, 100)?;
    // The messages as the cache holds them: no decoding and encoding again on the hot path,
    // and the cached window proves the match.
    let body = kit
        .store
        .conversations()
        .page_body(me.id, character, before, limit)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body))
}
