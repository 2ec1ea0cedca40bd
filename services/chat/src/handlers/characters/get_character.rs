use actix_web::{HttpResponse, get, web};
use service_kit::checks::character_id;
use service_kit::{ApiError, ApiResult, Kit, MaybeUser};

use super::{CharacterCard, per_caller};

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CharacterId {
    /// The character, e.g. `sophia`.
    #[param(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$", max_length = 63)]
    id: String,
}

/// One character: of the public catalogue, or (with a token) one of the caller's own.
/// Someone else's is 404, like one that does not exist.
#[utoipa::path(tag = "characters", security((), ("bearer" = [])), params(CharacterId), responses((status = 200, body = CharacterCard), (status = 404, body = service_kit::error::Problem)))]
#[get("/characters/{id}")]
pub async fn get_character(
    kit: web::Data<Kit>,
    me: MaybeUser,
    path: web::Path<CharacterId>,
) -> ApiResult<HttpResponse> {
    let id = character_id("id", &path.id)?;
    let found = match me.0 {
        Some(me) => kit.store.characters().visible(me.id, id).await?,
        None => kit.store.catalogue().get(id).await?,
    }
    .ok_or(ApiError::NotFound)?;
    let mut res = HttpResponse::Ok();
    per_caller(&mut res, me.0.is_some());
    Ok(res.json(CharacterCard::from(found.as_ref())))
}
