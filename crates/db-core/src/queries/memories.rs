//! What a character remembers about a user; the user can list, search, edit and delete it.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Float4, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::{HotQuery, Keyset};
use crate::models::{Memory, NewMemory};
use crate::pagination::{Cursor, KeysetPage};
use crate::schema::memories;

const COLUMNS: &str =
    "id, user_id, character_id, content, source_message_id, created_at, updated_at";
const LIST: Keyset = Keyset {
    name: "memories.list",
    table: "memories",
    columns: COLUMNS,
    at: "created_at",
};

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewMemory) -> QueryResult<Memory> {
    diesel::insert_into(memories::table)
        .values(new)
        .returning(Memory::as_returning())
        .get_result(conn)
        .await
}

/// Changes a memory's text; `None` if it does not exist or is not the user's.
pub async fn update(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: i64,
    content: &str,
) -> QueryResult<Option<Memory>> {
    diesel::update(
        memories::table
            .filter(memories::id.eq(id))
            .filter(memories::user_id.eq(user_id)),
    )
    .set((
        memories::content.eq(content),
        memories::updated_at.eq(diesel::dsl::now),
    ))
    .returning(Memory::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Deletes a memory; false if it does not exist or is not the user's.
pub async fn delete(conn: &mut AsyncPgConnection, user_id: Uuid, id: i64) -> QueryResult<bool> {
    let n = diesel::delete(
        memories::table
            .filter(memories::id.eq(id))
            .filter(memories::user_id.eq(user_id)),
    )
    .execute(conn)
    .await?;
    Ok(n == 1)
}

#[cfg(feature = "testing")]
/// Memories drawn from one message, to update or remove them with it.
pub async fn by_source_message(
    conn: &mut AsyncPgConnection,
    message_id: i64,
) -> QueryResult<Vec<Memory>> {
    memories::table
        .filter(memories::source_message_id.eq(message_id))
        .select(Memory::as_select())
        .load(conn)
        .await
}

/// Newest first, keyset-paged on `memories_owner_idx`.
pub fn list_query(
    user_id: Uuid,
    character_id: &str,
    before: Option<Cursor>,
    limit: i64,
) -> HotQuery {
    LIST.query(user_id, character_id, before, limit)
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
    before: Option<Cursor>,
    limit: i64,
) -> QueryResult<KeysetPage<Memory>> {
    LIST.page(conn, user_id, character_id, before, limit, |m: &Memory| {
        Cursor::new(m.created_at, m.id)
    })
    .await
}

#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, QueryableByName)]
pub struct MemoryHit {
    #[diesel(embed)]
    #[serde(flatten)]
    pub memory: Memory,
    #[diesel(sql_type = Float4)]
    pub rank: f32,
}

/// French full-text search over a user's memories (of one character, or all), best first,
/// on `memories_search_idx` (GIN over the stored `search_vector`).
pub fn search_query(
    user_id: Uuid,
    query: &str,
    character_id: Option<&str>,
    limit: i64,
) -> HotQuery {
    let conversation = if character_id.is_some() {
        "AND character_id = $4"
    } else {
        ""
    };
    let q = diesel::sql_query(format!(
        "/* memories.search */ SELECT {COLUMNS}, \
                ts_rank(search_vector, websearch_to_tsquery('french', $2)) AS rank \
         FROM memories \
         WHERE user_id = $1 {conversation} \
           AND search_vector @@ websearch_to_tsquery('french', $2) \
         ORDER BY rank DESC, created_at DESC, id DESC LIMIT $3"
    ))
    .into_boxed()
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(query.to_owned())
    .bind::<BigInt, _>(limit);
    match character_id {
        Some(c) => q.bind::<Text, _>(c.to_owned()),
        None => q,
    }
}

pub async fn search(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    query: &str,
    character_id: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<MemoryHit>> {
    let query = super::web_search_text(query);
    if query.is_empty() {
        return Ok(Vec::new());
    }
    let query = query.as_str();
    search_query(
        user_id,
        query,
        character_id,
        limit.clamp(1, super::messages::MAX_SEARCH_RESULTS),
    )
    .load(conn)
    .await
}
