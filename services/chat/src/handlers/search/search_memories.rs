use actix_web::{get, web};
use db_core::models::MemoryHit;
use serde::Deserialize;
use service_kit::checks::{character_id, limit, valid_line};
use service_kit::{ApiResult, AuthUser, Kit};

#[derive(utoipa::IntoParams, Deserialize)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// Words to find (French stemming), 1–200 characters.
    #[param(min_length = 1, max_length = 200)]
    q: String,
    /// Only what this character remembers.
    #[param(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    character_id: Option<String>,
    /// Results (1–50, default 20).
    #[param(minimum = 1, maximum = 50)]
    limit: Option<i64>,
}

/// What the characters remember of the caller that matches `q`, best first.
#[utoipa::path(tag = "search", security(("bearer" = [])), params(Params), responses((status = 200, body = Vec<MemoryHit>)))]
#[get("/search/memories")]
pub async fn search_memories(
    kit: web::Data<Kit>,
    me: AuthUser,
    params: web::Query<Params>,
) -> ApiResult<web::Json<Vec<MemoryHit>>> {
    let q = valid_line("q", &params.q, 200)?;
    let character = params
        .character_id
        .as_deref()
        .map(|c| character_id("character_id", c))
        .transpose()?;
    let limit = limit("limit", params.limit, 20, 50)?;
    Ok(web::Json(
        kit.store
            .memories()
            .search(me.id, &q, character, limit)
            .await?,
    ))
}
