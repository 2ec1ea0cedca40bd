use actix_web::{get, web};
use service_kit::checks::character_id;
use service_kit::{ApiError, ApiResult, Kit};

use super::CharacterCard;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CharacterId {
    /// The character, e.g. `sophia`.
    #[param(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$", max_length = 63)]
    id: String,
}

/// One character of the public catalogue.
#[utoipa::path(tag = "characters", params(CharacterId), responses((status = 200, body = CharacterCard), (status = 404, body = service_kit::error::Problem)))]
#[get("/characters/{id}")]
pub async fn get_character(
    kit: web::Data<Kit>,
    path: web::Path<CharacterId>,
) -> ApiResult<web::Json<CharacterCard>> {
    let id = character_id("id", &path.id)?;
    let found = kit
        .store
        .catalogue()
        .get(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(web::Json(CharacterCard::from(found.as_ref())))
}
