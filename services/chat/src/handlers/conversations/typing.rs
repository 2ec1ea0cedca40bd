//! The typing indicator: set by the client for its user, lasts 10 s.

use actix_web::{HttpResponse, web};
use db_core::models::Sender;
use serde::{Deserialize, Serialize};
use service_kit::{ApiResult, AuthUser, Kit};

use crate::handlers::require_match;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTyping {
    typing: bool,
}

#[derive(Serialize)]
pub struct Typing {
    /// Who is typing: `user`, `character`, or null.
    typing: Option<Sender>,
}

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
