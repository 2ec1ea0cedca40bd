//! `GET /api/v1/users/me/export`: everything the account holds, as a zip archive streamed
//! while it is written (see `crate::export`).

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};
use service_kit::{ApiError, ApiResult, AuthUser, Kit};
use tokio::sync::mpsc;

use crate::export::{Archive, CHANNEL_CHUNKS, Cx, write_all};
use crate::jobs::Media;

/// Exports one account may start per hour: each reads all of it, images included.
pub const EXPORTS_PER_HOUR: u64 = 5;

/// Downloads everything the caller's account holds as a zip archive: `profile.json`,
/// `matches.json`, each conversation as JSON and as a Markdown transcript, `memories.json`,
/// the photos with their images, and a README. Only the caller's own data; at most
/// 5 exports an hour (429 with `Retry-After` past it).
#[utoipa::path(tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "the archive (streamed as it is written)", content_type = "application/zip"),
              (status = 404, body = service_kit::error::Problem, description = "the account is gone")),
    extensions(("x-dream-timeout-seconds" = json!(1800))))]
#[get("/users/me/export")]
pub async fn export_account(
    kit: web::Data<Kit>,
    media: web::Data<Media>,
    me: AuthUser,
) -> ApiResult<HttpResponse> {
    let limit = kit
        .store
        .limits()
        .hit("export", &me.id.to_string(), 3600, EXPORTS_PER_HOUR)
        .await;
    if limit.exceeded {
        return Err(ApiError::RateLimited {
            retry_after: limit.reset_after,
        });
    }
    let cx = Cx::load(kit.get_ref().clone(), media.get_ref().clone(), me.id)
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let filename = format!("dream-export-{}.zip", cx.started.format("%Y-%m-%d"));
    let (tx, mut rx) = mpsc::channel(CHANNEL_CHUNKS);
    let user = me.id;
    actix_web::rt::spawn(async move {
        let started = std::time::Instant::now();
        let archive = Archive::new(tx.clone());
        match write_all(&cx, archive).await {
            Ok(bytes) => tracing::info!(
                %user,
                bytes,
                ms = started.elapsed().as_millis() as u64,
                "account exported"
            ),
            Err(e) => {
                // The head is sent: the only way left to say it failed is to cut the body.
                tracing::warn!(%user, error = %e, "export cut short");
                let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
            }
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body))
}
