use actix_web::{HttpResponse, web};
use db_core::queries::memories;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

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
