pub mod login;
pub mod logout;
pub mod refresh;
pub mod register;

use serde::Serialize;

use super::UserDto;
use crate::sessions::TokenPair;

/// Tokens and the user they belong to.
#[derive(utoipa::ToSchema, Debug, Serialize)]
pub struct AuthResponse {
    #[serde(flatten)]
    pub tokens: TokenPair,
    pub user: UserDto,
}
