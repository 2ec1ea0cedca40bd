//! The typing indicator: set by the client for its user, lasts 10 s.

use actix_web::{HttpResponse, get, put, web};
use db_core::models::Sender;
use serde::{Deserialize, Serialize};
use service_kit::checks::CharacterPath;
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

/// Says the user is typing (for 10 s).
#[utoipa::path(tag = "conversations", security(("bearer" = [])), params(CharacterPath), request_body = SetTyping, responses((status = 204, description = "recorded"), (status = 404, body = service_kit::error::Problem, description = "no match with this character")))]
#[put("/conversations/{character_id}/typing")]
pub async fn set_typing(
    kit: web::Data<Kit>,
    me: AuthUser,
    path: web::Path<CharacterPath>,
    body: web::Json<SetTyping>,
) -> ApiResult<HttpResponse> {
    let character = path.id()?;
    require_match(&kit, me.id, character).await?;
    if body.typing {
        kit.store
            .conversations()
            .set_typing(me.id, character, Sender::User)
            .await;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Who is typing in the conversation, if anyone.
#[utoipa::path(tag = "conversations", security(("bearer" = [])), params(CharacterPath), responses((status = 200, body = Typing), (status = 404, body = service_kit::error::Problem, description = "no match with this character")))]
#[get("/conversations/{character_id}/typing")]
pub async fn get_typing(
    kit: web::Data<Kit>,
    me: AuthUser,
    path: web::Path<CharacterPath>,
) -> ApiResult<web::Json<Typing>> {
    let character = path.id()?;
    require_match(&kit, me.id, character).await?;
    Ok(web::Json(Typing {
        typing: kit.store.conversations().typing(me.id, character).await,
    }))
}
