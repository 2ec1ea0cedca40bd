//! Photo generation jobs: a queue in PostgreSQL that any number of media replicas share.
//!
//! A worker claims the oldest runnable job with `FOR UPDATE SKIP LOCKED` (two workers never
//! claim the same one) and holds it under a lease that it renews while it works. Claiming bumps
//! the job's attempt number; the attempt is the worker's proof of ownership. If the worker
//! dies, its lease runs out and the next claim takes the job over with a new attempt number,
//! after which the dead attempt can no longer finish it. Finishing inserts the photo and its
//! chat message and marks the job done in one transaction, so a photo is delivered once.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{HotQuery, Prepared, messages, photos};
use crate::models::{JobStatus, Message, NewMessage, NewPhoto, Photo, PhotoJob};
use crate::schema::photo_jobs;

const COLUMNS: &str = "id, user_id, character_id, prompt, status, attempts, lease_until, \
                       run_after, photo_id, error, created_at, finished_at";

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What asking for a photo came to.
#[derive(Debug)]
pub enum Enqueued {
    Queued(PhotoJob),
    /// The user has `max_pending` photos on their way already.
    TooManyPending,
    /// The user asked for `per_day` photos in the last 24 hours; the oldest ages out after
    /// `retry_after` seconds.
    DailyQuotaSpent {
        retry_after: u64,
    },
}

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    pending: i64,
    #[diesel(sql_type = BigInt)]
    today: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    oldest_age_s: Option<i64>,
}

/// Queues a job unless the user already has `max_pending` jobs waiting or running, or asked for
/// `per_day` in the last 24 hours. Exact under concurrency: the counts and the insert run under
/// a per-user transaction lock, so requests racing for the last place are served one after the
/// other.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    user_id: Uuid,
    character_id: &str,
    prompt: Option<&str>,
    max_pending: i64,
    per_day: i64,
) -> QueryResult<Enqueued> {
    conn.transaction(async |conn| {
        diesel::sql_query(format!(
            "/* photo_jobs.enqueue_lock */ SELECT pg_advisory_xact_lock({LOCK_CLASS}, hashtext($1::text))"
        ))
        .bind::<SqlUuid, _>(user_id)
        .execute(conn)
        .await?;
        let counts: Counts = diesel::sql_query(
            "/* photo_jobs.counts */ SELECT \
             count(*) FILTER (WHERE status IN ('queued', 'running')) AS pending, \
             count(*) FILTER (WHERE created_at > now() - interval '1 day') AS today, \
             extract(epoch FROM now() - min(created_at) FILTER (WHERE created_at > now() - interval '1 day'))::bigint AS oldest_age_s \
             FROM photo_jobs WHERE user_id = $1 \
             AND (status IN ('queued', 'running') OR created_at > now() - interval '1 day')",
        )
        .bind::<SqlUuid, _>(user_id)
        .get_result(conn)
        .await?;
        if counts.pending >= max_pending {
            return Ok(Enqueued::TooManyPending);
        }
        if counts.today >= per_day {
            let age = counts.oldest_age_s.unwrap_or(0).clamp(0, 86_400) as u64;
            return Ok(Enqueued::DailyQuotaSpent {
                retry_after: (86_400 - age).max(1),
            });
        }
        diesel::sql_query(format!(
            "/* photo_jobs.enqueue */ INSERT INTO photo_jobs (id, user_id, character_id, prompt) \
             VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
        ))
        .bind::<SqlUuid, _>(id)
        .bind::<SqlUuid, _>(user_id)
        .bind::<Text, _>(character_id)
        .bind::<Nullable<Text>, _>(prompt)
        .get_result(conn)
        .await
        .map(Enqueued::Queued)
    })
    .await
}

/// The first key of the advisory locks that serialize one user's photo requests.
const LOCK_CLASS: i32 = 0x70_68_6f; // "pho"

/// One job, only if it belongs to `user_id`.
pub async fn get(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<PhotoJob>> {
    photo_jobs::table
        .filter(photo_jobs::id.eq(id))
        .filter(photo_jobs::user_id.eq(user_id))
        .select(PhotoJob::as_select())
        .first(conn)
        .await
        .optional()
}

/// The claim statement: the oldest runnable job (queued and due, or running under a lease that
/// ran out), skipping jobs another worker is claiming, on `photo_jobs_queue_idx`.
pub fn claim_query(lease: Duration) -> HotQuery {
    diesel::sql_query(format!(
        "/* photo_jobs.claim */ UPDATE photo_jobs SET status = 'running', attempts = attempts + 1, \
         lease_until = now() + $1 * interval '1 millisecond' \
         WHERE id = (SELECT id FROM photo_jobs WHERE status IN ('queued', 'running') \
         AND run_after <= now() AND (status = 'queued' OR lease_until < now()) \
         ORDER BY run_after, created_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}"
    ))
    .into_boxed()
    .bind::<BigInt, _>(millis(lease))
}

/// Claims the next job for `lease`; `None` when there is nothing to do.
pub async fn claim(conn: &mut AsyncPgConnection, lease: Duration) -> QueryResult<Option<PhotoJob>> {
    Prepared(claim_query(lease))
        .get_result(conn)
        .await
        .optional()
}

/// Extends the lease of the attempt that holds the job; `false` if it no longer does.
pub async fn renew(
    conn: &mut AsyncPgConnection,
    job: &PhotoJob,
    lease: Duration,
) -> QueryResult<bool> {
    diesel::sql_query(
        "/* photo_jobs.renew */ UPDATE photo_jobs SET lease_until = now() + $3 * interval '1 millisecond' \
         WHERE id = $1 AND attempts = $2 AND status = 'running'",
    )
    .bind::<SqlUuid, _>(job.id)
    .bind::<Integer, _>(job.attempts)
    .bind::<BigInt, _>(millis(lease))
    .execute(conn)
    .await
    .map(|n| n == 1)
}

/// Gives an attempt up: the job waits `backoff` and runs again, or fails for good once it has
/// had `max_attempts`. Returns the job as it is now, `None` if the attempt no longer held it.
pub async fn give_up(
    conn: &mut AsyncPgConnection,
    job: &PhotoJob,
    error: &str,
    backoff: Duration,
    max_attempts: i32,
) -> QueryResult<Option<PhotoJob>> {
    diesel::sql_query(format!(
        "/* photo_jobs.give_up */ UPDATE photo_jobs SET \
         status = CASE WHEN attempts >= $3 THEN 'failed' ELSE 'queued' END, \
         finished_at = CASE WHEN attempts >= $3 THEN now() END, \
         run_after = now() + $4 * interval '1 millisecond', lease_until = NULL, error = $5 \
         WHERE id = $1 AND attempts = $2 AND status = 'running' RETURNING {COLUMNS}"
    ))
    .bind::<SqlUuid, _>(job.id)
    .bind::<Integer, _>(job.attempts)
    .bind::<Integer, _>(max_attempts)
    .bind::<BigInt, _>(millis(backoff))
    .bind::<Text, _>(error)
    .get_result(conn)
    .await
    .optional()
}

/// What finishing a job delivered.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub photo: Photo,
    pub message: Message,
}

/// Finishes the attempt that holds `job`: records the photo, the chat message that carries it
/// and the job's end in one transaction. `None` (and nothing written) if another attempt has
/// taken the job over.
pub async fn complete(
    conn: &mut AsyncPgConnection,
    job: &PhotoJob,
    photo: &NewPhoto,
    caption: &str,
) -> QueryResult<Option<Delivered>> {
    conn.transaction(async |conn| {
        let held: Option<Uuid> = photo_jobs::table
            .filter(photo_jobs::id.eq(job.id))
            .filter(photo_jobs::attempts.eq(job.attempts))
            .filter(photo_jobs::status.eq(JobStatus::Running))
            .select(photo_jobs::id)
            .for_update()
            .first(conn)
            .await
            .optional()?;
        if held.is_none() {
            return Ok(None);
        }
        let photo = photos::insert(conn, photo).await?;
        let mut new = NewMessage::new(
            job.user_id,
            job.character_id.as_str(),
            crate::models::Sender::Character,
            caption,
        );
        new.photo_id = Some(photo.id);
        let message = messages::insert(conn, &new).await?;
        diesel::update(photo_jobs::table.find(job.id))
            .set((
                photo_jobs::status.eq(JobStatus::Done),
                photo_jobs::photo_id.eq(photo.id),
                photo_jobs::finished_at.eq(diesel::dsl::now),
                photo_jobs::lease_until.eq(None::<chrono::DateTime<chrono::Utc>>),
                photo_jobs::error.eq(None::<String>),
            ))
            .execute(conn)
            .await?;
        Ok(Some(Delivered { photo, message }))
    })
    .await
}

/// Jobs waiting or running, for the dashboard.
pub async fn backlog(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    photo_jobs::table
        .filter(photo_jobs::status.eq_any([JobStatus::Queued, JobStatus::Running]))
        .count()
        .get_result(conn)
        .await
}
