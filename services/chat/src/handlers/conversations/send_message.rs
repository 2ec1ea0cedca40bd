use actix_web::{HttpResponse, post, web};
use db_core::Inserted;
use db_core::models::{NewMessage, Sender};
use serde::Deserialize;
use service_kit::checks::CharacterPath;
use service_kit::error::Conflict;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};
use uuid::Uuid;

use crate::handlers::valid_text;

pub const MAX_MESSAGE_CHARS: usize = 4000;

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Send {
    /// 1–4000 characters; no control characters but line feeds and tabs.
    #[schema(min_length = 1, max_length = 4000)]
    content: String,
    /// Idempotency key: sending again with the same id returns the stored message.
    client_id: Option<Uuid>,
}

/// 201 with the stored message; 200 with the same message when `client_id` was seen before.
#[utoipa::path(tag = "conversations", security(("bearer" = [])), params(CharacterPath), request_body = Send, responses((status = 201, body = db_core::models::Message, description = "stored"), (status = 200, body = db_core::models::Message, description = "client_id seen before"), (status = 404, body = service_kit::error::Problem, description = "no match with this character"), (status = 409, body = service_kit::error::Problem, description = "client_id_reused: the id was used in another conversation")))]
#[post("/conversations/{character_id}/messages")]
pub async fn send_message(
    kit: web::Data<Kit>,
    me: AuthUser,
    path: web::Path<CharacterPath>,
    body: web::Json<Send>,
) -> ApiResult<HttpResponse> {
    let character = path.id()?;
    let content = valid_text("content", &body.content, MAX_MESSAGE_CHARS)?;
    let mut new = NewMessage::new(me.id, character, Sender::User, content);
    new.client_id = body.client_id;
    let inserted = kit.store.conversations().send(&new).await?;
    Ok(match inserted {
        Inserted::Created(m) => HttpResponse::Created().json(m),
        Inserted::Existing(m) if m.character_id == character => HttpResponse::Ok().json(m),
        Inserted::Existing(_) => {
            return Err(ApiError::Conflict(Conflict::ClientIdReused));
        }
    })
}
