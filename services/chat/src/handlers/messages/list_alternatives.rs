use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};
use uuid::Uuid;

use super::MessageId;

/// One version of a character's reply.
#[derive(utoipa::ToSchema, Serialize)]
pub struct Alternative {
    /// Pick it with `POST /messages/{id}/alternatives/{alternative_id}/pick`.
    pub id: Uuid,
    pub content: String,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// The version the conversation reads (and the next reply's prompt).
    pub picked: bool,
    /// It extends an earlier version ("continue").
    pub continued: bool,
}

/// Every version of a character's reply that a reply, a regenerate or a continue wrote, oldest
/// first; empty for a message no generation wrote (a greeting, a photo, the user's own).
#[utoipa::path(tag = "messages", security(("bearer" = [])), params(MessageId),
    responses((status = 200, body = Vec<Alternative>),
              (status = 404, body = service_kit::error::Problem, description = "no message of yours has this id")))]
#[get("/messages/{id}/alternatives")]
pub async fn list_alternatives(
    kit: web::Data<Kit>,
    me: AuthUser,
    path: web::Path<MessageId>,
) -> ApiResult<web::Json<Vec<Alternative>>> {
    let alternatives = kit.store.generations().alternatives(me.id, path.id).await?;
    if alternatives.is_empty()
        && kit
            .store
            .conversations()
            .message(me.id, path.id)
            .await?
            .is_none()
    {
        return Err(ApiError::NotFound);
    }
    Ok(web::Json(
        alternatives
            .into_iter()
            .filter_map(|g| {
                Some(Alternative {
                    id: g.id,
                    picked: g.status == db_core::models::GenerationStatus::Done,
                    continued: g.prefix.is_some(),
                    content: g.content?,
                    created_at: g.started_at,
                })
            })
            .collect(),
    ))
}
