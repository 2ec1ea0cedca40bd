use actix_web::{post, web};
use db_core::models::Message;
use db_core::store::Picked;
use service_kit::error::Conflict;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};
use uuid::Uuid;

/// `{id}` of a reply and `{alternative_id}` of one of its versions.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AlternativePath {
    /// The reply's message id.
    #[param(minimum = 1)]
    id: i64,
    /// The version to pick (from its list of alternatives).
    alternative_id: Uuid,
}

/// Makes one version of a character's reply the one the conversation shows and the next reply
/// reads. Affection and XP do not move: they were counted once, with the first version.
#[utoipa::path(tag = "messages", security(("bearer" = [])), params(AlternativePath),
    responses((status = 200, body = Message, description = "the reply, reading as the version picked"),
              (status = 404, body = service_kit::error::Problem, description = "no such version of a reply of yours"),
              (status = 409, body = service_kit::error::Problem, description = "generation_in_progress: the reply is being written again")))]
#[post("/messages/{id}/alternatives/{alternative_id}/pick")]
pub async fn pick_alternative(
    kit: web::Data<Kit>,
    me: AuthUser,
    path: web::Path<AlternativePath>,
) -> ApiResult<web::Json<Message>> {
    match kit
        .store
        .generations()
        .pick(me.id, path.id, path.alternative_id)
        .await?
    {
        Picked::Picked(m) => Ok(web::Json(m)),
        Picked::NotFound => Err(ApiError::NotFound),
        Picked::Busy => Err(ApiError::Conflict(Conflict::GenerationInProgress)),
    }
}
