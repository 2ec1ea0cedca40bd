//! `GET /api/v1/media/{photo_id}`: the image itself, to its owner only, with an `ETag` so a
//! client that has it already gets a 304, and smaller renditions made once on demand.

use std::io::Cursor;

use actix_web::http::header::{self, EntityTag, Header, IfNoneMatch};
use actix_web::{HttpRequest, HttpResponse, get, web};
use bytes::Bytes;
use serde::Deserialize;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use crate::jobs::Media;

/// The widths a smaller rendition may have.
pub const RENDITION_WIDTHS: [u32; 4] = [64, 128, 256, 512];

/// Where the rendition of the photo stored under `key` at `width` is kept.
pub fn rendition_key(key: &str, width: u32) -> String {
    format!("{key}.w{width}.jpg")
}

/// A photo's stored file and every rendition that may have been made of it.
pub fn stored_files(key: &str) -> impl Iterator<Item = String> + '_ {
    std::iter::once(key.to_owned()).chain(RENDITION_WIDTHS.iter().map(|w| rendition_key(key, *w)))
}
/// A photo never changes once delivered; the owner's browser may keep it a day.
const CACHE_CONTROL: &str = "private, max-age=86400";

#[derive(utoipa::IntoParams, Deserialize)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// Width of a smaller rendition: 64, 128, 256 or 512 (never larger than the photo).
    #[param(schema_with = rendition_widths)]
    w: Option<u32>,
}

#[derive(utoipa::IntoParams, Deserialize)]
#[into_params(parameter_in = Path)]
pub struct PhotoId {
    /// The photo's id.
    #[param(minimum = 1)]
    photo_id: i64,
}

fn rendition_widths() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .enum_values(Some(RENDITION_WIDTHS))
        .build()
}

/// Scales `original` down to `width` (keeping its proportions) as a JPEG.
fn rendition(original: &[u8], width: u32) -> anyhow::Result<Bytes> {
    let img = image::ImageReader::new(Cursor::new(original))
        .with_guessed_format()?
        .decode()?;
    let height =
        (u64::from(img.height()) * u64::from(width) / u64::from(img.width().max(1))).max(1) as u32;
    let small = img
        .resize_exact(width, height, image::imageops::FilterType::Triangle)
        .to_rgb8();
    crate::generator::jpeg(&small, 85)
}

/// The image of one of the caller's photos.
#[utoipa::path(tag = "photos", security(("bearer" = [])),
    params(PhotoId, Params, ("If-None-Match" = Option<String>, Header, description = "the ETag of the copy the client has")),
    responses((status = 200, description = "the image (PNG, JPEG or WebP)", content_type = "image/*"),
              (status = 304, description = "the client's copy is current"),
              (status = 404, body = service_kit::error::Problem)))]
#[get("/media/{photo_id}")]
pub async fn download_photo(
    kit: web::Data<Kit>,
    media: web::Data<Media>,
    me: AuthUser,
    path: web::Path<PhotoId>,
    params: web::Query<Params>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    if let Some(w) = params.w
        && !RENDITION_WIDTHS.contains(&w)
    {
        return Err(ApiError::validation("w", "must be 64, 128, 256 or 512"));
    }
    let photo = kit
        .store
        .photos()
        .get(me.id, path.photo_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let width = params.w.filter(|w| i64::from(*w) < i64::from(photo.width));
    let etag = EntityTag::new_strong(match width {
        Some(w) => format!("p{}-w{w}", photo.id),
        None => format!("p{}", photo.id),
    });
    if let Ok(inm) = IfNoneMatch::parse(&req) {
        let current = match &inm {
            IfNoneMatch::Any => true,
            IfNoneMatch::Items(tags) => tags.iter().any(|t| t.weak_eq(&etag)),
        };
        if current {
            return Ok(HttpResponse::NotModified()
                .insert_header(header::ETag(etag))
                .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
                .finish());
        }
    }
    let (bytes, content_type) = match width {
        None => (
            media
                .storage
                .get(&photo.storage_key)
                .await
                .map_err(ApiError::internal)?
                .ok_or(ApiError::NotFound)?,
            photo.content_type.clone(),
        ),
        Some(w) => {
            let key = rendition_key(&photo.storage_key, w);
            let stored = media.storage.get(&key).await.map_err(ApiError::internal)?;
            let bytes = match stored {
                Some(b) => b,
                None => {
                    let original = media
                        .storage
                        .get(&photo.storage_key)
                        .await
                        .map_err(ApiError::internal)?
                        .ok_or(ApiError::NotFound)?;
                    let small = web::block(move || rendition(&original, w))
                        .await
                        .map_err(ApiError::internal)?
                        .map_err(ApiError::internal)?;
                    media
                        .storage
                        .put(&key, small.clone())
                        .await
                        .map_err(ApiError::internal)?;
                    small
                }
            };
            (bytes, "image/jpeg".to_owned())
        }
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(header::ETag(etag))
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(bytes))
}
