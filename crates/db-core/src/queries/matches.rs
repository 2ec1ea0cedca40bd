//! Matches: a user's relationship with a character.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Int4, Int8, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::{HotQuery, Prepared};
use crate::models::{Match, Sender};
use crate::schema::{matches, sql_types::MessageSender};

#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error("no such character")]
    UnknownCharacter,
    #[error(transparent)]
    Db(#[from] crate::pool::DbError),
}

impl From<DieselError> for MatchError {
    fn from(e: DieselError) -> Self {
        MatchError::Db(e.into())
    }
}

/// Creates the match, or returns the existing one; the flag says whether it is new.
pub async fn create(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
) -> Result<(Match, bool), MatchError> {
    let created = diesel::insert_into(matches::table)
        .values((
            matches::user_id.eq(user_id),
            matches::character_id.eq(character_id),
        ))
        .on_conflict_do_nothing()
        .returning(Match::as_returning())
        .get_result(conn)
        .await
        .optional()
        .map_err(|e| match e {
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                MatchError::UnknownCharacter
            }
            e => MatchError::Db(e.into()),
        })?;
    match created {
        Some(m) => Ok((m, true)),
        None => Ok((
            get(conn, user_id, character_id)
                .await
                .map_err(crate::pool::DbError::from)?
                .ok_or(crate::pool::DbError::Query(DieselError::NotFound))?,
            false,
        )),
    }
}

/// Ends a match: the match row goes, and with it (foreign keys, `ON DELETE CASCADE`) its
/// messages, their generations, its photos (their files are queued for deletion by a trigger),
/// photo jobs and memories. Returns whether there was one.
pub async fn delete(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
) -> QueryResult<bool> {
    diesel::delete(matches::table.find((user_id, character_id)))
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// The message a character opens a new match with: its greeting, stored as an unread message
/// from the character. `None` if the character has no greeting.
pub async fn insert_greeting(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
) -> QueryResult<Option<crate::models::Message>> {
    use crate::schema::characters;
    let greeting: Option<String> = characters::table
        .find(character_id)
        .select(characters::greeting)
        .first(conn)
        .await
        .optional()?;
    let Some(greeting) = greeting.filter(|g| !g.trim().is_empty()) else {
        return Ok(None);
    };
    let new = crate::models::NewMessage::new(user_id, character_id, Sender::Character, greeting);
    crate::queries::messages::insert(conn, &new).await.map(Some)
}

pub async fn get(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
) -> QueryResult<Option<Match>> {
    matches::table
        .find((user_id, character_id))
        .select(Match::as_select())
        .first(conn)
        .await
        .optional()
}

/// Adds `delta` to a match's affection and returns the new total (`None` if there is no match).
pub async fn add_affection(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
    delta: i32,
) -> QueryResult<Option<i32>> {
    diesel::update(matches::table.find((user_id, character_id)))
        .set(matches::affection.eq(matches::affection + delta))
        .returning(matches::affection)
        .get_result(conn)
        .await
        .optional()
}

/// A match as the matches screen shows it.
#[derive(
    utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, serde::Deserialize, QueryableByName,
)]
pub struct MatchSummary {
    #[diesel(sql_type = SqlUuid)]
    pub user_id: Uuid,
    #[diesel(sql_type = Text)]
    pub character_id: String,
    #[diesel(sql_type = Text)]
    pub character_name: String,
    #[diesel(sql_type = Int4)]
    pub affection: i32,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Int8>)]
    pub last_message_id: Option<i64>,
    #[diesel(sql_type = Nullable<MessageSender>)]
    pub last_message_sender: Option<Sender>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_message_content: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_message_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = BigInt)]
    pub unread_count: i64,
}

/// Every match of a user with its last message and unread count, in ONE statement: the last
/// message is one step down `chat_messages_conversation_idx` per match, the count reads
/// `chat_messages_unread_idx`. Most recently active first.
pub fn list_with_last_message_query(user_id: Uuid) -> HotQuery {
    diesel::sql_query(
        "/* matches.list_with_last_message */ \
         SELECT m.user_id, m.character_id, c.name AS character_name, m.affection, m.created_at, \
                lm.id AS last_message_id, lm.sender AS last_message_sender, \
                lm.content AS last_message_content, lm.created_at AS last_message_at, \
                ur.unread AS unread_count \
         FROM matches m \
         JOIN characters c ON c.id = m.character_id \
         LEFT JOIN LATERAL ( \
             SELECT cm.id, cm.sender, cm.content, cm.created_at FROM chat_messages cm \
             WHERE cm.user_id = m.user_id AND cm.character_id = m.character_id \
             ORDER BY cm.created_at DESC, cm.id DESC LIMIT 1) lm ON true \
         CROSS JOIN LATERAL ( \
             SELECT count(*) AS unread FROM chat_messages cm \
             WHERE cm.user_id = m.user_id AND cm.character_id = m.character_id AND NOT cm.is_read) ur \
         WHERE m.user_id = $1 \
         ORDER BY lm.created_at DESC NULLS LAST, m.created_at DESC, m.character_id",
    )
    .into_boxed()
    .bind::<SqlUuid, _>(user_id)
}

pub async fn list_with_last_message(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<Vec<MatchSummary>> {
    Prepared(list_with_last_message_query(user_id))
        .load(conn)
        .await
}
