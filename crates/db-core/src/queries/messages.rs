//! Chat messages: the conversation window, paging, unread state, idempotent and bulk inserts,
//! and French full-text search.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Float4, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::{HEADLINE_OPTIONS, HotQuery, Keyset, Prepared};
use crate::models::{Message, NewMessage, Sender};
use crate::pagination::{Cursor, KeysetPage};
use crate::schema::{chat_messages, sql_types::MessageSender};

const COLUMNS: &str =
    "id, user_id, character_id, sender, content, is_read, client_id, created_at, photo_id";
const LATEST: Keyset = Keyset {
    name: "messages.latest",
    table: "chat_messages",
    columns: COLUMNS,
    at: "created_at",
};

/// The newest messages of a conversation, newest first; or those strictly older than `before`.
/// Served by `chat_messages_conversation_idx`; reads `limit + 1` rows to know if there is more.
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
) -> QueryResult<KeysetPage<Message>> {
    LATEST
        .page(conn, user_id, character_id, before, limit, |m: &Message| {
            Cursor::new(m.created_at, m.id)
        })
        .await
}

/// Unread messages in one conversation, counted on `chat_messages_unread_idx`.
pub fn unread_count_query(user_id: Uuid, character_id: &str) -> HotQuery {
    // `NOT is_read` is written literally: a bind parameter would hide the partial index's
    // predicate from the planner once the statement is prepared.
    diesel::sql_query(
        "/* messages.unread_count */ SELECT count(*) AS count FROM chat_messages \
         WHERE user_id = $1 AND character_id = $2 AND NOT is_read",
    )
    .into_boxed()
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(character_id.to_owned())
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

pub async fn unread_count(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
) -> QueryResult<i64> {
    let c: Count = Prepared(unread_count_query(user_id, character_id))
        .get_result(conn)
        .await?;
    Ok(c.count)
}

/// Marks a conversation read on `chat_messages_unread_idx`; returns how many messages changed.
pub fn mark_read_query(user_id: Uuid, character_id: &str) -> HotQuery {
    diesel::sql_query(
        "/* messages.mark_read */ UPDATE chat_messages SET is_read = true \
         WHERE user_id = $1 AND character_id = $2 AND NOT is_read",
    )
    .into_boxed()
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(character_id.to_owned())
}

pub async fn mark_read(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
) -> QueryResult<usize> {
    Prepared(mark_read_query(user_id, character_id))
        .execute(conn)
        .await
}

/// Marks every conversation of the user read (on `chat_messages_unread_idx`, whose leading
/// column is the user); returns each conversation that changed and how many messages did.
pub async fn mark_all_read(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<Vec<(String, i64)>> {
    #[derive(QueryableByName)]
    struct Changed {
        #[diesel(sql_type = Text)]
        character_id: String,
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    let changed: Vec<Changed> = diesel::sql_query(
        "/* messages.mark_all_read */ WITH changed AS ( \
           UPDATE chat_messages SET is_read = true \
           WHERE user_id = $1 AND NOT is_read RETURNING character_id) \
         SELECT character_id, count(*) AS count FROM changed GROUP BY character_id \
         ORDER BY character_id",
    )
    .bind::<SqlUuid, _>(user_id)
    .load(conn)
    .await?;
    Ok(changed
        .into_iter()
        .map(|c| (c.character_id, c.count))
        .collect())
}

#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    Created(Message),
    /// The client sent this `client_id` before: here is what was stored then.
    Existing(Message),
}

impl Inserted {
    pub fn message(&self) -> &Message {
        match self {
            Inserted::Created(m) | Inserted::Existing(m) => m,
        }
    }
    pub fn into_message(self) -> Message {
        match self {
            Inserted::Created(m) | Inserted::Existing(m) => m,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Messages need a match between the user and the character.
    #[error("no match between this user and character")]
    NoMatch,
    #[error(transparent)]
    Db(#[from] crate::pool::DbError),
}

/// Stores a message once per `client_id`: a retried send returns the stored message.
pub async fn insert_idempotent(
    conn: &mut AsyncPgConnection,
    new: &NewMessage,
) -> Result<Inserted, SendError> {
    let created = diesel::insert_into(chat_messages::table)
        .values(new)
        .on_conflict((chat_messages::user_id, chat_messages::client_id))
        .filter_target(chat_messages::client_id.is_not_null())
        .do_nothing()
        .returning(Message::as_returning())
        .get_result(conn)
        .await
        .optional()
        .map_err(|e| match e {
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                SendError::NoMatch
            }
            e => SendError::Db(e.into()),
        })?;
    if let Some(m) = created {
        return Ok(Inserted::Created(m));
    }
    // Only reached on a conflict, so client_id is set.
    let existing = chat_messages::table
        .filter(chat_messages::user_id.eq(new.user_id))
        .filter(chat_messages::client_id.eq(new.client_id))
        .select(Message::as_select())
        .first(conn)
        .await
        .map_err(crate::pool::DbError::from)?;
    Ok(Inserted::Existing(existing))
}

/// Stores one message as it is (no idempotency key), inside whatever transaction `conn` is in.
pub async fn insert(conn: &mut AsyncPgConnection, new: &NewMessage) -> QueryResult<Message> {
    diesel::insert_into(chat_messages::table)
        .values(new)
        .returning(Message::as_returning())
        .get_result(conn)
        .await
}

/// Columns bound per row by [`insert_many`].
const INSERT_COLUMNS: usize = 8;
/// PostgreSQL's limit on bind parameters in one statement.
pub const PG_MAX_BIND_PARAMS: usize = 65_535;
/// Rows per INSERT when loading many (1,000: few round trips, statements PostgreSQL plans fast),
/// lowered if a row ever binds so many columns it would not fit.
pub const BULK_INSERT_BATCH: usize = {
    let fit = PG_MAX_BIND_PARAMS / INSERT_COLUMNS;
    if fit < 1000 { fit } else { 1000 }
};

/// Inserts many messages in batches of [`BULK_INSERT_BATCH`] rows, all or nothing.
pub async fn insert_many(conn: &mut AsyncPgConnection, rows: &[NewMessage]) -> QueryResult<usize> {
    conn.transaction(async |conn| {
        let mut inserted = 0;
        for chunk in rows.chunks(BULK_INSERT_BATCH) {
            inserted += diesel::insert_into(chat_messages::table)
                .values(chunk)
                .execute(conn)
                .await?;
        }
        Ok(inserted)
    })
    .await
}

/// A search result: the message, its rank and an HTML-safe highlight.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, QueryableByName)]
pub struct MessageHit {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub character_id: String,
    #[diesel(sql_type = MessageSender)]
    pub sender: Sender,
    #[diesel(sql_type = Text)]
    pub content: String,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Float4)]
    pub rank: f32,
    #[diesel(sql_type = Text)]
    pub headline: String,
}

/// French full-text search over one user's messages, best first, on `chat_messages_search_idx`
/// (GIN over the stored `search_vector`); the headline is computed for the returned rows only.
pub fn search_query(
    user_id: Uuid,
    query: &str,
    character_id: Option<&str>,
    limit: i64,
) -> HotQuery {
    let conversation = if character_id.is_some() {
        "AND m.character_id = $4"
    } else {
        ""
    };
    let sql = format!(
        "/* messages.search */ \
         SELECT h.id, h.character_id, h.sender, h.content, h.created_at, h.rank, \
                ts_headline('french', replace(replace(replace(h.content, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), \
                            websearch_to_tsquery('french', $2), '{HEADLINE_OPTIONS}') AS headline \
         FROM (SELECT m.id, m.character_id, m.sender, m.content, m.created_at, \
                      ts_rank(m.search_vector, websearch_to_tsquery('french', $2)) AS rank \
               FROM chat_messages m \
               WHERE m.user_id = $1 {conversation} \
                 AND m.search_vector @@ websearch_to_tsquery('french', $2) \
               ORDER BY rank DESC, m.created_at DESC, m.id DESC \
               LIMIT $3) h \
         ORDER BY h.rank DESC, h.created_at DESC, h.id DESC"
    );
    let q = diesel::sql_query(sql)
        .into_boxed()
        .bind::<SqlUuid, _>(user_id)
        .bind::<Text, _>(query.to_owned())
        .bind::<BigInt, _>(limit);
    match character_id {
        Some(c) => q.bind::<Text, _>(c.to_owned()),
        None => q,
    }
}

/// Largest number of search results returned.
pub const MAX_SEARCH_RESULTS: i64 = 50;

pub async fn search(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    query: &str,
    character_id: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<MessageHit>> {
    let query = super::web_search_text(query);
    if query.is_empty() {
        return Ok(Vec::new());
    }
    let query = query.as_str();
    let limit = limit.clamp(1, MAX_SEARCH_RESULTS);
    search_query(user_id, query, character_id, limit)
        .load(conn)
        .await
}

/// One message, only if it belongs to `user_id`.
pub async fn get(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: i64,
) -> QueryResult<Option<Message>> {
    chat_messages::table
        .filter(chat_messages::id.eq(id))
        .filter(chat_messages::user_id.eq(user_id))
        .select(Message::as_select())
        .first(conn)
        .await
        .optional()
}

/// Deletes a message of the user's; returns it if it existed. Memories drawn from it go with it.
pub async fn delete(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: i64,
) -> QueryResult<Option<Message>> {
    diesel::delete(
        chat_messages::table
            .filter(chat_messages::id.eq(id))
            .filter(chat_messages::user_id.eq(user_id)),
    )
    .returning(Message::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Changes a message's text (the user's own, or a regenerated reply); returns it if it existed.
pub async fn edit(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: i64,
    content: &str,
) -> QueryResult<Option<Message>> {
    diesel::update(
        chat_messages::table
            .filter(chat_messages::id.eq(id))
            .filter(chat_messages::user_id.eq(user_id)),
    )
    .set(chat_messages::content.eq(content))
    .returning(Message::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Deletes a message the user wrote (sender `user`); returns it if it existed.
pub async fn delete_own(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: i64,
) -> QueryResult<Option<Message>> {
    diesel::delete(
        chat_messages::table
            .filter(chat_messages::id.eq(id))
            .filter(chat_messages::user_id.eq(user_id))
            .filter(chat_messages::sender.eq(Sender::User)),
    )
    .returning(Message::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Rewrites a message the user wrote (sender `user`); returns it if it existed.
pub async fn edit_own(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: i64,
    content: &str,
) -> QueryResult<Option<Message>> {
    diesel::update(
        chat_messages::table
            .filter(chat_messages::id.eq(id))
            .filter(chat_messages::user_id.eq(user_id))
            .filter(chat_messages::sender.eq(Sender::User)),
    )
    .set(chat_messages::content.eq(content))
    .returning(Message::as_returning())
    .get_result(conn)
    .await
    .optional()
}
