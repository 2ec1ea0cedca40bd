//! Character replies being generated: claimed exactly once per user message, at most one
//! running per conversation (both enforced by unique indexes, so across every replica).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::Prepared;
use crate::models::GenerationStatus;
use crate::schema::generations;

#[derive(Debug, Clone, PartialEq, Serialize, Queryable, Selectable)]
#[diesel(table_name = generations, check_for_backend(diesel::pg::Pg))]
pub struct Generation {
    pub id: Uuid,
    pub user_id: Uuid,
    pub character_id: String,
    pub user_message_id: i64,
    pub reply_message_id: Option<i64>,
    pub status: GenerationStatus,
    pub provider: String,
    pub tokens: serde_json::Value,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// While running: until when its writer holds it (renewed as tokens come).
    pub lease_until: Option<DateTime<Utc>>,
    /// A swipe: the reply it rewrites.
    pub replaces_message_id: Option<i64>,
    /// Once finished: the text it wrote (kept when it is swiped away, so it can be picked
    /// again).
    pub content: Option<String>,
    /// A continuation: the text of the reply it extends.
    pub prefix: Option<String>,
}

impl Generation {
    pub fn tokens(&self) -> Vec<String> {
        serde_json::from_value(self.tokens.clone()).unwrap_or_default()
    }
    pub fn is_running(&self) -> bool {
        self.status == GenerationStatus::Running
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

/// Claims the reply to `user_message_id`, held for `lease`; `replaces` is the reply a swipe
/// rewrites, `prefix` the text a continuation extends, `client_key` the key it was asked under.
#[allow(clippy::too_many_arguments)]
pub async fn claim(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
    user_message_id: i64,
    provider: &str,
    replaces: Option<i64>,
    prefix: Option<&str>,
    client_key: Option<Uuid>,
    lease: std::time::Duration,
) -> QueryResult<Claim> {
    let lease_until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default();
    let inserted: Option<Generation> = diesel::insert_into(generations::table)
        .values((
            generations::id.eq(Uuid::new_v4()),
            generations::user_id.eq(user_id),
            generations::character_id.eq(character_id),
            generations::user_message_id.eq(user_message_id),
            generations::status.eq(GenerationStatus::Running),
            generations::provider.eq(provider),
            generations::lease_until.eq(Some(lease_until)),
            generations::replaces_message_id.eq(replaces),
            generations::prefix.eq(prefix),
            generations::client_key.eq(client_key),
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

/// The generation `user_id` asked for under `key` (on `generations_client_key`).
pub async fn by_client_key(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    key: Uuid,
) -> QueryResult<Option<Generation>> {
    generations::table
        .filter(generations::user_id.eq(user_id))
        .filter(generations::client_key.eq(key))
        .select(Generation::as_select())
        .first(conn)
        .await
        .optional()
}

/// Takes the key from a generation that came to nothing, for the one asked again under it.
pub async fn release_client_key(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(generations::table.find(id))
        .set(generations::client_key.eq(None::<Uuid>))
        .execute(conn)
        .await?;
    Ok(())
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
        .filter(generations::status.ne(GenerationStatus::Superseded))
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

/// Appends generated tokens (a reconnecting client is replayed them) and renews the lease;
/// false when the generation is no longer this writer's (taken over, or given up).
pub async fn append_tokens(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    tokens: &[String],
    lease: std::time::Duration,
) -> QueryResult<bool> {
    Prepared(
        diesel::sql_query(
            "/* generations.append */ UPDATE generations SET tokens = tokens || $2, \
         lease_until = now() + $3 * interval '1 millisecond' WHERE id = $1 AND status = 'running'",
        )
        .bind::<SqlUuid, _>(id)
        .bind::<Jsonb, _>(serde_json::json!(tokens))
        .bind::<BigInt, _>(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)),
    )
    .execute(conn)
    .await
    .map(|n| n == 1)
}

/// Retires the running generations of a conversation whose lease ran out (their writer died):
/// the conversation is free again, and a late completion by the old writer finds nothing to
/// complete. Returns what they were rewriting, per user message.
pub async fn retire_expired(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
) -> QueryResult<Vec<Generation>> {
    diesel::update(
        generations::table
            .filter(generations::user_id.eq(user_id))
            .filter(generations::character_id.eq(character_id))
            .filter(generations::status.eq(GenerationStatus::Running))
            .filter(generations::lease_until.lt(diesel::dsl::now)),
    )
    .set((
        generations::status.eq(GenerationStatus::Superseded),
        generations::finished_at.eq(diesel::dsl::now),
    ))
    .returning(Generation::as_returning())
    .get_results(conn)
    .await
}

/// Serializes the claims of one conversation (a transaction lock): a swipe and a plain ask, or
/// two replicas taking over a dead writer's generation, are served one after the other.
pub async fn lock_conversation(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
) -> QueryResult<()> {
    Prepared(
        diesel::sql_query(
            "/* generations.lock */ \
             SELECT pg_advisory_xact_lock(2003, hashtext($1::text || '|' || $2))",
        )
        .bind::<SqlUuid, _>(user_id)
        .bind::<Text, _>(character_id),
    )
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
    let row: Option<Id> = Prepared(
        diesel::sql_query(
            "/* generations.latest_user_message */ SELECT id FROM chat_messages \
         WHERE user_id = $1 AND character_id = $2 AND sender = 'user' \
         ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind::<SqlUuid, _>(user_id)
        .bind::<Text, _>(character_id),
    )
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
            .filter(generations::status.eq(GenerationStatus::Done)),
    )
    .set(generations::status.eq(GenerationStatus::Superseded))
    .returning(generations::reply_message_id)
    .get_result(conn)
    .await
    .optional()?;
    Ok(replaced.flatten())
}

/// What a reply is worth, counted once with it.
#[derive(Debug, Clone, Default)]
pub struct Reward {
    pub affection: i32,
    pub xp: i64,
    /// Sentences about the user, remembered (tied to the message they came from; a fact
    /// remembered already is confirmed, not repeated).
    pub facts: Vec<String>,
    /// The most memories the match keeps (0: no bound); see `memories::evict`.
    pub max_memories: i64,
}

/// What completing a generation wrote.
#[derive(Debug, Clone)]
pub struct Completed {
    pub reply: crate::models::Message,
    /// The match's affection and the user's XP after the reward (`None`: a swipe, nothing
    /// counted again).
    pub affection: Option<i32>,
    pub xp: Option<i64>,
}

/// Stores a generation's reply and ends it, in one transaction: the reply message (new, or the
/// swiped one rewritten), the reward (affection, XP, memories: only for a first reply), and the
/// generation marked done. `None` (nothing written) if the generation is no longer running:
/// another attempt finished it, so a reply is never stored or counted twice.
pub async fn complete(
    conn: &mut AsyncPgConnection,
    g: &Generation,
    content: &str,
    replaces: Option<i64>,
    reward: &Reward,
) -> QueryResult<Option<Completed>> {
    use diesel_async::AsyncConnection;

    use crate::models::{NewMemory, NewMessage, Sender};
    use crate::queries::{matches, memories, messages, users};
    conn.transaction(async |conn| {
        let ended = diesel::update(
            generations::table
                .filter(generations::id.eq(g.id))
                .filter(generations::status.eq(GenerationStatus::Running)),
        )
        .set(generations::status.eq(GenerationStatus::Done))
        .execute(conn)
        .await?;
        if ended == 0 {
            return Ok(None);
        }
        let (reply, affection, xp) = match replaces {
            Some(id) => {
                let reply = messages::edit(conn, g.user_id, id, content)
                    .await?
                    .ok_or(diesel::result::Error::NotFound)?;
                (reply, None, None)
            }
            None => {
                let new = NewMessage::new(
                    g.user_id,
                    g.character_id.as_str(),
                    Sender::Character,
                    content,
                );
                let reply = messages::insert(conn, &new).await?;
                let affection =
                    matches::add_affection(conn, g.user_id, &g.character_id, reward.affection)
                        .await?;
                let xp = users::add_xp(conn, g.user_id, reward.xp).await?;
                for fact in &reward.facts {
                    memories::insert(
                        conn,
                        &NewMemory {
                            user_id: g.user_id,
                            character_id: g.character_id.clone(),
                            content: fact.clone(),
                            source_message_id: Some(g.user_message_id),
                        },
                    )
                    .await?;
                }
                if !reward.facts.is_empty() && reward.max_memories > 0 {
                    memories::evict(conn, g.user_id, &g.character_id, reward.max_memories).await?;
                }
                (reply, affection, xp)
            }
        };
        diesel::update(generations::table.find(g.id))
            .set((
                generations::reply_message_id.eq(reply.id),
                generations::content.eq(&reply.content),
                generations::finished_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        Ok(Some(Completed {
            reply,
            affection,
            xp,
        }))
    })
    .await
}

/// Every finished version of a reply (its alternatives), oldest first, on
/// `generations_reply_idx`; the one whose status is `done` is the picked one.
pub async fn alternatives(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    reply_message_id: i64,
) -> QueryResult<Vec<Generation>> {
    generations::table
        .filter(generations::reply_message_id.eq(reply_message_id))
        .filter(generations::user_id.eq(user_id))
        .filter(generations::content.is_not_null())
        .order((generations::started_at.asc(), generations::id.asc()))
        .select(Generation::as_select())
        .load(conn)
        .await
}

/// How picking an alternative went.
#[derive(Debug, Clone, PartialEq)]
pub enum Picked {
    /// The reply now reads as the alternative (it may have been picked already).
    Picked(crate::models::Message),
    /// No such alternative of this reply of the user's.
    NotFound,
    /// The reply is being written again right now.
    Busy,
}

/// Makes `alternative` the reply's live version, in one transaction under the conversation's
/// lock: the generation picked before is superseded, this one is `done`, and the reply message
/// takes its text (what the history and the next prompt read). Nothing is counted again.
pub async fn pick(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    reply_message_id: i64,
    alternative: Uuid,
) -> QueryResult<Picked> {
    use diesel_async::AsyncConnection;

    use crate::queries::messages;
    conn.transaction(async |conn| {
        let target: Option<Generation> = generations::table
            .filter(generations::id.eq(alternative))
            .filter(generations::user_id.eq(user_id))
            .filter(generations::reply_message_id.eq(reply_message_id))
            .select(Generation::as_select())
            .first(conn)
            .await
            .optional()?;
        let Some(target) = target else {
            return Ok(Picked::NotFound);
        };
        let Some(content) = target.content.clone() else {
            return Ok(Picked::NotFound);
        };
        lock_conversation(conn, user_id, &target.character_id).await?;
        let live = for_message(conn, target.user_message_id).await?;
        match live {
            Some(g) if g.is_running() => return Ok(Picked::Busy),
            Some(g) if g.id == target.id => {}
            Some(g) => {
                diesel::update(generations::table.find(g.id))
                    .set(generations::status.eq(GenerationStatus::Superseded))
                    .execute(conn)
                    .await?;
            }
            None => {}
        }
        // A running swipe of this reply under another user message cannot exist: a reply
        // answers one user message, and its generations all point at that one.
        diesel::update(generations::table.find(target.id))
            .set(generations::status.eq(GenerationStatus::Done))
            .execute(conn)
            .await?;
        Ok(
            match messages::edit(conn, user_id, reply_message_id, &content).await? {
                Some(m) => Picked::Picked(m),
                None => Picked::NotFound,
            },
        )
    })
    .await
}
