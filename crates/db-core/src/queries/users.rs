//! Accounts, profiles and XP.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::HotQuery;
use crate::models::{NewUser, User};
use crate::schema::users;

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("an account with this email exists")]
    EmailTaken,
    #[error(transparent)]
    Db(#[from] crate::pool::DbError),
}

/// Creates an account. The email is stored lower-cased, as the schema requires.
pub async fn create(conn: &mut AsyncPgConnection, new: &NewUser) -> Result<User, CreateUserError> {
    let new = NewUser {
        email: new.email.trim().to_lowercase(),
        ..new.clone()
    };
    diesel::insert_into(users::table)
        .values(&new)
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| match e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                CreateUserError::EmailTaken
            }
            e => CreateUserError::Db(e.into()),
        })
}

/// Login's lookup, on `users_email_key`.
pub async fn find_by_email(conn: &mut AsyncPgConnection, email: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email.eq(email.trim().to_lowercase()))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find_by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn update_display_name(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    display_name: &str,
) -> QueryResult<Option<User>> {
    diesel::update(users::table.find(id))
        .set((
            users::display_name.eq(display_name),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Adds XP and returns the new total.
pub async fn add_xp(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    delta: i64,
) -> QueryResult<Option<i64>> {
    diesel::update(users::table.find(id))
        .set(users::xp.eq(users::xp + delta))
        .returning(users::xp)
        .get_result(conn)
        .await
        .optional()
}

#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, QueryableByName)]
pub struct LeaderboardEntry {
    #[diesel(sql_type = SqlUuid)]
    pub user_id: Uuid,
    #[diesel(sql_type = Text)]
    pub display_name: String,
    #[diesel(sql_type = BigInt)]
    pub xp: i64,
}

/// The top users by XP, read in order from `users_xp_idx`.
pub fn top_by_xp_query(limit: i64) -> HotQuery {
    diesel::sql_query(
        "/* users.top_by_xp */ SELECT id AS user_id, display_name, xp FROM users ORDER BY xp DESC, id LIMIT $1",
    )
    .into_boxed()
    .bind::<BigInt, _>(limit)
}

pub async fn top_by_xp(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> QueryResult<Vec<LeaderboardEntry>> {
    top_by_xp_query(limit.clamp(1, 100)).load(conn).await
}

#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, QueryableByName)]
pub struct Rank {
    #[diesel(sql_type = BigInt)]
    pub xp: i64,
    /// 1 + the number of users with more XP (ties share a rank).
    #[diesel(sql_type = BigInt)]
    pub rank: i64,
}

/// A user's rank, counted on `users_xp_idx` (an index-only range scan).
pub fn rank_of_query(user_id: Uuid) -> HotQuery {
    diesel::sql_query(
        "/* users.rank_of */ SELECT u.xp, 1 + (SELECT count(*) FROM users o WHERE o.xp > u.xp) AS rank \
         FROM users u WHERE u.id = $1",
    )
    .into_boxed()
    .bind::<SqlUuid, _>(user_id)
}

pub async fn rank_of(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<Option<Rank>> {
    rank_of_query(user_id).get_result(conn).await.optional()
}

/// Every user's XP, in pages by id (for rebuilding the Redis leaderboard).
pub async fn xp_page(
    conn: &mut AsyncPgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<(Uuid, i64)>> {
    let mut q = users::table
        .select((users::id, users::xp))
        .order(users::id)
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(users::id.gt(after));
    }
    q.load(conn).await
}

/// Display names and XP of the given users (on the primary key), in no particular order.
pub async fn leaderboard_entries(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<LeaderboardEntry>> {
    users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::display_name, users::xp))
        .load::<(Uuid, String, i64)>(conn)
        .await
        .map(|rows| {
            rows.into_iter()
                .map(|(user_id, display_name, xp)| LeaderboardEntry {
                    user_id,
                    display_name,
                    xp,
                })
                .collect()
        })
}
