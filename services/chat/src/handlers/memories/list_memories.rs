use actix_web::{get, web};
use db_core::models::Memory;
use db_core::pagination::KeysetPage;
use serde::Deserialize;
use service_kit::checks::{character_id, limit};
use service_kit::{ApiResult, AuthUser, Kit};

use crate::handlers::cursor;

#[derive(utoipa::IntoParams, Deserialize)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// Whose memories: the character's id.
    #[param(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    character_id: String,
    /// Memories per page (1–100, default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// The `next` cursor of the page before.
    before: Option<String>,
}

/// What one character remembers of the caller, newest first, keyset-paged.
#[utoipa::path(tag = "memories", security(("bearer" = [])), params(Params), responses((status = 200, body = KeysetPage<Memory>)))]
#[get("/memories")]
pub async fn list_memories(
    kit: web::Data<Kit>,
    me: AuthUser,
    params: web::Query<Params>,
) -> ApiResult<web::Json<KeysetPage<Memory>>> {
    let character = character_id("character_id", &params.character_id)?;
    let before = cursor(params.before.as_deref())?;
    let limit = limit("limit", params.limit, 20, 100)?;
    let page = kit
        .store
        .memories()
        .list(me.id, character, before, limit)
        .await?;
    Ok(web::Json(page))
}
