use actix_web::{HttpResponse, web};
use db_core::queries::sessions as stored;
use serde::Deserialize;
use service_kit::{ApiResult, Kit};

use crate::sessions;

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logout {
    refresh_token: String,
}

/// Ends the session family of the token. Always 204: an unknown token reveals nothing.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = Logout, responses((status = 204)))]
pub async fn handle(kit: web::Data<Kit>, body: web::Json<Logout>) -> ApiResult<HttpResponse> {
    let mut conn = kit.store.db.write().await?;
    if let Some(session) =
        stored::find_by_token_hash(&mut conn, &sessions::hash(&body.refresh_token)).await?
    {
        stored::revoke_family(&mut conn, session.family_id).await?;
        // Access tokens of the family are refused by the gateway until they expire.
        kit.store
            .cache
            .revoke_family(session.family_id, kit.keys.access_ttl())
            .await;
    }
    Ok(HttpResponse::NoContent().finish())
}
