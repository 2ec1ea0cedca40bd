use actix_web::web;
use serde::Deserialize;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use crate::handlers::{UserDto, valid_display_name};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    display_name: String,
}

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
