use actix_web::{HttpResponse, web};
use db_core::queries::memories;
use serde::Deserialize;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use crate::handlers::{cursor, valid_text};

#[derive(utoipa::IntoParams, Deserialize)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    character_id: Option<String>,
    q: Option<String>,
    limit: Option<i64>,
    before: Option<String>,
}

/// With `q`: a ranked search (all characters, or one). Without: one character's memories,
/// newest first, keyset-paged.
#[utoipa::path(get, path = "/api/v1/memories", tag = "memories", security(("bearer" = [])), params(Params), responses((status = 200, description = "with q: [MemoryHit]; without: a KeysetPage of Memory")))]
pub async fn handle(
    kit: web::Data<Kit>,
    me: AuthUser,
    params: web::Query<Params>,
) -> ApiResult<HttpResponse> {
    let limit = params.limit.unwrap_or(20);
    let mut conn = kit.store.db.read().await?;
    if let Some(q) = &params.q {
        let q = valid_text("q", q, 200)?;
        let hits =
            memories::search(&mut conn, me.id, &q, params.character_id.as_deref(), limit).await?;
        return Ok(HttpResponse::Ok().json(hits));
    }
    let character = params
        .character_id
        .as_deref()
        .ok_or_else(|| ApiError::validation("character_id", "required without q"))?;
    let page = memories::list(
        &mut conn,
        me.id,
        character,
        cursor(params.before.as_deref())?,
        limit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(page))
}
