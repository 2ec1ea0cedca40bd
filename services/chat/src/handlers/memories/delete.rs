use actix_web::{HttpResponse, web};
use db_core::queries::memories;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

#[utoipa::path(delete, path = "/api/v1/memories/{id}", tag = "memories", security(("bearer" = [])), params(("id" = i64, Path)), responses((status = 204), (status = 404, body = service_kit::error::Problem)))]
pub async fn handle(
    kit: web::Data<Kit>,
    me: AuthUser,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let mut conn = kit.store.db.write().await?;
    if memories::delete(&mut conn, me.id, *id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}
