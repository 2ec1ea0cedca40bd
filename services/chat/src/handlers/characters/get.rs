use actix_web::web;
use db_core::models::Character;
use service_kit::{ApiError, ApiResult, Kit};

#[utoipa::path(get, path = "/api/v1/characters/{id}", tag = "characters", params(("id" = String, Path)), responses((status = 200, body = Character), (status = 404, body = service_kit::error::Problem)))]
pub async fn handle(kit: web::Data<Kit>, id: web::Path<String>) -> ApiResult<web::Json<Character>> {
    let found = kit.store.character(&id).await?.ok_or(ApiError::NotFound)?;
    Ok(web::Json(found.as_ref().clone()))
}
