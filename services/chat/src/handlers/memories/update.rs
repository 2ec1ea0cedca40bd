use actix_web::web;
use db_core::models::Memory;
use db_core::queries::memories;
use serde::Deserialize;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use super::MAX_MEMORY_CHARS;
use crate::handlers::valid_text;

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    content: String,
}

#[utoipa::path(patch, path = "/api/v1/memories/{id}", tag = "memories", security(("bearer" = [])), params(("id" = i64, Path)), request_body = Update, responses((status = 200, body = Memory), (status = 404, body = service_kit::error::Problem)))]
pub async fn handle(
    kit: web::Data<Kit>,
    me: AuthUser,
    id: web::Path<i64>,
    body: web::Json<Update>,
) -> ApiResult<web::Json<Memory>> {
    let content = valid_text("content", &body.content, MAX_MEMORY_CHARS)?;
    let mut conn = kit.store.db.write().await?;
    let updated = memories::update(&mut conn, me.id, *id, &content)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(web::Json(updated))
}
