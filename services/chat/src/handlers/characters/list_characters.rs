use actix_web::{HttpResponse, get, web};
use service_kit::{ApiResult, Kit, MaybeUser};

use super::{CharacterCard, per_caller};

/// The catalogue: the public characters (no token needed) and, with a token, the caller's own
/// first. The public part comes from the shared cache; one's own from PostgreSQL, never from
/// a cache another user could read.
#[utoipa::path(tag = "characters", security((), ("bearer" = [])), responses((status = 200, body = Vec<CharacterCard>)))]
#[get("/characters")]
pub async fn list_characters(kit: web::Data<Kit>, me: MaybeUser) -> ApiResult<HttpResponse> {
    let public = kit.store.catalogue().all().await?;
    let mut list: Vec<CharacterCard> = Vec::with_capacity(public.len());
    if let Some(me) = me.0 {
        let own = kit.store.characters().owned_by(me.id).await?;
        list.extend(own.iter().map(CharacterCard::from));
    }
    list.extend(public.iter().map(CharacterCard::from));
    let mut res = HttpResponse::Ok();
    per_caller(&mut res, me.0.is_some());
    Ok(res.json(list))
}
