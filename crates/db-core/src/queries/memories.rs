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

/// The text a memory is unique by, per match (the `memories_normalized_key` index): lower
/// case, runs of spaces and punctuation as one space, trimmed.
macro_rules! normalized {
    ($col:literal) => {
        concat!(
            "md5(lower(btrim(regexp_replace(",
            $col,
            ", '[[:space:][:punct:]]+', ' ', 'g'))))"
        )
    };
}

#[derive(QueryableByName)]
struct Remembered {
    #[diesel(embed)]
    memory: Memory,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    created: bool,
}

/// Remembers `new` once: the same fact already remembered for this match (whatever its case,
/// spacing or punctuation) is confirmed instead (its `updated_at` moves, which keeps it from
/// eviction), and returned. `(memory, created)`.
pub async fn insert(conn: &mut AsyncPgConnection, new: &NewMemory) -> QueryResult<(Memory, bool)> {
    let r: Remembered = diesel::sql_query(concat!(
        "/* memories.insert */ INSERT INTO memories AS m (user_id, character_id, content, source_message_id) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, character_id, ",
        normalized!("content"),
        ") DO UPDATE SET updated_at = now() \
         RETURNING id, user_id, character_id, content, source_message_id, created_at, updated_at, \
         (xmax = 0) AS created"
    ))
    .bind::<SqlUuid, _>(new.user_id)
    .bind::<Text, _>(&new.character_id)
    .bind::<Text, _>(&new.content)
    .bind::<diesel::sql_types::Nullable<BigInt>, _>(new.source_message_id)
    .get_result(conn)
    .await?;
    Ok((r.memory, r.created))
}

/// Keeps at most `max` memories of the match: beyond that, those drawn from messages go first,
/// least recently confirmed first, then the ones the user wrote, the same way. The number
/// forgotten.
pub async fn evict(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
    max: i64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "/* memories.evict */ DELETE FROM memories WHERE id IN (SELECT id FROM memories \
         WHERE user_id = $1 AND character_id = $2 \
         ORDER BY (source_message_id IS NULL) DESC, updated_at DESC, id DESC OFFSET $3)",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(character_id)
    .bind::<BigInt, _>(max.max(0))
    .execute(conn)
    .await
}

/// Changes a memory's text; `None` if it does not exist or is not the user's. If the new text
/// is a fact the match already remembers in another memory, the two become one: the other is
/// confirmed and returned, this one forgotten.
pub async fn update(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: i64,
    content: &str,
) -> QueryResult<Option<Memory>> {
    use diesel_async::AsyncConnection;
    conn.transaction(async |conn| {
        let twin: Option<Memory> = diesel::sql_query(concat!(
            "/* memories.twin */ SELECT o.id, o.user_id, o.character_id, o.content, o.source_message_id, \
             o.created_at, o.updated_at FROM memories me JOIN memories o \
             ON o.user_id = me.user_id AND o.character_id = me.character_id AND o.id <> me.id \
             WHERE me.id = $1 AND me.user_id = $2 AND ",
            normalized!("o.content"),
            " = ",
            normalized!("$3::text"),
            " FOR UPDATE OF o"
        ))
        .bind::<BigInt, _>(id)
        .bind::<SqlUuid, _>(user_id)
        .bind::<Text, _>(content)
        .get_result(conn)
        .await
        .optional()?;
        if let Some(twin) = twin {
            delete(conn, user_id, id).await?;
            return diesel::update(memories::table.find(twin.id))
                .set(memories::updated_at.eq(diesel::dsl::now))
                .returning(Memory::as_returning())
                .get_result(conn)
                .await
                .optional();
        }
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
    })
    .await
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
