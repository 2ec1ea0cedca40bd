//! A person's account as a whole: its password, its deletion (every row that names it), the
//! chronological read of a conversation the export needs, and the storage purges that follow a
//! deletion.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::models::{Message, User};
use crate::schema::{
    chat_messages, generations, matches, refresh_sessions, session_revocations, storage_purges,
    users,
};

/// What a deleted account leaves for the caches and the other processes to forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// Its email (the sign-in throttling keys are derived from it).
    pub email: String,
    /// Session families that may still hold a valid access token: recorded revoked.
    pub families: Vec<Uuid>,
    /// The characters it was matched with (their per-conversation cache keys).
    pub characters: Vec<String>,
}

/// A prefix of the media store to empty.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = storage_purges, check_for_backend(diesel::pg::Pg))]
pub struct StoragePurge {
    pub id: i64,
    pub prefix: String,
    pub passes: i32,
}

/// Where a user's images live in the media store (`photos/{user}/…`, renditions included).
pub fn photo_prefix(user: Uuid) -> String {
    format!("photos/{user}/")
}

/// The account with its password hash, from the primary (a password check).
pub async fn credentials(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<Option<User>> {
    crate::queries::users::find_by_id(conn, user).await
}

/// Sets a new password hash and revokes every session of the user, in one transaction;
/// `None` if there is no such user, else the families revoked.
pub async fn change_password(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    password_hash: &str,
) -> QueryResult<Option<Vec<Uuid>>> {
    conn.transaction(async |conn| {
        let n = diesel::update(users::table.find(user))
            .set((
                users::password_hash.eq(password_hash),
                users::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(
            crate::queries::sessions::revoke_all_for_user(conn, user).await?,
        ))
    })
    .await
}

/// Deletes an account and everything that names it, in one transaction; `None` if there is no
/// such user.
///
/// Order matters: the generations first (they have no foreign key to anything of the user's
/// but its messages), then the matches (which take the messages, photos, memories and photo
/// jobs with them by cascade, before anything the user owns that a match may reference), then
/// the user (its sessions go by cascade, and so does whatever a later table hangs on it). The
/// families that may still hold a valid access token (`token_horizon`: a session created since
/// then) are recorded revoked with no user named, older revocations of the user lose its name,
/// and a purge of its images is queued for the media service.
pub async fn delete_user(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    token_horizon: DateTime<Utc>,
) -> QueryResult<Option<Deleted>> {
    conn.transaction(async |conn| {
        let email: Option<String> = users::table
            .find(user)
            .select(users::email)
            .for_update()
            .first(conn)
            .await
            .optional()?;
        let Some(email) = email else {
            return Ok(None);
        };
        let characters: Vec<String> = matches::table
            .filter(matches::user_id.eq(user))
            .select(matches::character_id)
            .load(conn)
            .await?;
        let families: Vec<Uuid> = refresh_sessions::table
            .filter(refresh_sessions::user_id.eq(user))
            .filter(refresh_sessions::created_at.gt(token_horizon))
            .select(refresh_sessions::family_id)
            .distinct()
            .load(conn)
            .await?;
        diesel::update(session_revocations::table.filter(session_revocations::user_id.eq(user)))
            .set(session_revocations::user_id.eq(None::<Uuid>))
            .execute(conn)
            .await?;
        if !families.is_empty() {
            let rows: Vec<_> = families
                .iter()
                .map(|f| {
                    (
                        session_revocations::family_id.eq(*f),
                        session_revocations::user_id.eq(None::<Uuid>),
                    )
                })
                .collect();
            diesel::insert_into(session_revocations::table)
                .values(rows)
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
        }
        diesel::insert_into(storage_purges::table)
            .values(storage_purges::prefix.eq(photo_prefix(user)))
            .execute(conn)
            .await?;
        diesel::delete(generations::table.filter(generations::user_id.eq(user)))
            .execute(conn)
            .await?;
        diesel::delete(matches::table.filter(matches::user_id.eq(user)))
            .execute(conn)
            .await?;
        diesel::delete(users::table.find(user))
            .execute(conn)
            .await?;
        Ok(Some(Deleted {
            email,
            families,
            characters,
        }))
    })
    .await
}

/// A conversation oldest first, the messages strictly after `after` (on
/// `chat_messages_conversation_idx`, scanned backwards).
pub async fn messages_after(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    character: &str,
    after: Option<(DateTime<Utc>, i64)>,
    limit: i64,
) -> QueryResult<Vec<Message>> {
    let mut q = chat_messages::table
        .filter(chat_messages::user_id.eq(user))
        .filter(chat_messages::character_id.eq(character))
        .into_boxed();
    if let Some((at, id)) = after {
        q = q.filter(
            chat_messages::created_at
                .gt(at)
                .or(chat_messages::created_at
                    .eq(at)
                    .and(chat_messages::id.gt(id))),
        );
    }
    q.order((chat_messages::created_at.asc(), chat_messages::id.asc()))
        .limit(limit)
        .select(Message::as_select())
        .load(conn)
        .await
}

/// Purges that are due, oldest first.
pub async fn purges_due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<StoragePurge>> {
    storage_purges::table
        .filter(storage_purges::run_after.le(now))
        .order(storage_purges::run_after)
        .limit(limit)
        .select(StoragePurge::as_select())
        .load(conn)
        .await
}

/// A pass over a purge's prefix is done: run it again at `again` (another pass), or forget it.
pub async fn purge_passed(
    conn: &mut AsyncPgConnection,
    id: i64,
    again: Option<DateTime<Utc>>,
) -> QueryResult<()> {
    match again {
        Some(at) => diesel::update(storage_purges::table.find(id))
            .set((
                storage_purges::run_after.eq(at),
                storage_purges::passes.eq(storage_purges::passes + 1),
            ))
            .execute(conn)
            .await
            .map(drop),
        None => diesel::delete(storage_purges::table.find(id))
            .execute(conn)
            .await
            .map(drop),
    }
}
