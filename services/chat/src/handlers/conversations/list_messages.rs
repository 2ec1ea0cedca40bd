use actix_web::web;
use db_core::models::Message;
use db_core::pagination::KeysetPage;
use serde::Deserialize;
use service_kit::{ApiResult, AuthUser, Kit};

use crate::handlers::{cursor, require_match};

#[derive(utoipa::IntoParams, Deserialize)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    limit: Option<i64>,
    before: Option<String>,
}

/// Newest first, at most 100; `next` is the cursor of the page after.
#[utoipa::path(get, path = "/api/v1/conversations/{character_id}/messages", tag = "conversations", security(("bearer" = [])), params(("character_id" = String, Path, description = "the character, e.g. sophia"), Params), responses((status = 200, body = KeysetPage<Message>), (status = 404, body = service_kit::error::Problem)))]
pub async fn handle(
    kit: web::Data<Kit>,
    me: AuthUser,
    character: web::Path<String>,
    params: web::Query<Params>,
) -> ApiResult<web::Json<KeysetPage<Box<serde_json::value::RawValue>>>> {
    let before = cursor(params.before.as_deref())?;
    require_match(&kit, me.id, &character).await?;
    // The messages as the cache holds them: no decoding and encoding again on the hot path.
    let page = kit
        .store
        .conversation_json(me.id, &character, before, params.limit.unwrap_or(50))
        .await?;
    Ok(web::Json(page))
}
