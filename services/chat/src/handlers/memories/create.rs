use actix_web::{HttpResponse, web};
use db_core::models::NewMemory;
use db_core::queries::memories;
use serde::Deserialize;
use service_kit::{ApiResult, AuthUser, Kit};

use super::MAX_MEMORY_CHARS;
use crate::handlers::{require_match, valid_text};

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Create {
    character_id: String,
    content: String,
}

/// Something the user wants the character to remember.
#[utoipa::path(post, path = "/api/v1/memories", tag = "memories", security(("bearer" = [])), request_body = Create, responses((status = 201, body = db_core::models::Memory)))]
pub async fn handle(
    kit: web::Data<Kit>,
    me: AuthUser,
    body: web::Json<Create>,
) -> ApiResult<HttpResponse> {
    let content = valid_text("content", &body.content, MAX_MEMORY_CHARS)?;
    require_match(&kit, me.id, &body.character_id).await?;
    let mut conn = kit.store.db.write().await?;
    let new = NewMemory {
        user_id: me.id,
        character_id: body.character_id.clone(),
        content,
        source_message_id: None,
    };
    Ok(HttpResponse::Created().json(memories::insert(&mut conn, &new).await?))
}
