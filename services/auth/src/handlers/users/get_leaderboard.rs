use actix_web::{get, web};
use db_core::models::{LeaderboardEntry, Rank};
use serde::{Deserialize, Serialize};
use service_kit::{ApiResult, AuthUser, Kit};

#[derive(utoipa::ToSchema, utoipa::IntoParams, Deserialize)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// Entries (1–100, default 10).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

#[derive(utoipa::ToSchema, Serialize)]
pub struct Leaderboard {
    entries: Vec<LeaderboardEntry>,
    me: Option<Rank>,
}

/// The users with the most XP, and the caller's rank.
#[utoipa::path(tag = "users", security(("bearer" = [])), params(Params),
    responses((status = 200, body = Leaderboard)))]
#[get("/leaderboard")]
pub async fn get_leaderboard(
    kit: web::Data<Kit>,
    me: AuthUser,
    params: web::Query<Params>,
) -> ApiResult<web::Json<Leaderboard>> {
    let limit = service_kit::checks::limit("limit", params.limit, 10, 100)?;
    let entries = kit.store.leaderboard().top(limit).await?;
    let me = kit.store.leaderboard().rank(me.id).await?;
    Ok(web::Json(Leaderboard { entries, me }))
}
