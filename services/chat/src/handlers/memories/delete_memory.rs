use actix_web::{HttpResponse, delete, web};
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
    if kit.store.memories().delete(me.id, path.id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}
