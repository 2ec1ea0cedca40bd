//! The account as the person's own: a new password, logging out everywhere, deleting it. Each
//! asks for the password again where a stolen access token must not be enough.

pub mod change_password;
pub mod delete_account;
pub mod logout_everywhere;

use actix_web::HttpRequest;
use db_core::models::User;
use service_kit::{ApiError, AuthUser, Kit, client};

use crate::passwords;

/// The caller's account, once `password` is proved to be its password. Guesses are throttled
/// like sign-ins (per account and address), so a stolen access token cannot be used to find
/// the password. A wrong one is a 401 `invalid_credentials`, as at sign-in (its code tells it
/// apart from an expired token's `invalid_token`).
pub async fn confirm_password(
    kit: &Kit,
    me: AuthUser,
    req: &HttpRequest,
    field: &'static str,
    password: String,
) -> Result<User, ApiError> {
    let password = service_kit::checks::valid_password(field, password, 1)?;
    let user = kit
        .store
        .account()
        .credentials(me.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let addr = client::limit_key_of(req);
    let limits = kit.store.limits();
    if let Some(wait) = limits.sign_in_blocked(&user.email, &addr).await {
        return Err(ApiError::RateLimited { retry_after: wait });
    }
    let stored = user.password_hash.expose().to_owned();
    if !passwords::verify(password, Some(stored)).await? {
        limits.sign_in_failed(&user.email, &addr).await;
        return Err(ApiError::InvalidCredentials);
    }
    limits.sign_in_succeeded(&user.email, &addr).await;
    Ok(user)
}
