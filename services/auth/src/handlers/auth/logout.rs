use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::Deserialize;
use service_kit::{ApiResult, Kit, session};

use super::SessionMode;
use crate::sessions;

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logout {
    /// Absent in a browser session (`X-Dream-Session: cookie`): the cookie holds it.
    #[schema(min_length = 64, max_length = 64)]
    refresh_token: Option<String>,
}

/// Ends the session family of the token: its refresh and access tokens stop working at once,
/// in every service. Always 204: an unknown token reveals nothing. A web page sends
/// `X-Dream-Session: cookie`: the token comes from its cookie, and its cookies are cleared.
#[utoipa::path(tag = "auth", request_body = Logout, params(SessionMode), responses((status = 204, description = "signed out")))]
#[post("/auth/logout")]
pub async fn logout(
    kit: web::Data<Kit>,
    limits: web::Data<crate::AuthLimits>,
    req: HttpRequest,
    body: web::Json<Logout>,
) -> ApiResult<HttpResponse> {
    let mut res = HttpResponse::NoContent();
    if session::mode(&req)? {
        for c in session::removals(limits.secure_cookies) {
            res.cookie(c);
        }
    }
    let sent = body.into_inner().refresh_token;
    let Some(token) = sent.or_else(|| session::refresh_token_of(&req)) else {
        return Ok(res.finish());
    };
    let token = sessions::valid_token(&token)?;
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
    Ok(res.finish())
}
