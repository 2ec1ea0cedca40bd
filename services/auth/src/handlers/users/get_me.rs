use actix_web::web;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use crate::handlers::UserDto;

#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserDto), (status = 401, body = service_kit::error::Problem)))]
pub async fn handle(kit: web::Data<Kit>, me: AuthUser) -> ApiResult<web::Json<UserDto>> {
    let profile = kit.store.profile(me.id).await?.ok_or(ApiError::NotFound)?;
    Ok(web::Json(profile.into()))
}
