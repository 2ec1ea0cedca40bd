//! Asking for a photo, following its job, and the gallery.

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use db_core::models::{JobStatus, Photo, PhotoJob};
use db_core::pagination::KeysetPage;
use db_core::store::Enqueued;
use serde::{Deserialize, Serialize};
use service_kit::checks::{CharacterPath, cursor, limit, require_match, valid_text};
use service_kit::contracts::GeneratePhoto;
use service_kit::error::Conflict;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};
use uuid::Uuid;

use crate::jobs::Media;

/// A photo as clients see it: where to download it, not where it is stored.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct PhotoView {
    pub id: i64,
    pub character_id: String,
    pub content_type: String,
    pub width: i32,
    pub height: i32,
    pub prompt: Option<String>,
    pub received_at: DateTime<Utc>,
    /// `GET` it for the image; add `?w=256` for a smaller one.
    pub url: String,
}

impl From<Photo> for PhotoView {
    fn from(p: Photo) -> Self {
        Self {
            url: format!("/api/v1/media/{}", p.id),
            id: p.id,
            character_id: p.character_id,
            content_type: p.content_type,
            width: p.width,
            height: p.height,
            prompt: p.prompt,
            received_at: p.received_at,
        }
    }
}

/// A photo job as clients see it.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct JobView {
    pub id: Uuid,
    pub character_id: String,
    pub prompt: Option<String>,
    pub status: JobStatus,
    pub attempts: i32,
    /// The photo, once the job is done.
    pub photo: Option<PhotoView>,
    /// Why the job failed (a code), once it has.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl JobView {
    fn new(job: PhotoJob, photo: Option<Photo>) -> Self {
        Self {
            error: (job.status == JobStatus::Failed).then(|| "generation_failed".to_owned()),
            id: job.id,
            character_id: job.character_id,
            prompt: job.prompt,
            status: job.status,
            attempts: job.attempts,
            photo: photo.map(PhotoView::from),
            created_at: job.created_at,
            finished_at: job.finished_at,
        }
    }
}

/// Queues a photo; 202 with the job, and its URL in `Location`. The body may be absent (or
/// `null`): the character then chooses what to show.
#[utoipa::path(tag = "photos", security(("bearer" = [])),
    params(CharacterPath), request_body = Option<GeneratePhoto>,
    responses((status = 202, body = JobView, description = "queued"), (status = 404, body = service_kit::error::Problem, description = "no match with this character"),
              (status = 409, body = service_kit::error::Problem, description = "too_many_photo_jobs")))]
#[post("/photos/{character_id}/generate")]
pub async fn generate_photo(
    kit: web::Data<Kit>,
    media: web::Data<Media>,
    me: AuthUser,
    path: web::Path<CharacterPath>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let character = path.id()?;
    let ask: GeneratePhoto = if body.is_empty() {
        GeneratePhoto::default()
    } else {
        serde_json::from_slice::<Option<GeneratePhoto>>(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
            .unwrap_or_default()
    };
    let prompt = ask
        .prompt
        .as_deref()
        .map(|p| valid_text("prompt", p, 500))
        .transpose()?;
    require_match(&kit, me.id, character).await?;
    let max = media.jobs.max_pending;
    let job = match kit
        .store
        .photo_jobs()
        .enqueue(
            me.id,
            character,
            prompt.as_deref(),
            max,
            media.jobs.per_user_per_day,
        )
        .await?
    {
        Enqueued::Queued(job) => job,
        Enqueued::TooManyPending => {
            return Err(ApiError::Conflict(Conflict::TooManyPhotoJobs { max }));
        }
        Enqueued::DailyQuotaSpent { retry_after } => {
            return Err(ApiError::RateLimited { retry_after });
        }
    };
    media.wake.notify_one();
    Ok(HttpResponse::Accepted()
        .insert_header(("location", format!("/api/v1/photos/jobs/{}", job.id)))
        .json(JobView::new(job, None)))
}

#[derive(utoipa::IntoParams, Deserialize)]
#[into_params(parameter_in = Path)]
pub struct JobId {
    /// The job's id, from `Location` or the job itself.
    id: Uuid,
}

/// A photo job of the caller's; 404 for anyone else's.
#[utoipa::path(tag = "photos", security(("bearer" = [])),
    params(JobId), responses((status = 200, body = JobView), (status = 404, body = service_kit::error::Problem)))]
#[get("/photos/jobs/{id}")]
pub async fn get_photo_job(
    kit: web::Data<Kit>,
    me: AuthUser,
    path: web::Path<JobId>,
) -> ApiResult<web::Json<JobView>> {
    let (job, photo) = kit
        .store
        .photo_jobs()
        .get(me.id, path.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(web::Json(JobView::new(job, photo)))
}

#[derive(utoipa::IntoParams, Deserialize)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GalleryParams {
    /// Photos per page (1–100, default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// The `next` cursor of the page before.
    before: Option<String>,
}

/// The photos a character has sent the caller, newest first (at most 100 a page); `next` is
/// the cursor of the page after.
#[utoipa::path(tag = "photos", security(("bearer" = [])),
    params(CharacterPath, GalleryParams),
    responses((status = 200, body = KeysetPage<PhotoView>), (status = 404, body = service_kit::error::Problem, description = "no match with this character")))]
#[get("/photos/{character_id}")]
pub async fn list_photos(
    kit: web::Data<Kit>,
    me: AuthUser,
    path: web::Path<CharacterPath>,
    params: web::Query<GalleryParams>,
) -> ApiResult<HttpResponse> {
    let character = path.id()?;
    let before = cursor(params.before.as_deref())?;
    let limit = limit("limit", params.limit, 20, 100)?;
    // The first page as the cache holds it (no decoding and encoding again), and a cached page
    // proves the match.
    let body = kit
        .store
        .photos()
        .page_body(me.id, character, before, limit, PhotoView::from)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body))
}
