pub mod login;
pub mod logout;
pub mod refresh;
pub mod register;

use serde::Serialize;

use super::UserDto;
use crate::sessions::TokenPair;

/// `X-Dream-Session: cookie` asks for a browser session: the refresh token in an `HttpOnly`,
/// `SameSite=Strict` cookie scoped to `/api/v1/auth` (and a copy of the access token in one
/// scoped to `/api/v1/media`, for images), never in the body.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct SessionMode {
    /// `cookie` for a browser session.
    #[param(rename = "X-Dream-Session", value_type = SessionModeValue, inline, required = false)]
    x_dream_session: Option<SessionModeValue>,
}

/// The one value of `X-Dream-Session`.
#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum SessionModeValue {
    Cookie,
}

/// Tokens and the user they belong to.
#[derive(utoipa::ToSchema, Debug, Serialize)]
pub struct AuthResponse {
    #[serde(flatten)]
    pub tokens: TokenPair,
    pub user: UserDto,
}
