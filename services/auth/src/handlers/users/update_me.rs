use actix_web::{patch, web};
use serde::Deserialize;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use crate::handlers::{UserDto, valid_display_name};

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    #[schema(min_length = 1, max_length = 64)]
    display_name: String,
}

/// Changes the caller's display name.
#[utoipa::path(tag = "users", security(("bearer" = [])), request_body = UpdateMe,
    responses((status = 200, body = UserDto)))]
#[patch("/users/me")]
pub async fn update_me(
    kit: web::Data<Kit>,
    me: AuthUser,
    body: web::Json<UpdateMe>,
) -> ApiResult<web::Json<UserDto>> {
    let name = valid_display_name(&body.display_name)?;
    let profile = kit
        .store
        .users()
        .update_display_name(me.id, &name)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(web::Json(profile.into()))
}
