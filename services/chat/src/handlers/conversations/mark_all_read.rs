use actix_web::{post, web};
use serde::Serialize;
use service_kit::{ApiResult, AuthUser, Kit};

#[derive(utoipa::ToSchema, Serialize)]
pub struct MarkedAll {
    /// Messages marked read, all conversations together.
    marked_read: i64,
    /// The conversations that had unread messages.
    conversations: Vec<String>,
}

/// Marks every message of every conversation of the user read.
#[utoipa::path(tag = "conversations", security(("bearer" = [])), responses((status = 200, body = MarkedAll)))]
#[post("/conversations/read")]
pub async fn mark_all_read(kit: web::Data<Kit>, me: AuthUser) -> ApiResult<web::Json<MarkedAll>> {
    let changed = kit.store.conversations().mark_all_read(me.id).await?;
    Ok(web::Json(MarkedAll {
        marked_read: changed.iter().map(|(_, n)| n).sum(),
        conversations: changed.into_iter().map(|(c, _)| c).collect(),
    }))
}
