use actix_web::web;
use db_core::queries::users::{LeaderboardEntry, Rank};
use serde::{Deserialize, Serialize};
use service_kit::{ApiResult, AuthUser, Kit};

#[derive(utoipa::ToSchema, utoipa::IntoParams, Deserialize)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    limit: Option<i64>,
}

#[derive(utoipa::ToSchema, Serialize)]
pub struct Leaderboard {
    entries: Vec<LeaderboardEntry>,
    me: Option<Rank>,
}

#[utoipa::path(get, path = "/api/v1/leaderboard", tag = "users", security(("bearer" = [])), params(Params),
    responses((status = 200, body = Leaderboard)))]
pub async fn handle(
    kit: web::Data<Kit>,
    me: AuthUser,
    params: web::Query<Params>,
) -> ApiResult<web::Json<Leaderboard>> {
    let limit = params.limit.unwrap_or(10).clamp(1, 100);
    let entries = kit.store.leaderboard(limit).await?;
    let me = kit.store.rank(me.id).await?;
    Ok(web::Json(Leaderboard { entries, me }))
}
