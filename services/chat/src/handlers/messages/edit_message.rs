use actix_web::{patch, web};
use db_core::models::Message;
use db_core::store::Own;
use serde::Deserialize;
use service_kit::error::Conflict;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use super::MessageId;
use crate::handlers::conversations::send_message::MAX_MESSAGE_CHARS;
use crate::handlers::valid_text;

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    /// 1–4000 characters; no control characters but line feeds and tabs.
    #[schema(min_length = 1, max_length = 4000)]
    content: String,
}

/// Rewrites a message the user wrote. The conversation and search read the new text at once;
/// what the character remembered from it stays (memories are edited on their own).
#[utoipa::path(tag = "messages", security(("bearer" = [])), params(MessageId), request_body = EditMessage,
    responses((status = 200, body = Message, description = "edited"),
              (status = 404, body = service_kit::error::Problem, description = "no message of yours has this id"),
              (status = 409, body = service_kit::error::Problem, description = "characters_message: the character wrote it"),
              (status = 422, body = service_kit::error::Problem, description = "invalid text")))]
#[patch("/messages/{id}")]
pub async fn edit_message(
    kit: web::Data<Kit>,
    me: AuthUser,
    path: web::Path<MessageId>,
    body: web::Json<EditMessage>,
) -> ApiResult<web::Json<Message>> {
    let content = valid_text("content", &body.content, MAX_MESSAGE_CHARS)?;
    match kit
        .store
        .conversations()
        .edit_own(me.id, path.id, &content)
        .await?
    {
        Own::Done(m) => Ok(web::Json(m)),
        Own::NotFound => Err(ApiError::NotFound),
        Own::NotTheirs => Err(ApiError::Conflict(Conflict::CharactersMessage)),
    }
}
