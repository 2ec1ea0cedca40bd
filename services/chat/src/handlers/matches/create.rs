use actix_web::{HttpResponse, web};
use db_core::store::MatchError;
use serde::Deserialize;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMatch {
    character_id: String,
}

/// 201 with the new match, or 200 with the one that exists.
#[utoipa::path(post, path = "/api/v1/matches", tag = "matches", security(("bearer" = [])), request_body = CreateMatch, responses((status = 201, body = db_core::models::Match), (status = 200, body = db_core::models::Match, description = "already matched"), (status = 404, body = service_kit::error::Problem)))]
pub async fn handle(
    kit: web::Data<Kit>,
    me: AuthUser,
    body: web::Json<CreateMatch>,
) -> ApiResult<HttpResponse> {
    let (m, created) = kit
        .store
        .create_match(me.id, &body.character_id)
        .await
        .map_err(|e| match e {
            MatchError::UnknownCharacter => ApiError::NotFound,
            MatchError::Db(e) => e.into(),
        })?;
    Ok(if created {
        HttpResponse::Created().json(m)
    } else {
        HttpResponse::Ok().json(m)
    })
}
