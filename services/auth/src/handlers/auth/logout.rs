use actix_web::{HttpResponse, post, web};
use serde::Deserialize;
use service_kit::{ApiResult, Kit};

use crate::sessions;

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logout {
    #[schema(min_length = 64, max_length = 64)]
    refresh_token: String,
}

/// Ends the session family of the token: its refresh and access tokens stop working at once,
/// in every service. Always 204: an unknown token reveals nothing.
#[utoipa::path(tag = "auth", request_body = Logout, responses((status = 204, description = "signed out")))]
#[post("/auth/logout")]
pub async fn logout(kit: web::Data<Kit>, body: web::Json<Logout>) -> ApiResult<HttpResponse> {
    let token = sessions::valid_token(&body.refresh_token)?;
    let found = kit
        .store
        .sessions()
        .by_token(&sessions::hash(token))
        .await?;
    if let Some(session) = found {
        kit.store
            .sessions()
            .revoke_family(session.user_id, session.family_id)
            .await?;
    }
    Ok(HttpResponse::NoContent().finish())
}
