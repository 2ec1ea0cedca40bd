use actix_web::web;
use db_core::queries::messages::{self, MAX_SEARCH_RESULTS, MessageHit};
use serde::Deserialize;
use service_kit::{ApiResult, AuthUser, Kit};

use crate::handlers::valid_text;

#[derive(utoipa::IntoParams, Deserialize)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    q: String,
    character_id: Option<String>,
    limit: Option<i64>,
}

/// French full-text search over the caller's messages, best first, highlighted, at most 50.
#[utoipa::path(get, path = "/api/v1/search/messages", tag = "search", security(("bearer" = [])), params(Params), responses((status = 200, body = Vec<MessageHit>)))]
pub async fn handle(
    kit: web::Data<Kit>,
    me: AuthUser,
    params: web::Query<Params>,
) -> ApiResult<web::Json<Vec<MessageHit>>> {
    let q = valid_text("q", &params.q, 200)?;
    let mut conn = kit.store.db.read().await?;
    let limit = params.limit.unwrap_or(20).clamp(1, MAX_SEARCH_RESULTS);
    Ok(web::Json(
        messages::search(&mut conn, me.id, &q, params.character_id.as_deref(), limit).await?,
    ))
}
