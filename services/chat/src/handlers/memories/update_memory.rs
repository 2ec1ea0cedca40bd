use actix_web::{patch, web};
use db_core::models::Memory;
use serde::Deserialize;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use super::{MAX_MEMORY_CHARS, MemoryId};
use crate::handlers::valid_text;

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemory {
    /// 1–2000 characters; no control characters but line feeds and tabs.
    #[schema(min_length = 1, max_length = 2000)]
    content: String,
}

/// Rewrites what the character remembers.
#[utoipa::path(tag = "memories", security(("bearer" = [])), params(MemoryId), request_body = UpdateMemory, responses((status = 200, body = Memory), (status = 404, body = service_kit::error::Problem)))]
#[patch("/memories/{id}")]
pub async fn update_memory(
    kit: web::Data<Kit>,
    me: AuthUser,
    path: web::Path<MemoryId>,
    body: web::Json<UpdateMemory>,
) -> ApiResult<web::Json<Memory>> {
    let content = valid_text("content", &body.content, MAX_MEMORY_CHARS)?;
    let updated = kit
        .store
        .memories()
        .update(me.id, path.id, &content)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(web::Json(updated))
}
