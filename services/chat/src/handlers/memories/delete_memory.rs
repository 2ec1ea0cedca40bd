use actix_web::{HttpResponse, delete, web};
use db_core::queries::memories;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use super::MemoryId;

/// Makes the character forget one thing.
#[utoipa::path(tag = "memories", security(("bearer" = [])), params(MemoryId), responses((status = 204, description = "forgotten"), (status = 404, body = service_kit::error::Problem)))]
#[delete("/memories/{id}")]
pub async fn delete_memory(
    kit: web::Data<Kit>,
    me: AuthUser,
    path: web::Path<MemoryId>,
) -> ApiResult<HttpResponse> {
    let mut conn = kit.store.db.write().await?;
    if memories::delete(&mut conn, me.id, path.id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}
