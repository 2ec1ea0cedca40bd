use actix_web::{post, web};
use serde::Serialize;
use service_kit::checks::CharacterPath;
use service_kit::{ApiResult, AuthUser, Kit};

use crate::handlers::require_match;

#[derive(utoipa::ToSchema, Serialize)]
pub struct Marked {
    marked_read: usize,
}

/// Marks every message of the conversation read.
#[utoipa::path(tag = "conversations", security(("bearer" = [])), params(CharacterPath), responses((status = 200, body = Marked), (status = 404, body = service_kit::error::Problem, description = "no match with this character")))]
#[post("/conversations/{character_id}/read")]
pub async fn mark_read(
    kit: web::Data<Kit>,
    me: AuthUser,
    path: web::Path<CharacterPath>,
) -> ApiResult<web::Json<Marked>> {
    let character = path.id()?;
    require_match(&kit, me.id, character).await?;
    Ok(web::Json(Marked {
        marked_read: kit
            .store
            .conversations()
            .mark_read(me.id, character)
            .await?,
    }))
}
