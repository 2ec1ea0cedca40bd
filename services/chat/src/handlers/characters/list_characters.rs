use actix_web::{get, web};
use service_kit::{ApiResult, Kit};

use super::CharacterCard;

/// The public catalogue (no token needed).
#[utoipa::path(tag = "characters", responses((status = 200, body = Vec<CharacterCard>)))]
#[get("/characters")]
pub async fn list_characters(kit: web::Data<Kit>) -> ApiResult<web::Json<Vec<CharacterCard>>> {
    let all = kit.store.catalogue().all().await?;
    Ok(web::Json(all.iter().map(CharacterCard::from).collect()))
}
