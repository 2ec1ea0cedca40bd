use actix_web::{HttpResponse, delete, web};
use service_kit::checks::CharacterPath;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

/// Unmatches: the conversation, its photos (their files too) and what the character remembered
/// are deleted for good. Matching again starts a new conversation with the greeting; affection
/// starts again at 0; the XP already earned stays the user's.
#[utoipa::path(tag = "matches", security(("bearer" = [])), params(CharacterPath),
    responses((status = 204, description = "unmatched; everything in the match is deleted"),
              (status = 404, body = service_kit::error::Problem, description = "no match with this character")))]
#[delete("/matches/{character_id}")]
pub async fn delete_match(
    kit: web::Data<Kit>,
    me: AuthUser,
    path: web::Path<CharacterPath>,
) -> ApiResult<HttpResponse> {
    let character = path.id()?;
    if kit.store.matches().delete(me.id, character).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}
