//! The typing indicator: set by the client for its user, lasts 10 s.

use actix_web::{HttpResponse, web};
use db_core::models::Sender;
use serde::{Deserialize, Serialize};
use service_kit::{ApiResult, AuthUser, Kit};

use crate::handlers::require_match;

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTyping {
    typing: bool,
}

#[derive(utoipa::ToSchema, Serialize)]
pub struct Typing {
    /// Who is typing: `user`, `character`, or null.
    typing: Option<Sender>,
}

#[utoipa::path(put, path = "/api/v1/conversations/{character_id}/typing", tag = "conversations", security(("bearer" = [])), params(("character_id" = String, Path, description = "the character, e.g. sophia")), request_body = SetTyping, responses((status = 204)))]
pub async fn set(
    kit: web::Data<Kit>,
    me: AuthUser,
    character: web::Path<String>,
    body: web::Json<SetTyping>,
) -> ApiResult<HttpResponse> {
    require_match(&kit, me.id, &character).await?;
    if body.typing {
        kit.store.set_typing(me.id, &character, Sender::User).await;
    }
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/conversations/{character_id}/typing", tag = "conversations", security(("bearer" = [])), params(("character_id" = String, Path, description = "the character, e.g. sophia")), responses((status = 200, body = Typing)))]
pub async fn get(
    kit: web::Data<Kit>,
    me: AuthUser,
    character: web::Path<String>,
) -> ApiResult<web::Json<Typing>> {
    require_match(&kit, me.id, &character).await?;
    Ok(web::Json(Typing {
        typing: kit.store.typing(me.id, &character).await,
    }))
}
