//! Character replies being generated: claimed exactly once per user message, at most one
//! running per conversation (both enforced by unique indexes, so across every replica).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use crate::schema::generations;

#[derive(Debug, Clone, PartialEq, Serialize, Queryable, Selectable)]
#[diesel(table_name = generations, check_for_backend(diesel::pg::Pg))]
pub struct Generation {
    pub id: Uuid,
    pub user_id: Uuid,
    pub character_id: String,
    pub user_message_id: i64,
    pub reply_message_id: Option<i64>,
    pub status: String,
    pub provider: String,
    pub tokens: serde_json::Value,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Generation {
    pub fn tokens(&self) -> Vec<String> {
        serde_json::from_value(self.tokens.clone()).unwrap_or_default()
    }
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

#[derive(Debug)]
pub enum Claim {
    /// This caller generates.
    New(Generation),
    /// The message already has a generation (running or done).
    Existing(Generation),
    /// Another message of the conversation is being answered right now.
    Busy,
}

/// Claims the reply to `user_message_id`.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
    user_message_id: i64,
    provider: &str,
) -> QueryResult<Claim> {
    let inserted: Option<Generation> = diesel::insert_into(generations::table)
        .values((
            generations::id.eq(Uuid::new_v4()),
            generations::user_id.eq(user_id),
            generations::character_id.eq(character_id),
            generations::user_message_id.eq(user_message_id),
            generations::status.eq("running"),
            generations::provider.eq(provider),
        ))
        .on_conflict_do_nothing()
        .returning(Generation::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if let Some(g) = inserted {
        return Ok(Claim::New(g));
    }
    Ok(match for_message(conn, user_message_id).await? {
        Some(g) => Claim::Existing(g),
        None => Claim::Busy,
    })
}

/// How many generations `user_id` started since `since`, and when the oldest of them started
/// (on `generations_user_started_idx`).
pub async fn started_since(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    since: chrono::DateTime<chrono::Utc>,
) -> QueryResult<(i64, Option<chrono::DateTime<chrono::Utc>>)> {
    generations::table
        .filter(generations::user_id.eq(user_id))
        .filter(generations::started_at.gt(since))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(generations::started_at),
        ))
        .first(conn)
        .await
}

/// The live (not superseded) generation of a user message, on `generations_message_key`.
pub async fn for_message(
    conn: &mut AsyncPgConnection,
    user_message_id: i64,
) -> QueryResult<Option<Generation>> {
    generations::table
        .filter(generations::user_message_id.eq(user_message_id))
        .filter(generations::status.ne("superseded"))
        .select(Generation::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn get(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Generation>> {
    generations::table
        .find(id)
        .select(Generation::as_select())
        .first(conn)
        .await
        .optional()
}

/// Appends generated tokens, so that a reconnecting client can be replayed them.
pub async fn append_tokens(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    tokens: &[String],
) -> QueryResult<()> {
    diesel::sql_query(
        "/* generations.append */ UPDATE generations SET tokens = tokens || $2 WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Jsonb, _>(serde_json::json!(tokens))
    .execute(conn)
    .await
    .map(drop)
}

/// Marks a generation done with its stored reply.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    reply_message_id: i64,
) -> QueryResult<()> {
    diesel::update(generations::table.find(id))
        .set((
            generations::status.eq("done"),
            generations::reply_message_id.eq(reply_message_id),
            generations::finished_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// Marks a generation failed; the message can be answered again.
pub async fn fail(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::sql_query(
        "/* generations.fail */ UPDATE generations SET status = 'superseded', finished_at = now() WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id)
    .execute(conn)
    .await
    .map(drop)
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The newest message the user sent in a conversation (what a reply answers).
pub async fn latest_user_message(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
) -> QueryResult<Option<i64>> {
    let row: Option<Id> = diesel::sql_query(
        "/* generations.latest_user_message */ SELECT id FROM chat_messages \
         WHERE user_id = $1 AND character_id = $2 AND sender = 'user' \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(character_id)
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| r.id))
}

/// Retires the finished generation of a message so that it can be answered again (a swipe).
/// Returns the reply the new generation replaces; `None` if the message has no finished reply.
pub async fn supersede_done(
    conn: &mut AsyncPgConnection,
    user_message_id: i64,
) -> QueryResult<Option<i64>> {
    let replaced: Option<Option<i64>> = diesel::update(
        generations::table
            .filter(generations::user_message_id.eq(user_message_id))
            .filter(generations::status.eq("done")),
    )
    .set(generations::status.eq("superseded"))
    .returning(generations::reply_message_id)
    .get_result(conn)
    .await
    .optional()?;
    Ok(replaced.flatten())
}
