use actix_web::{HttpRequest, HttpResponse, ResponseError, post, web};
use chrono::Utc;
use serde::Deserialize;
use service_kit::{ApiError, ApiResult, Kit, session};

use super::SessionMode;
use crate::sessions;

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    /// Absent in a browser session (`X-Dream-Session: cookie`): the cookie holds it.
    #[schema(min_length = 64, max_length = 64)]
    refresh_token: Option<String>,
}

/// A new token pair for a refresh token, which is used up. A refresh token presented twice
/// was stolen or replayed: its whole family ends, access tokens included, at once. A web page
/// sends `X-Dream-Session: cookie` and an empty object: the token comes from its cookie, and
/// the new one goes back there.
#[utoipa::path(tag = "auth", request_body = Refresh, params(SessionMode),
    responses((status = 200, body = crate::sessions::TokenPair, description = "new tokens"), (status = 401, body = service_kit::error::Problem, description = "unknown, used, revoked or expired refresh token")))]
#[post("/auth/refresh")]
pub async fn refresh(
    kit: web::Data<Kit>,
    limits: web::Data<crate::AuthLimits>,
    req: HttpRequest,
    body: web::Json<Refresh>,
) -> ApiResult<HttpResponse> {
    let secure = limits.secure_cookies;
    session::mode(&req)?;
    match rotate(&kit, &req, body.into_inner().refresh_token, secure).await {
        Ok(res) => Ok(res),
        // A browser whose session has ended forgets its cookies.
        Err(e) if session::wants_cookies(&req) && e.status_code().as_u16() == 401 => {
            let mut res = e.error_response();
            for c in session::removals(secure) {
                res.add_cookie(&c).map_err(ApiError::internal)?;
            }
            Ok(res)
        }
        Err(e) => Err(e),
    }
}

async fn rotate(
    kit: &Kit,
    req: &HttpRequest,
    sent: Option<String>,
    secure: bool,
) -> ApiResult<HttpResponse> {
    // No token at all (nor a cookie with its header): no session to refresh.
    let token = sent
        .or_else(|| session::refresh_token_of(req))
        .ok_or(ApiError::Unauthorized)?;
    let token = sessions::valid_token(&token)?;
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
    let mut tokens = sessions::issue(kit, session.user_id, Some(session.family_id)).await?;
    let mut res = HttpResponse::Ok();
    for cookie in sessions::into_cookies(req, secure, &mut tokens) {
        res.cookie(cookie);
    }
    Ok(res.json(tokens))
}
