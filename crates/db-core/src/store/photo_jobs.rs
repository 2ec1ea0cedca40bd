//! Photo jobs: queued in PostgreSQL, claimed under a lease by any replica's workers, delivered
//! exactly once (the photo, the message carrying it and the job's end in one transaction).

use std::time::Duration;

use uuid::Uuid;

use super::Shared;
use crate::models::{NewPhoto, Photo, PhotoJob};
use crate::pool::DbError;
use crate::queries::{photo_jobs, photos};

pub use crate::queries::photo_jobs::{Delivered, Enqueued};

pub struct PhotoJobs<'s>(pub(super) &'s Shared);

impl PhotoJobs<'_> {
    /// Queues a job unless the user already has `max_pending` on their way or asked for
    /// `per_day` in the last 24 hours (both exact under concurrency).
    pub async fn enqueue(
        &self,
        user: Uuid,
        character: &str,
        prompt: Option<&str>,
        max_pending: i64,
        per_day: i64,
    ) -> Result<Enqueued, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(photo_jobs::enqueue(
            &mut conn,
            Uuid::now_v7(),
            user,
            character,
            prompt,
            max_pending,
            per_day,
        )
        .await?)
    }

    /// A job of the user's, with its photo once delivered.
    pub async fn get(
        &self,
        user: Uuid,
        id: Uuid,
    ) -> Result<Option<(PhotoJob, Option<Photo>)>, DbError> {
        let mut conn = self.0.db.read().await?;
        let Some(job) = photo_jobs::get(&mut conn, user, id).await? else {
            return Ok(None);
        };
        let photo = match job.photo_id {
            Some(p) => photos::get(&mut conn, user, p).await?,
            None => None,
        };
        Ok(Some((job, photo)))
    }

    /// The next job to work on, held for `lease`; `None` when there is nothing to do.
    pub async fn claim(&self, lease: Duration) -> Result<Option<PhotoJob>, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(photo_jobs::claim(&mut conn, lease).await?)
    }

    /// Extends the lease; false when this attempt no longer holds the job.
    pub async fn renew(&self, job: &PhotoJob, lease: Duration) -> Result<bool, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(photo_jobs::renew(&mut conn, job, lease).await?)
    }

    /// Gives an attempt up (retried after `backoff`, or failed after `max_attempts`).
    pub async fn give_up(
        &self,
        job: &PhotoJob,
        error: &str,
        backoff: Duration,
        max_attempts: i32,
    ) -> Result<Option<PhotoJob>, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(photo_jobs::give_up(&mut conn, job, error, backoff, max_attempts).await?)
    }

    /// Finishes the attempt that holds `job` and updates what the new photo and its message
    /// touch. `None` if the attempt no longer held the job (nothing written).
    pub async fn deliver(
        &self,
        job: &PhotoJob,
        photo: &NewPhoto,
        caption: &str,
    ) -> Result<Option<Delivered>, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let delivered = photo_jobs::complete(&mut conn, job, photo, caption).await?;
        drop(conn);
        if let Some(d) = &delivered {
            s.cache
                .invalidate_gallery(job.user_id, &job.character_id)
                .await;
            super::conversations::after_new_message(s, &d.message).await;
            s.settle().await;
        }
        Ok(delivered)
    }

    /// Jobs waiting or running (the dashboard).
    pub async fn backlog(&self) -> Result<i64, DbError> {
        let mut conn = self.0.db.read().await?;
        Ok(photo_jobs::backlog(&mut conn).await?)
    }
}
