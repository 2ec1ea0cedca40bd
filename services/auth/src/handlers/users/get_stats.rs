use actix_web::{get, web};
use serde::Serialize;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use crate::handlers::level;

#[derive(utoipa::ToSchema, Serialize)]
pub struct Stats {
    xp: i64,
    level: i64,
    rank: Option<i64>,
    matches: usize,
    unread: i64,
}

/// XP, level, rank, matches and unread messages of the caller.
#[utoipa::path(tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Stats)))]
#[get("/users/me/stats")]
pub async fn get_stats(kit: web::Data<Kit>, me: AuthUser) -> ApiResult<web::Json<Stats>> {
    let profile = kit
        .store
        .users()
        .profile(me.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let matches = kit.store.matches().list(me.id).await?;
    let rank = kit.store.leaderboard().rank(me.id).await?.map(|r| r.rank);
    Ok(web::Json(Stats {
        xp: profile.xp,
        level: level(profile.xp),
        rank,
        matches: matches.len(),
        unread: matches.iter().map(|m| m.unread_count).sum(),
    }))
}
