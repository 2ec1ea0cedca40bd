use actix_web::{get, web};
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use crate::handlers::UserDto;

/// The caller's profile.
#[utoipa::path(tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserDto)))]
#[get("/users/me")]
pub async fn get_me(kit: web::Data<Kit>, me: AuthUser) -> ApiResult<web::Json<UserDto>> {
    let profile = kit
        .store
        .users()
        .profile(me.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(web::Json(profile.into()))
}
