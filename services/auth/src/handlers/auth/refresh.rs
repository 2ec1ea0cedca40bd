use actix_web::{HttpResponse, post, web};
use chrono::Utc;
use serde::Deserialize;
use service_kit::{ApiError, ApiResult, Kit};

use crate::sessions;

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    #[schema(min_length = 64, max_length = 64)]
    refresh_token: String,
}

/// A new token pair for a refresh token, which is used up. A refresh token presented twice
/// was stolen or replayed: its whole family ends, access tokens included, at once.
#[utoipa::path(tag = "auth", request_body = Refresh,
    responses((status = 200, body = crate::sessions::TokenPair, description = "new tokens"), (status = 401, body = service_kit::error::Problem, description = "unknown, used, revoked or expired refresh token")))]
#[post("/auth/refresh")]
pub async fn refresh(kit: web::Data<Kit>, body: web::Json<Refresh>) -> ApiResult<HttpResponse> {
    let token = sessions::valid_token(&body.refresh_token)?;
    let Some(session) = kit
        .store
        .sessions()
        .by_token(&sessions::hash(token))
        .await?
    else {
        return Err(ApiError::InvalidToken);
    };
    let now = Utc::now();
    if session.revoked_at.is_some() || session.expires_at <= now {
        return Err(ApiError::InvalidToken);
    }
    if !kit.store.sessions().use_up(session.id, now).await? {
        kit.store
            .sessions()
            .revoke_family(session.user_id, session.family_id)
            .await?;
        tracing::warn!(user = %session.user_id, family = %session.family_id, "refresh token reuse; family revoked");
        return Err(ApiError::InvalidToken);
    }
    let tokens = sessions::issue(&kit, session.user_id, Some(session.family_id)).await?;
    Ok(HttpResponse::Ok().json(tokens))
}
