use actix_web::{HttpResponse, delete, web};
use db_core::store::Own;
use service_kit::error::Conflict;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use super::MessageId;

/// Deletes a message the user wrote, and what the character remembered from it. The
/// character's reply to it stays.
#[utoipa::path(tag = "messages", security(("bearer" = [])), params(MessageId),
    responses((status = 204, description = "deleted, with its memories"),
              (status = 404, body = service_kit::error::Problem, description = "no message of yours has this id"),
              (status = 409, body = service_kit::error::Problem, description = "characters_message: the character wrote it")))]
#[delete("/messages/{id}")]
pub async fn delete_message(
    kit: web::Data<Kit>,
    me: AuthUser,
    path: web::Path<MessageId>,
) -> ApiResult<HttpResponse> {
    match kit.store.conversations().delete_own(me.id, path.id).await? {
        Own::Done(_) => Ok(HttpResponse::NoContent().finish()),
        Own::NotFound => Err(ApiError::NotFound),
        Own::NotTheirs => Err(ApiError::Conflict(Conflict::CharactersMessage)),
    }
}
