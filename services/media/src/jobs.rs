//! The job runner. Every replica runs a few workers; each claims the oldest runnable job from
//! PostgreSQL (see `db_core::PhotoJobs`), renews its lease while the image is made and
//! stored, then delivers the photo in one transaction. A worker that dies leaves its lease to
//! run out; the job is then taken over by whichever worker claims next, on any replica.

use std::sync::Arc;
use std::time::{Duration, Instant};

use db_core::models::{NewPhoto, PhotoJob};
use service_kit::Kit;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::generator::{Generator, PhotoRequest};
use crate::storage::Storage;

#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Workers per replica (`MEDIA_WORKERS`).
    pub workers: usize,
    /// How long a claim holds a job without renewal (`MEDIA_JOB_LEASE_MS`).
    pub lease: Duration,
    /// How often an idle worker looks for work (`MEDIA_POLL_MS`); a job queued on the same
    /// replica wakes a worker at once.
    pub poll: Duration,
    /// Attempts before a job fails for good (`MEDIA_MAX_ATTEMPTS`).
    pub max_attempts: i32,
    /// Wait before a failed attempt is tried again, doubled each attempt.
    pub backoff: Duration,
    /// Size of the photos asked for.
    pub width: u32,
    pub height: u32,
    /// Jobs a user may have waiting or running at once (`MEDIA_MAX_PENDING`).
    pub max_pending: i64,
    /// Photos one user may ask for in any 24 hours (`MEDIA_PHOTOS_PER_USER_PER_DAY`): an image
    /// API and the disk cannot be drained by one account.
    pub per_user_per_day: i64,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            max_attempts: 3,
            backoff: Duration::from_secs(2),
            width: 512,
            height: 512,
            max_pending: 5,
            per_user_per_day: 50,
        }
    }
}

/// What the handlers and the workers share.
#[derive(Clone)]
pub struct Media {
    pub storage: Storage,
    pub generator: Arc<dyn Generator>,
    pub jobs: JobConfig,
    /// Wakes a worker of this replica when a job is queued here.
    pub wake: Arc<Notify>,
}

impl Media {
    pub fn new(storage: Storage, generator: Arc<dyn Generator>, jobs: JobConfig) -> Self {
        Self {
            storage,
            generator,
            jobs,
            wake: Arc::new(Notify::new()),
        }
    }
}

/// The running workers of one replica.
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    pub fn spawn(kit: Kit, media: Media) -> Self {
        let (stop, rx) = watch::channel(false);
        let mut tasks: Vec<JoinHandle<()>> = (0..media.jobs.workers.max(1))
            .map(|_| tokio::spawn(work(kit.clone(), media.clone(), rx.clone())))
            .collect();
        tasks.push(tokio::spawn(sweep(kit, media, rx)));
        Self { stop, tasks }
    }

    /// Stops claiming; jobs in hand get `grace` to finish, after which they are dropped and
    /// their leases left to run out (another replica finishes them).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("photo jobs still running at shutdown; their leases will run out");
        }
    }
}

async fn work(kit: Kit, media: Media, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let claimed = kit.store.photo_jobs().claim(media.jobs.lease).await;
        match claimed {
            Ok(Some(job)) => {
                let span = tracing::info_span!("photo_job", job = %job.id, attempt = job.attempts);
                run(&kit, &media, job).instrument(span).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot claim photo jobs"),
        }
        tokio::select! {
            () = media.wake.notified() => {}
            () = tokio::time::sleep(media.jobs.poll) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Files deleted from storage per round.
const SWEEP_BATCH: i64 = 100;

/// Deletes from storage the files of photos that are gone (an unmatch, an account deletion:
/// the database queues their keys in the same transaction, see `storage_deletions`), with
/// their smaller renditions; then forgets the entries. Deleting a file twice is harmless, so
/// replicas sweep side by side; a file that cannot be deleted now is tried again next round.
async fn sweep(kit: Kit, media: Media, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let mut more = false;
        match kit.store.photos().files_to_delete(SWEEP_BATCH).await {
            Ok(due) => {
                let mut done = Vec::with_capacity(due.len());
                for (id, key) in &due {
                    if delete_files(&media, key).await {
                        done.push(*id);
                    }
                }
                if !done.is_empty() {
                    match kit.store.photos().files_deleted(&done).await {
                        Ok(n) => {
                            tracing::info!(files = n, "deleted the files of photos that are gone")
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot forget deleted files"),
                    }
                }
                more = due.len() as i64 == SWEEP_BATCH && done.len() == due.len();
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the files to delete"),
        }
        if more {
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(media.jobs.poll) => {}
            _ = stop.changed() => {}
        }
    }
}

/// A photo's file and every rendition made of it.
async fn delete_files(media: &Media, key: &str) -> bool {
    let mut all = true;
    for k in crate::handlers::media::stored_files(key) {
        if let Err(e) = media.storage.delete(&k).await {
            tracing::warn!(key = %k, error = %e, "cannot delete a stored file");
            all = false;
        }
    }
    all
}

/// Makes the image and stores it, renewing the lease meanwhile. `Ok(None)` if the lease was
/// lost (another worker took the job over).
async fn produce(kit: &Kit, media: &Media, job: &PhotoJob) -> anyhow::Result<Option<NewPhoto>> {
    let character = kit
        .store
        .characters()
        .visible(job.user_id, &job.character_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("character {} is gone", job.character_id))?;
    let req = PhotoRequest {
        character: (*character).clone(),
        prompt: job.prompt.clone(),
        seed: {
            let (hi, lo) = job.id.as_u64_pair();
            hi ^ lo
        },
        width: media.jobs.width,
        height: media.jobs.height,
    };
    let make = async {
        let image = media.generator.generate(&req).await?;
        let key = format!(
            "photos/{}/{}-{}.{}",
            job.user_id,
            job.id,
            job.attempts,
            image.extension()
        );
        media.storage.put(&key, image.bytes.clone()).await?;
        Ok::<_, anyhow::Error>(NewPhoto {
            user_id: job.user_id,
            character_id: job.character_id.clone(),
            storage_key: key,
            content_type: image.content_type.to_owned(),
            width: i32::try_from(image.width)?,
            height: i32::try_from(image.height)?,
            prompt: job.prompt.clone(),
        })
    };
    tokio::pin!(make);
    let mut renew = tokio::time::interval(media.jobs.lease / 3);
    renew.tick().await;
    loop {
        tokio::select! {
            made = &mut make => return made.map(Some),
            _ = renew.tick() => {
                if !kit.store.photo_jobs().renew(job, media.jobs.lease).await? {
                    return Ok(None);
                }
            }
        }
    }
}

fn caption(job: &PhotoJob) -> String {
    match &job.prompt {
        Some(p) => format!("📷 {p}"),
        None => "📷 Une photo pour toi".to_owned(),
    }
}

async fn run(kit: &Kit, media: &Media, job: PhotoJob) {
    let started = Instant::now();
    let e: anyhow::Error = match produce(kit, media, &job).await {
        Ok(Some(photo)) => match kit
            .store
            .photo_jobs()
            .deliver(&job, &photo, &caption(&job))
            .await
        {
            Ok(Some(d)) => {
                tracing::info!(
                    photo = d.photo.id,
                    ms = started.elapsed().as_millis() as u64,
                    generator = media.generator.name(),
                    "photo delivered"
                );
                return;
            }
            Ok(None) => {
                tracing::info!("photo job taken over by another worker; dropping this attempt");
                let _ = media.storage.delete(&photo.storage_key).await;
                return;
            }
            Err(e) => e.into(),
        },
        Ok(None) => {
            tracing::info!("lease lost while working; another worker has the job");
            return;
        }
        Err(e) => e,
    };
    tracing::warn!(error = %e, "photo attempt failed");
    let backoff = media
        .jobs
        .backoff
        .saturating_mul(1 << job.attempts.clamp(1, 8).saturating_sub(1));
    let gave_up = kit
        .store
        .photo_jobs()
        .give_up(&job, &e.to_string(), backoff, media.jobs.max_attempts)
        .await;
    if let Err(e) = gave_up {
        tracing::warn!(error = %e, "cannot record the failed attempt; its lease will run out");
    }
}
