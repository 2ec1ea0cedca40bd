//! Characters who write first: after a silence, the character sends one message.
//!
//! The durable part follows `photo_jobs`: a row per message to write, claimed with
//! `FOR UPDATE SKIP LOCKED` under a lease the worker renews while the text is written, and
//! finished in one transaction that checks the attempt still holds it.
//!
//! What keeps it to *one* message: a nudge answers one silence, named by the message that
//! started it (`after_message_id`, unique per match). The planner only looks at each
//! conversation's newest message as it is now, so after any downtime a silent match gets one
//! nudge, not one per missed period; and a conversation whose newest message is itself a nudge
//! is not silent in this sense, so the character never writes first twice in a row: the next
//! nudge waits until someone else writes (the user, or the character's reply to the user) and a
//! full silence has passed again. Nor does it write to someone who has not written yet: after a
//! new match's greeting, the first words are the user's.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{HotQuery, Prepared, messages};
use crate::models::{Message, NewMessage, Nudge, NudgeStatus, Sender};
use crate::schema::nudges;

const COLUMNS: &str = "id, user_id, character_id, after_message_id, status, attempts, \
                       lease_until, run_after, message_id, error, created_at, finished_at";

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A match that has been silent long enough, and whose user lets characters write first.
#[derive(Debug, Clone, QueryableByName)]
pub struct Silent {
    #[diesel(sql_type = SqlUuid)]
    pub user_id: Uuid,
    #[diesel(sql_type = Text)]
    pub character_id: String,
    #[diesel(sql_type = BigInt)]
    pub after_message_id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub last_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub time_zone: String,
}

/// The silent matches without a nudge for their current silence, at most `limit`: each match's
/// newest message (on `chat_messages_conversation_idx`) older than its silence (the match's own
/// or `default_after_s`), not itself a nudge (`nudges_message_idx`), not answered yet
/// (`nudges_silence_key`).
pub fn silent_query(default_after_s: i64, limit: i64) -> HotQuery {
    diesel::sql_query(
        "/* nudges.silent */ SELECT m.user_id, m.character_id, last.id AS after_message_id, \
         last.created_at AS last_at, COALESCE(us.time_zone, 'UTC') AS time_zone \
         FROM matches m \
         LEFT JOIN user_settings us ON us.user_id = m.user_id \
         LEFT JOIN match_settings ms ON ms.user_id = m.user_id AND ms.character_id = m.character_id \
         CROSS JOIN LATERAL (SELECT c.id, c.created_at FROM chat_messages c \
            WHERE c.user_id = m.user_id AND c.character_id = m.character_id \
            ORDER BY c.created_at DESC, c.id DESC LIMIT 1) last \
         WHERE COALESCE(us.write_first, true) AND COALESCE(ms.write_first, true) \
           AND last.created_at <= now() - COALESCE(ms.write_first_after_s, $1) * interval '1 second' \
           AND NOT EXISTS (SELECT 1 FROM nudges n WHERE n.message_id = last.id) \
           AND EXISTS (SELECT 1 FROM chat_messages u WHERE u.user_id = m.user_id \
                AND u.character_id = m.character_id AND u.sender = 'user') \
           AND NOT EXISTS (SELECT 1 FROM nudges n WHERE n.user_id = m.user_id \
                AND n.character_id = m.character_id AND n.after_message_id = last.id) \
         LIMIT $2",
    )
    .into_boxed()
    .bind::<BigInt, _>(default_after_s)
    .bind::<BigInt, _>(limit)
}

pub async fn silent(
    conn: &mut AsyncPgConnection,
    default_after_s: i64,
    limit: i64,
) -> QueryResult<Vec<Silent>> {
    silent_query(default_after_s, limit).load(conn).await
}

/// Queues the nudge for one silence, to run from `run_after`; `false` if that silence already
/// has one (another planner was first).
pub async fn plan(
    conn: &mut AsyncPgConnection,
    s: &Silent,
    run_after: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::sql_query(
        "/* nudges.plan */ INSERT INTO nudges (id, user_id, character_id, after_message_id, run_after) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (user_id, character_id, after_message_id) DO NOTHING",
    )
    .bind::<SqlUuid, _>(Uuid::now_v7())
    .bind::<SqlUuid, _>(s.user_id)
    .bind::<Text, _>(&s.character_id)
    .bind::<BigInt, _>(s.after_message_id)
    .bind::<Timestamptz, _>(run_after)
    .execute(conn)
    .await
    .map(|n| n == 1)
}

/// The claim statement: the runnable nudge due soonest (queued and due, or running under a
/// lease that ran out), skipping rows another worker is claiming, on `nudges_queue_idx`.
pub fn claim_query(lease: Duration) -> HotQuery {
    diesel::sql_query(format!(
        "/* nudges.claim */ UPDATE nudges SET status = 'running', attempts = attempts + 1, \
         lease_until = now() + $1 * interval '1 millisecond' \
         WHERE id = (SELECT id FROM nudges WHERE status IN ('queued', 'running') \
         AND run_after <= now() AND (status = 'queued' OR lease_until < now()) \
         ORDER BY run_after LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}"
    ))
    .into_boxed()
    .bind::<BigInt, _>(millis(lease))
}

pub async fn claim(conn: &mut AsyncPgConnection, lease: Duration) -> QueryResult<Option<Nudge>> {
    Prepared(claim_query(lease))
        .get_result(conn)
        .await
        .optional()
}

/// Extends the lease of the attempt that holds the nudge; `false` if it no longer does.
pub async fn renew(conn: &mut AsyncPgConnection, n: &Nudge, lease: Duration) -> QueryResult<bool> {
    diesel::sql_query(
        "/* nudges.renew */ UPDATE nudges SET lease_until = now() + $3 * interval '1 millisecond' \
         WHERE id = $1 AND attempts = $2 AND status = 'running'",
    )
    .bind::<SqlUuid, _>(n.id)
    .bind::<Integer, _>(n.attempts)
    .bind::<BigInt, _>(millis(lease))
    .execute(conn)
    .await
    .map(|n| n == 1)
}

/// Puts the nudge back in the queue until `run_after` (the user's night, or a failed attempt's
/// backoff), or fails it for good after `max_attempts` when `error` is given.
pub async fn release(
    conn: &mut AsyncPgConnection,
    n: &Nudge,
    run_after: DateTime<Utc>,
    error: Option<&str>,
    max_attempts: i32,
) -> QueryResult<bool> {
    diesel::sql_query(
        "/* nudges.release */ UPDATE nudges SET \
         status = CASE WHEN $5 AND attempts >= $3 THEN 'failed' ELSE 'queued' END, \
         finished_at = CASE WHEN $5 AND attempts >= $3 THEN now() END, \
         run_after = $4, lease_until = NULL, error = $6 \
         WHERE id = $1 AND attempts = $2 AND status = 'running'",
    )
    .bind::<SqlUuid, _>(n.id)
    .bind::<Integer, _>(n.attempts)
    .bind::<Integer, _>(max_attempts)
    .bind::<Timestamptz, _>(run_after)
    .bind::<Bool, _>(error.is_some())
    .bind::<Nullable<Text>, _>(error)
    .execute(conn)
    .await
    .map(|n| n == 1)
}

/// What finishing a nudge came to.
#[derive(Debug, Clone)]
pub enum Finished {
    /// The character's message, stored.
    Sent(Message),
    /// Not sent, for this reason (the user wrote meanwhile, or turned it off).
    Cancelled(&'static str),
    /// This attempt no longer held the nudge (another worker took it over): nothing written.
    Lost,
}

#[derive(QueryableByName)]
struct Check {
    #[diesel(sql_type = Nullable<BigInt>)]
    newest: Option<i64>,
    #[diesel(sql_type = Bool)]
    allowed: bool,
}

/// Finishes the attempt that holds `n`, in one transaction: if the silence still holds (the
/// conversation's newest message is still the one it follows) and the user still lets
/// characters write first, stores `content` as the character's message and marks the nudge
/// done with it; else cancels it.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    n: &Nudge,
    content: &str,
) -> QueryResult<Finished> {
    conn.transaction(async |conn| {
        let held: Option<Uuid> = nudges::table
            .filter(nudges::id.eq(n.id))
            .filter(nudges::attempts.eq(n.attempts))
            .filter(nudges::status.eq(NudgeStatus::Running))
            .select(nudges::id)
            .for_update()
            .first(conn)
            .await
            .optional()?;
        if held.is_none() {
            return Ok(Finished::Lost);
        }
        let check: Check = diesel::sql_query(
            "/* nudges.check */ SELECT \
             (SELECT id FROM chat_messages WHERE user_id = $1 AND character_id = $2 \
              ORDER BY created_at DESC, id DESC LIMIT 1) AS newest, \
             COALESCE((SELECT write_first FROM user_settings WHERE user_id = $1), true) \
             AND COALESCE((SELECT write_first FROM match_settings WHERE user_id = $1 AND character_id = $2), true) \
             AS allowed",
        )
        .bind::<SqlUuid, _>(n.user_id)
        .bind::<Text, _>(&n.character_id)
        .get_result(conn)
        .await?;
        let cancelled = if check.newest != Some(n.after_message_id) {
            Some("the conversation went on")
        } else if !check.allowed {
            Some("turned off")
        } else {
            None
        };
        let (status, message) = match cancelled {
            Some(_) => (NudgeStatus::Cancelled, None),
            None => {
                let new = NewMessage::new(
                    n.user_id,
                    n.character_id.as_str(),
                    Sender::Character,
                    content,
                );
                (NudgeStatus::Done, Some(messages::insert(conn, &new).await?))
            }
        };
        diesel::update(nudges::table.find(n.id))
            .set((
                nudges::status.eq(status),
                nudges::message_id.eq(message.as_ref().map(|m| m.id)),
                nudges::finished_at.eq(diesel::dsl::now),
                nudges::lease_until.eq(None::<DateTime<Utc>>),
                nudges::error.eq(cancelled),
            ))
            .execute(conn)
            .await?;
        Ok(match (message, cancelled) {
            (Some(m), _) => Finished::Sent(m),
            (None, reason) => Finished::Cancelled(reason.unwrap_or("cancelled")),
        })
    })
    .await
}

/// A match's latest nudge (waiting, sent or not), for its owner.
pub async fn latest(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
) -> QueryResult<Option<Nudge>> {
    diesel::sql_query(format!(
        "/* nudges.latest */ SELECT {COLUMNS} FROM nudges WHERE user_id = $1 AND character_id = $2 \
         ORDER BY created_at DESC LIMIT 1"
    ))
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(character_id)
    .get_result(conn)
    .await
    .optional()
}

/// Nudges waiting or being written (the dashboard).
pub async fn backlog(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    nudges::table
        .filter(nudges::status.eq_any([NudgeStatus::Queued, NudgeStatus::Running]))
        .count()
        .get_result(conn)
        .await
}

/// A user's settings as stored (defaults when they never changed them).
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct UserSettings {
    #[diesel(sql_type = Text)]
    pub time_zone: String,
    #[diesel(sql_type = Bool)]
    pub write_first: bool,
}

pub async fn user_settings(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<UserSettings> {
    diesel::sql_query(
        "/* user_settings.get */ SELECT COALESCE(s.time_zone, 'UTC') AS time_zone, \
         COALESCE(s.write_first, true) AS write_first \
         FROM (SELECT 1) one LEFT JOIN user_settings s ON s.user_id = $1",
    )
    .bind::<SqlUuid, _>(user_id)
    .get_result(conn)
    .await
}

/// Changes what is given, keeps the rest.
pub async fn set_user_settings(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    time_zone: Option<&str>,
    write_first: Option<bool>,
) -> QueryResult<UserSettings> {
    diesel::sql_query(
        "/* user_settings.set */ INSERT INTO user_settings AS s (user_id, time_zone, write_first) \
         VALUES ($1, COALESCE($2, 'UTC'), COALESCE($3, true)) \
         ON CONFLICT (user_id) DO UPDATE SET time_zone = COALESCE($2, s.time_zone), \
         write_first = COALESCE($3, s.write_first), updated_at = now() \
         RETURNING time_zone, write_first",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Nullable<Text>, _>(time_zone)
    .bind::<Nullable<Bool>, _>(write_first)
    .get_result(conn)
    .await
}

/// One match's settings (defaults when never changed).
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct MatchSettings {
    #[diesel(sql_type = Bool)]
    pub write_first: bool,
    /// `None`: the service's default silence.
    #[diesel(sql_type = Nullable<Integer>)]
    pub write_first_after_s: Option<i32>,
}

pub async fn match_settings(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
) -> QueryResult<MatchSettings> {
    diesel::sql_query(
        "/* match_settings.get */ SELECT COALESCE(s.write_first, true) AS write_first, \
         s.write_first_after_s FROM (SELECT 1) one \
         LEFT JOIN match_settings s ON s.user_id = $1 AND s.character_id = $2",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(character_id)
    .get_result(conn)
    .await
}

/// Sets a match's settings (the match must exist: the foreign key refuses otherwise).
pub async fn set_match_settings(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    character_id: &str,
    write_first: bool,
    after_s: Option<i32>,
) -> QueryResult<MatchSettings> {
    diesel::sql_query(
        "/* match_settings.set */ INSERT INTO match_settings (user_id, character_id, write_first, write_first_after_s) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, character_id) DO UPDATE SET write_first = $3, \
         write_first_after_s = $4, updated_at = now() \
         RETURNING write_first, write_first_after_s",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(character_id)
    .bind::<Bool, _>(write_first)
    .bind::<Nullable<Integer>, _>(after_s)
    .get_result(conn)
    .await
}
