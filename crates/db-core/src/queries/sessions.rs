//! Refresh sessions: rotating refresh tokens with reuse detection.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::models::{RefreshSession, SecretBytes};
use crate::schema::{refresh_sessions, session_revocations};

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

/// Revokes every refresh session of a family (on `refresh_sessions_family_idx`) and records
/// the family revoked, so that its access tokens are refused everywhere; one transaction.
pub async fn revoke_family(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    family_id: Uuid,
) -> QueryResult<usize> {
    conn.transaction(async |conn| {
        let n = diesel::update(
            refresh_sessions::table
                .filter(refresh_sessions::family_id.eq(family_id))
                .filter(refresh_sessions::revoked_at.is_null()),
        )
        .set(refresh_sessions::revoked_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
        record_revocations(conn, user_id, &[family_id]).await?;
        Ok(n)
    })
    .await
}

/// Revokes every live session of a user (on `refresh_sessions_user_idx`), recording each family
/// revoked; returns the families.
pub async fn revoke_all_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<Vec<Uuid>> {
    conn.transaction(async |conn| {
        let families: Vec<Uuid> = diesel::update(
            refresh_sessions::table
                .filter(refresh_sessions::user_id.eq(user_id))
                .filter(refresh_sessions::revoked_at.is_null()),
        )
        .set(refresh_sessions::revoked_at.eq(diesel::dsl::now))
        .returning(refresh_sessions::family_id)
        .get_results(conn)
        .await?;
        let mut families = families;
        families.sort_unstable();
        families.dedup();
        record_revocations(conn, user_id, &families).await?;
        Ok(families)
    })
    .await
}

async fn record_revocations(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    families: &[Uuid],
) -> QueryResult<()> {
    if families.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = families
        .iter()
        .map(|f| {
            (
                session_revocations::family_id.eq(*f),
                session_revocations::user_id.eq(user_id),
            )
        })
        .collect();
    diesel::insert_into(session_revocations::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map(drop)
}

/// Families revoked after `since` (on `session_revocations_revoked_at_idx`), oldest first.
pub async fn revocations_since(
    conn: &mut AsyncPgConnection,
    since: DateTime<Utc>,
) -> QueryResult<Vec<(Uuid, DateTime<Utc>)>> {
    session_revocations::table
        .filter(session_revocations::revoked_at.gt(since))
        .order(session_revocations::revoked_at)
        .select((
            session_revocations::family_id,
            session_revocations::revoked_at,
        ))
        .load(conn)
        .await
}

/// Forgets revocations older than `before`: their tokens have expired (maintenance).
pub async fn prune_revocations(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::delete(session_revocations::table.filter(session_revocations::revoked_at.lt(before)))
        .execute(conn)
        .await
}
