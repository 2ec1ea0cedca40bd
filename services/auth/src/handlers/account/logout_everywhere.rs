use actix_web::{post, web};
use serde::Serialize;
use service_kit::{ApiResult, AuthUser, Kit};

#[derive(utoipa::ToSchema, Serialize)]
pub struct LoggedOut {
    /// Sessions (devices) that ended, this one included.
    sessions_ended: usize,
}

/// Ends every session of the caller's account, this one included: every refresh and access
/// token of it stops working at once, at the gateway and in every service.
#[utoipa::path(tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = LoggedOut, description = "every session ended")))]
#[post("/auth/logout-everywhere")]
pub async fn logout_everywhere(
    kit: web::Data<Kit>,
    me: AuthUser,
) -> ApiResult<web::Json<LoggedOut>> {
    let sessions_ended = kit.store.sessions().revoke_all(me.id).await?;
    Ok(web::Json(LoggedOut { sessions_ended }))
}
