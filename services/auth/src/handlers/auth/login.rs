use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::Deserialize;
use service_kit::checks::{valid_email, valid_password};
use service_kit::{ApiError, ApiResult, Kit, client};

use super::{AuthResponse, SessionMode};
use crate::{passwords, sessions};

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    #[schema(min_length = 3, max_length = 254)]
    email: String,
    #[schema(min_length = 1, max_length = 128)]
    password: String,
}

/// Signs in. Failures are throttled per account *and* address: after 5 failures of one pair,
/// that pair waits 1 s, 2 s, 4 s … (at most 15 min); the owner signing in from elsewhere is
/// never blocked by someone else's guesses. With `X-Dream-Session: cookie` (a web page), the
/// refresh token is set in an `HttpOnly` cookie instead of the body.
#[utoipa::path(tag = "auth", request_body = Login, params(SessionMode),
    responses((status = 200, body = AuthResponse, description = "signed in"), (status = 401, body = service_kit::error::Problem, description = "wrong email or password")))]
#[post("/auth/login")]
pub async fn login(
    kit: web::Data<Kit>,
    limits: web::Data<crate::AuthLimits>,
    req: HttpRequest,
    body: web::Json<Login>,
) -> ApiResult<HttpResponse> {
    service_kit::session::mode(&req)?;
    let Login { email, password } = body.into_inner();
    let email = valid_email("email", &email)?;
    let password = valid_password("password", password, 1)?;
    let addr = client::limit_key_of(&req);
    let per_ip = limits.sign_ins_per_address_per_minute;
    let secure = limits.secure_cookies;
    let limits = kit.store.limits();
    let per_ip = limits.hit("login-ip", &addr, 60, per_ip).await;
    if per_ip.exceeded {
        return Err(ApiError::RateLimited {
            retry_after: per_ip.reset_after,
        });
    }
    if let Some(wait) = limits.sign_in_blocked(&email, &addr).await {
        return Err(ApiError::RateLimited { retry_after: wait });
    }
    let user = kit.store.users().by_email(&email).await?;
    let stored = user.as_ref().map(|u| u.password_hash.expose().to_owned());
    let (true, Some(user)) = (passwords::verify(password, stored).await?, user) else {
        limits.sign_in_failed(&email, &addr).await;
        return Err(ApiError::InvalidCredentials);
    };
    limits.sign_in_succeeded(&email, &addr).await;
    let mut tokens = sessions::issue(&kit, user.id, None).await?;
    // The profile, match list and latest windows, in the background: the answer does not wait.
    kit.store.users().warm(user.id, &kit.store);
    let mut res = HttpResponse::Ok();
    for cookie in sessions::into_cookies(&req, secure, &mut tokens) {
        res.cookie(cookie);
    }
    Ok(res.json(AuthResponse {
        tokens,
        user: db_core::models::Profile::from(user).into(),
    }))
}
