use actix_web::{HttpResponse, post, web};
use db_core::models::NewMemory;
use serde::Deserialize;
use service_kit::checks::character_id;
use service_kit::{ApiResult, AuthUser, Kit};

use super::MAX_MEMORY_CHARS;
use crate::handlers::{require_match, valid_text};

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMemory {
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    character_id: String,
    /// 1–2000 characters; no control characters but line feeds and tabs.
    #[schema(min_length = 1, max_length = 2000)]
    content: String,
}

/// Something the user wants the character to remember. A fact the character remembers already
/// (whatever its case, spacing or punctuation) is not stored twice: it is confirmed and returned
/// with 200. Past `MEMORIES_PER_MATCH`, the least recently confirmed memory drawn from messages
/// is forgotten first, then the user's own.
#[utoipa::path(tag = "memories", security(("bearer" = [])), request_body = CreateMemory, responses((status = 201, body = db_core::models::Memory, description = "remembered"), (status = 200, body = db_core::models::Memory, description = "remembered already: the same memory, confirmed"), (status = 404, body = service_kit::error::Problem, description = "no match with this character")))]
#[post("/memories")]
pub async fn create_memory(
    kit: web::Data<Kit>,
    chat: Option<web::Data<crate::Chat>>,
    me: AuthUser,
    body: web::Json<CreateMemory>,
) -> ApiResult<HttpResponse> {
    let character = character_id("character_id", &body.character_id)?;
    let content = valid_text("content", &body.content, MAX_MEMORY_CHARS)?;
    require_match(&kit, me.id, character).await?;
    let new = NewMemory {
        user_id: me.id,
        character_id: character.to_owned(),
        content,
        source_message_id: None,
    };
    let (memory, created) = kit
        .store
        .memories()
        .create(
            &new,
            chat.map_or(db_core::store::DEFAULT_MEMORIES_PER_MATCH, |c| {
                c.memories_per_match
            }),
        )
        .await?;
    Ok(if created {
        HttpResponse::Created().json(memory)
    } else {
        HttpResponse::Ok().json(memory)
    })
}
