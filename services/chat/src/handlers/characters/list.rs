use actix_web::web;
use db_core::models::Character;
use service_kit::{ApiResult, Kit};

/// The public catalogue (no token needed).
#[utoipa::path(get, path = "/api/v1/characters", tag = "characters", responses((status = 200, body = Vec<Character>)))]
pub async fn handle(kit: web::Data<Kit>) -> ApiResult<web::Json<Vec<Character>>> {
    Ok(web::Json(kit.store.characters().await?.as_ref().clone()))
}
