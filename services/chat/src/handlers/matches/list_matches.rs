use actix_web::{get, web};
use db_core::models::MatchSummary;
use service_kit::{ApiResult, AuthUser, Kit};

/// Each match with its affection, last message and unread count (one query on a miss, cached).
#[utoipa::path(tag = "matches", security(("bearer" = [])), responses((status = 200, body = Vec<MatchSummary>)))]
#[get("/matches")]
pub async fn list_matches(
    kit: web::Data<Kit>,
    me: AuthUser,
) -> ApiResult<web::Json<Vec<MatchSummary>>> {
    Ok(web::Json(kit.store.matches().list(me.id).await?))
}
