use actix_web::{HttpRequest, HttpResponse, put, web};
use db_core::models::SecretString;
use serde::Deserialize;
use service_kit::checks::valid_password;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use super::confirm_password;
use crate::handlers::auth::SessionMode;
use crate::{passwords, sessions};

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    #[schema(min_length = 1, max_length = 128)]
    current_password: String,
    /// 8–128 characters.
    #[schema(min_length = 8, max_length = 128)]
    new_password: String,
}

/// Changes the caller's password. Every session of the account ends at once, this one
/// included, in every service (their refresh and access tokens stop working); the answer
/// carries a fresh token pair, in a new session, so the device that made the change stays
/// signed in. A wrong current password is a 401 `invalid_credentials`, throttled like
/// sign-ins. A web page (`X-Dream-Session: cookie`) gets the new session's refresh token in its
/// cookie, as on sign-in, so that it stays signed in past the next refresh.
#[utoipa::path(tag = "users", security(("bearer" = [])), request_body = ChangePassword, params(SessionMode),
    responses((status = 200, body = crate::sessions::TokenPair, description = "changed; every other session ended; the new tokens"),
              (status = 401, body = service_kit::error::Problem, description = "invalid_credentials: current_password is wrong (or the token is invalid)"),
              (status = 422, body = service_kit::error::Problem, description = "new_password too short, too long, or the current one")))]
#[put("/users/me/password")]
pub async fn change_password(
    kit: web::Data<Kit>,
    limits: web::Data<crate::AuthLimits>,
    me: AuthUser,
    req: HttpRequest,
    body: web::Json<ChangePassword>,
) -> ApiResult<HttpResponse> {
    service_kit::session::mode(&req)?;
    let ChangePassword {
        current_password,
        new_password,
    } = body.into_inner();
    let new_password = valid_password("new_password", new_password, 8)?;
    let same = new_password == current_password;
    confirm_password(&kit, me, &req, "current_password", current_password).await?;
    if same {
        return Err(ApiError::validation(
            "new_password",
            "is the current password",
        ));
    }
    let hash = SecretString::new(passwords::hash(new_password).await?);
    kit.store
        .account()
        .change_password(me.id, &hash)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut tokens = sessions::issue(&kit, me.id, None).await?;
    let mut res = HttpResponse::Ok();
    for cookie in sessions::into_cookies(&req, limits.secure_cookies, &mut tokens) {
        res.cookie(cookie);
    }
    Ok(res.json(tokens))
}
