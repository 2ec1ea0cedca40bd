use actix_web::{HttpRequest, HttpResponse, web};
use db_core::queries::users;
use serde::Deserialize;
use service_kit::{ApiError, ApiResult, Kit};

use super::AuthResponse;
use crate::{passwords, sessions};

/// Attempts per minute before 429: per account, and per client address.
const PER_ACCOUNT: u64 = 10;
/// Logins per minute from one address (`LOGIN_LIMIT_PER_IP_PER_MIN`, default 30): a guard
/// against password guessing that `make bench`, logging 2,000 users in, raises.
static PER_IP: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
    std::env::var("LOGIN_LIMIT_PER_IP_PER_MIN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
});

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    email: String,
    password: String,
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, body = AuthResponse), (status = 401, body = service_kit::error::Problem),
              (status = 429, body = service_kit::error::Problem)))]
pub async fn handle(
    kit: web::Data<Kit>,
    req: HttpRequest,
    body: web::Json<Login>,
) -> ApiResult<HttpResponse> {
    let Login { email, password } = body.into_inner();
    let email = email.trim().to_lowercase();
    let ip = req
        .connection_info()
        .realip_remote_addr()
        .unwrap_or("unknown")
        .to_owned();
    for (scope, id, limit) in [
        ("login-account", email.as_str(), PER_ACCOUNT),
        ("login-ip", ip.as_str(), *PER_IP),
    ] {
        if let Some(rl) = kit.store.cache.rate_limit(scope, id, 60, limit).await
            && rl.exceeded
        {
            return Err(ApiError::RateLimited {
                retry_after: rl.reset_after,
            });
        }
    }
    let mut conn = kit.store.db.write().await?;
    let user = users::find_by_email(&mut conn, &email).await?;
    let stored = user.as_ref().map(|u| u.password_hash.expose().to_owned());
    if !passwords::verify(password, stored).await? {
        return Err(ApiError::InvalidCredentials);
    }
    let Some(user) = user else {
        return Err(ApiError::InvalidCredentials);
    };
    let tokens = sessions::issue(&kit, &mut conn, user.id, None).await?;
    // The guide's warm_cache_for_user, in the background: the response does not wait for it.
    kit.store.warm_user(user.id);
    Ok(HttpResponse::Ok().json(AuthResponse {
        tokens,
        user: db_core::store::Profile::from(user).into(),
    }))
}
