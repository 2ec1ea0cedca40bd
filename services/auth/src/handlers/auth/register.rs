use actix_web::{HttpResponse, web};
use db_core::models::{NewUser, SecretString};
use db_core::queries::users::{self, CreateUserError};
use serde::Deserialize;
use service_kit::{ApiError, ApiResult, Kit};

use super::AuthResponse;
use crate::handlers::valid_display_name;
use crate::{passwords, sessions};

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    email: String,
    password: String,
    display_name: String,
}

pub fn valid_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(email)
    } else {
        Err(ApiError::validation("email", "not a valid email address"))
    }
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = Register,
    responses((status = 201, body = AuthResponse), (status = 409, body = service_kit::error::Problem, description = "email_taken"),
              (status = 422, body = service_kit::error::Problem)))]
pub async fn handle(kit: web::Data<Kit>, body: web::Json<Register>) -> ApiResult<HttpResponse> {
    let Register {
        email,
        password,
        display_name,
    } = body.into_inner();
    let email = valid_email(&email)?;
    let display_name = valid_display_name(&display_name)?;
    if !(8..=128).contains(&password.chars().count()) {
        return Err(ApiError::validation(
            "password",
            "between 8 and 128 characters",
        ));
    }
    let password_hash = SecretString::new(passwords::hash(password).await?);
    let mut conn = kit.store.db.write().await?;
    let user = users::create(
        &mut conn,
        &NewUser {
            email,
            password_hash,
            display_name,
        },
    )
    .await
    .map_err(|e| match e {
        CreateUserError::EmailTaken => ApiError::Conflict {
            code: "email_taken",
            detail: "an account with this email already exists".into(),
        },
        CreateUserError::Db(e) => e.into(),
    })?;
    let tokens = sessions::issue(&kit, &mut conn, user.id, None).await?;
    Ok(HttpResponse::Created().json(AuthResponse {
        tokens,
        user: db_core::store::Profile::from(user).into(),
    }))
}
