//! Refresh sessions: rotating refresh tokens with reuse detection.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::models::{RefreshSession, SecretBytes};
use crate::schema::refresh_sessions;

pub async fn insert(conn: &mut AsyncPgConnection, session: &RefreshSession) -> QueryResult<()> {
    diesel::insert_into(refresh_sessions::table)
        .values(session)
        .execute(conn)
        .await
        .map(drop)
}

/// On `refresh_sessions_token_hash_key`.
pub async fn find_by_token_hash(
    conn: &mut AsyncPgConnection,
    hash: &SecretBytes,
) -> QueryResult<Option<RefreshSession>> {
    refresh_sessions::table
        .filter(refresh_sessions::token_hash.eq(hash))
        .select(RefreshSession::as_select())
        .first(conn)
        .await
        .optional()
}

/// Marks a live, unused, unexpired session used. Exactly one of two racing refreshes wins;
/// `false` means the token was already used or revoked: a replay.
pub async fn mark_used(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let n = diesel::update(
        refresh_sessions::table
            .filter(refresh_sessions::id.eq(id))
            .filter(refresh_sessions::used_at.is_null())
            .filter(refresh_sessions::revoked_at.is_null())
            .filter(refresh_sessions::expires_at.gt(now)),
    )
    .set(refresh_sessions::used_at.eq(now))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Revokes every session of a family (on `refresh_sessions_family_idx`).
pub async fn revoke_family(conn: &mut AsyncPgConnection, family_id: Uuid) -> QueryResult<usize> {
    diesel::update(
        refresh_sessions::table
            .filter(refresh_sessions::family_id.eq(family_id))
            .filter(refresh_sessions::revoked_at.is_null()),
    )
    .set(refresh_sessions::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
}

/// Revokes every session of a user (on `refresh_sessions_user_idx`).
pub async fn revoke_all_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<usize> {
    diesel::update(
        refresh_sessions::table
            .filter(refresh_sessions::user_id.eq(user_id))
            .filter(refresh_sessions::revoked_at.is_null()),
    )
    .set(refresh_sessions::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
}
