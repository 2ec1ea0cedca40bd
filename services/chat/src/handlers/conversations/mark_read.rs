use actix_web::web;
use serde::Serialize;
use service_kit::{ApiResult, AuthUser, Kit};

use crate::handlers::require_match;

#[derive(utoipa::ToSchema, Serialize)]
pub struct Marked {
    marked_read: usize,
}

#[utoipa::path(post, path = "/api/v1/conversations/{character_id}/read", tag = "conversations", security(("bearer" = [])), params(("character_id" = String, Path, description = "the character, e.g. sophia")), responses((status = 200, body = Marked)))]
pub async fn handle(
    kit: web::Data<Kit>,
    me: AuthUser,
    character: web::Path<String>,
) -> ApiResult<web::Json<Marked>> {
    require_match(&kit, me.id, &character).await?;
    Ok(web::Json(Marked {
        marked_read: kit.store.mark_read(me.id, &character).await?,
    }))
}
