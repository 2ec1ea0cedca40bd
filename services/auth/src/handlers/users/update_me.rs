use actix_web::web;
use serde::Deserialize;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use crate::handlers::{UserDto, valid_display_name};

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    display_name: String,
}

#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])), request_body = UpdateMe,
    responses((status = 200, body = UserDto), (status = 422, body = service_kit::error::Problem)))]
pub async fn handle(
    kit: web::Data<Kit>,
    me: AuthUser,
    body: web::Json<UpdateMe>,
) -> ApiResult<web::Json<UserDto>> {
    let name = valid_display_name(&body.display_name)?;
    let profile = kit
        .store
        .update_display_name(me.id, &name)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(web::Json(profile.into()))
}
