//! Photos a character has sent a user: the gallery.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{HotQuery, Keyset};
use crate::models::{NewPhoto, Photo};
use crate::pagination::{Cursor, KeysetPage};
use crate::schema::received_photos;

const COLUMNS: &str =
    "id, user_id, character_id, storage_key, content_type, width, height, prompt, received_at";
const LATEST: Keyset = Keyset {
    name: "photos.latest",
    table: "received_photos",
    columns: COLUMNS,
    at: "received_at",
};

/// Newest photos of a conversation first, keyset-paged on `received_photos_gallery_idx`.
pub fn latest_query(
    user_id: Uuid,
    character_id: &str,
    before: Option<Cursor>,
    limit: i64,
) -> HotQuery {
    LATEST.query(user_id, character_id, before, limit)
}

pub async fn latest(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
    before: Option<Cursor>,
    limit: i64,
) -> QueryResult<KeysetPage<Photo>> {
    LATEST
        .page(conn, user_id, character_id, before, limit, |p: &Photo| {
            Cursor::new(p.received_at, p.id)
        })
        .await
}

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewPhoto) -> QueryResult<Photo> {
    diesel::insert_into(received_photos::table)
        .values(new)
        .returning(Photo::as_returning())
        .get_result(conn)
        .await
}

/// One photo, only if it belongs to `user_id`.
pub async fn get(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: i64,
) -> QueryResult<Option<Photo>> {
    received_photos::table
        .filter(received_photos::id.eq(id))
        .filter(received_photos::user_id.eq(user_id))
        .select(Photo::as_select())
        .first(conn)
        .await
        .optional()
}

/// Stored files whose photo is gone (queued by the `received_photos_forget_files` trigger),
/// oldest first: `(entry id, storage key)`.
pub async fn files_to_delete(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> QueryResult<Vec<(i64, String)>> {
    use crate::schema::storage_deletions;
    storage_deletions::table
        .order(storage_deletions::id)
        .limit(limit)
        .select((storage_deletions::id, storage_deletions::storage_key))
        .load(conn)
        .await
}

/// Forgets entries whose files were deleted.
pub async fn files_deleted(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<usize> {
    use crate::schema::storage_deletions;
    diesel::delete(storage_deletions::table.filter(storage_deletions::id.eq_any(ids)))
        .execute(conn)
        .await
}
