//! The media service's route table, and its settings from the environment.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use crate::generator::{Builtin, Dialect, Generator, Http, HttpConfig};
use crate::handlers::characters::{
    create_character, delete_avatar, delete_character, export_card, get_avatar, import_card,
    put_avatar, update_character,
};
use crate::handlers::export::export_account;
use crate::handlers::media::download_photo;
use crate::handlers::photos::{generate_photo, get_photo_job, list_photos};
use crate::jobs::{JobConfig, Media};
use crate::storage::Storage;
use service_kit::ApiConfig;
use utoipa_actix_web::scope;

use service_kit::config::{var as env, var_or as num};

/// The service's settings: `MEDIA_STORE_URL` (default `.dev/media`, a local directory),
/// `MEDIA_PROVIDER` (`builtin`, the default; `openai` or `stable-diffusion` with
/// `MEDIA_API_URL`, `MEDIA_API_KEY`, `MEDIA_MODEL`, `MEDIA_API_TIMEOUT_MS`),
/// `MEDIA_RENDER_DELAY_MS` (paces builtin), and the job settings of [`JobConfig`].
pub fn media_from_env() -> anyhow::Result<Media> {
    let storage =
        Storage::from_url(&env("MEDIA_STORE_URL").unwrap_or_else(|| ".dev/media".into()))?;
    let builtin = Builtin {
        delay: Duration::from_millis(num("MEDIA_RENDER_DELAY_MS", 0)?),
    };
    let dialect = match env("MEDIA_PROVIDER").as_deref() {
        None | Some("builtin") => None,
        Some("openai") => Some(Dialect::OpenAi),
        Some("stable-diffusion") => Some(Dialect::StableDiffusion),
        Some(other) => {
            anyhow::bail!("MEDIA_PROVIDER={other:?}: expected builtin, openai or stable-diffusion")
        }
    };
    let generator: Arc<dyn Generator> = match dialect {
        None => Arc::new(builtin),
        Some(dialect) => Arc::new(Http::new(HttpConfig {
            dialect,
            base_url: env("MEDIA_API_URL")
                .ok_or_else(|| anyhow::anyhow!("MEDIA_PROVIDER needs MEDIA_API_URL"))?,
            model: env("MEDIA_MODEL"),
            api_key: env("MEDIA_API_KEY").map(service_kit::Secret::new),
            timeout: Duration::from_millis(num("MEDIA_API_TIMEOUT_MS", 120_000)?),
        })?),
    };
    let d = JobConfig::default();
    let jobs = JobConfig {
        workers: num("MEDIA_WORKERS", d.workers)?,
        lease: Duration::from_millis(num("MEDIA_JOB_LEASE_MS", d.lease.as_millis() as u64)?),
        poll: Duration::from_millis(num("MEDIA_POLL_MS", d.poll.as_millis() as u64)?),
        max_attempts: num("MEDIA_MAX_ATTEMPTS", d.max_attempts)?,
        backoff: Duration::from_millis(num(
            "MEDIA_RETRY_BACKOFF_MS",
            d.backoff.as_millis() as u64,
        )?),
        width: num("MEDIA_PHOTO_WIDTH", d.width)?,
        height: num("MEDIA_PHOTO_HEIGHT", d.height)?,
        max_pending: num("MEDIA_MAX_PENDING", d.max_pending)?,
        per_user_per_day: num("MEDIA_PHOTOS_PER_USER_PER_DAY", d.per_user_per_day)?,
    };
    anyhow::ensure!(
        jobs.lease >= Duration::from_millis(300),
        "MEDIA_JOB_LEASE_MS must be at least 300"
    );
    Ok(Media::new(storage, generator, jobs))
}

/// The whole route table of the media service.
pub fn configure(cfg: &mut ApiConfig) {
    cfg.service(
        scope("/api/v1")
            .service(get_photo_job)
            .service(generate_photo)
            .service(list_photos)
            .service(download_photo)
            .service(import_card)
            .service(create_character)
            .service(update_character)
            .service(delete_character)
            .service(put_avatar)
            .service(get_avatar)
            .service(delete_avatar)
            .service(export_card)
            .service(export_account),
    );
}

/// The app data the handlers need.
pub fn data(media: Media) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let media = web::Data::new(media);
    move |cfg| {
        cfg.app_data(media.clone());
    }
}
