use actix_web::{HttpRequest, HttpResponse, delete, web};
use serde::Deserialize;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use super::confirm_password;

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccount {
    #[schema(min_length = 1, max_length = 128)]
    password: String,
}

/// Deletes the caller's account for good: the profile, every match, conversation, memory,
/// photo (the images too: the media service deletes them from storage within moments) and
/// session, its leaderboard entry and everything cached of it. Its tokens stop working at
/// once, everywhere. A wrong password is a 401 `invalid_credentials`, throttled like sign-ins.
#[utoipa::path(tag = "users", security(("bearer" = [])), request_body = DeleteAccount,
    responses((status = 204, description = "deleted"),
              (status = 401, body = service_kit::error::Problem, description = "invalid_credentials: wrong password (or the token is invalid)")))]
#[delete("/users/me")]
pub async fn delete_account(
    kit: web::Data<Kit>,
    me: AuthUser,
    req: HttpRequest,
    body: web::Json<DeleteAccount>,
) -> ApiResult<HttpResponse> {
    let password = body.into_inner().password;
    confirm_password(&kit, me, &req, "password", password).await?;
    let deleted = kit
        .store
        .account()
        .delete(me.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tracing::info!(
        user = %me.id,
        sessions = deleted.families.len(),
        matches = deleted.characters.len(),
        "account deleted"
    );
    Ok(HttpResponse::NoContent().finish())
}
