pub mod account;
pub mod auth;
pub mod users;

use db_core::models::Profile;
use serde::Serialize;
use service_kit::ApiError;

/// A user as the API shows them.
#[derive(utoipa::ToSchema, Debug, Serialize)]
pub struct UserDto {
    pub id: uuid::Uuid,
    pub email: String,
    pub display_name: String,
    pub xp: i64,
    pub level: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Profile> for UserDto {
    fn from(p: Profile) -> Self {
        Self {
            id: p.id,
            email: p.email,
            display_name: p.display_name,
            level: level(p.xp),
            xp: p.xp,
            created_at: p.created_at,
        }
    }
}

/// Level 1 at 0 XP; each level costs more than the last (100, 400, 900, … XP).
pub fn level(xp: i64) -> i64 {
    ((xp.max(0) as f64 / 100.0).sqrt().floor() as i64) + 1
}

pub fn valid_display_name(name: &str) -> Result<String, ApiError> {
    service_kit::checks::valid_line("display_name", name, 64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn levels_grow_quadratically() {
        assert_eq!(
            [0, 99, 100, 399, 400, 900].map(super::level),
            [1, 1, 2, 2, 3, 4]
        );
    }
}
