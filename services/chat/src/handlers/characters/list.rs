use actix_web::web;
use db_core::models::Character;
use service_kit::{ApiResult, Kit};

/// The public catalogue (no token needed).
pub async fn handle(kit: web::Data<Kit>) -> ApiResult<web::Json<Vec<Character>>> {
    Ok(web::Json(kit.store.characters().await?.as_ref().clone()))
}
