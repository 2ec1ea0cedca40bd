use actix_web::{HttpResponse, post, web};
use serde::Deserialize;
use service_kit::checks::character_id;
use service_kit::{ApiResult, AuthUser, Kit};

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMatch {
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    character_id: String,
}

/// 201 with the new match, or 200 with the one that exists.
#[utoipa::path(tag = "matches", security(("bearer" = [])), request_body = CreateMatch, responses((status = 201, body = db_core::models::Match, description = "matched"), (status = 200, body = db_core::models::Match, description = "already matched"), (status = 404, body = service_kit::error::Problem, description = "no such character")))]
#[post("/matches")]
pub async fn create_match(
    kit: web::Data<Kit>,
    me: AuthUser,
    body: web::Json<CreateMatch>,
) -> ApiResult<HttpResponse> {
    let character = character_id("character_id", &body.character_id)?;
    let (m, created) = kit.store.matches().create(me.id, character).await?;
    Ok(if created {
        HttpResponse::Created().json(m)
    } else {
        HttpResponse::Ok().json(m)
    })
}
