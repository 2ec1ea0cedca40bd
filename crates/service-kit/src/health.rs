//! `/health` (the process is up; on both listeners), and on the admin listener only: `/ready`
//! (it can serve: PostgreSQL answers; Redis down only degrades it), `/metrics`, and the recent
//! slow queries for the dashboard (their bind parameters can hold user data).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::Kit;
use crate::error::{ApiError, ApiResult};

/// The admin listener's routes.
pub fn admin(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics))
        .route("/internal/slow-queries", web::get().to(slow_queries));
}

pub async fn health(kit: web::Data<Kit>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "service": kit.service }))
}

async fn ready(kit: web::Data<Kit>) -> ApiResult<HttpResponse> {
    let db = tokio::time::timeout(Duration::from_secs(2), kit.store.ping_database()).await;
    if !matches!(db, Ok(Ok(()))) {
        return Err(ApiError::Unavailable { retry_after: 1 });
    }
    let redis = match kit.store.ping_redis().await {
        None => "disabled",
        Some(true) => "up",
        Some(false) => "down",
    };
    let status = if redis == "down" { "degraded" } else { "ready" };
    Ok(HttpResponse::Ok().json(
        json!({ "status": status, "service": kit.service, "postgres": "up", "redis": redis }),
    ))
}

async fn metrics(kit: web::Data<Kit>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::render(&kit))
}

async fn slow_queries() -> HttpResponse {
    HttpResponse::Ok().json(db_core::instrumentation::recent_slow_queries())
}
