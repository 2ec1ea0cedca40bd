use actix_web::{HttpRequest, HttpResponse, post, web};
use db_core::models::{NewUser, SecretString};
use serde::Deserialize;
use service_kit::checks::{valid_email, valid_password};
use service_kit::{ApiError, ApiResult, Kit, client};

use super::{AuthResponse, SessionMode};
use crate::handlers::valid_display_name;
use crate::{passwords, sessions};

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    #[schema(min_length = 3, max_length = 254)]
    email: String,
    /// 8–128 characters.
    #[schema(min_length = 8, max_length = 128)]
    password: String,
    #[schema(min_length = 1, max_length = 64)]
    display_name: String,
}

/// Creates an account and signs it in. An email already registered gets 409 `email_taken`:
/// without email verification a uniform answer would leave people unable to tell why they
/// cannot sign up; the per-address limit keeps this from being a cheap way to list accounts.
/// With `X-Dream-Session: cookie` (a web page), the refresh token is set in an `HttpOnly`
/// cookie instead of the body.
#[utoipa::path(tag = "auth", request_body = Register, params(SessionMode),
    responses((status = 201, body = AuthResponse, description = "registered and signed in"), (status = 409, body = service_kit::error::Problem, description = "email_taken")))]
#[post("/auth/register")]
pub async fn register(
    kit: web::Data<Kit>,
    limits: web::Data<crate::AuthLimits>,
    req: HttpRequest,
    body: web::Json<Register>,
) -> ApiResult<HttpResponse> {
    service_kit::session::mode(&req)?;
    let Register {
        email,
        password,
        display_name,
    } = body.into_inner();
    let email = valid_email("email", &email)?;
    let display_name = valid_display_name(&display_name)?;
    let password = valid_password("password", password, 8)?;
    let addr = client::limit_key_of(&req);
    let limit = kit
        .store
        .limits()
        .hit(
            "register-ip",
            &addr,
            3600,
            limits.sign_ups_per_address_per_hour,
        )
        .await;
    if limit.exceeded {
        return Err(ApiError::RateLimited {
            retry_after: limit.reset_after,
        });
    }
    let password_hash = SecretString::new(passwords::hash(password).await?);
    let user = kit
        .store
        .users()
        .create(&NewUser {
            email,
            password_hash,
            display_name,
        })
        .await?;
    let mut tokens = sessions::issue(&kit, user.id, None).await?;
    let mut res = HttpResponse::Created();
    for cookie in sessions::into_cookies(&req, limits.secure_cookies, &mut tokens) {
        res.cookie(cookie);
    }
    Ok(res.json(AuthResponse {
        tokens,
        user: db_core::models::Profile::from(user).into(),
    }))
}
