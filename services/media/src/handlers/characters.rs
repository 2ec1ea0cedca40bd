//! Characters of one's own: create, edit, delete, their avatar, and Character Card V2/V3
//! import and export (see [`crate::cards`]). They live here, beside media storage, because
//! avatars and PNG cards are images. Everything is owner-only: another user's character is
//! answered 404, exactly like one that does not exist. Reading the catalogue (public ones plus
//! one's own) is the chat service's `GET /characters`.

use actix_web::http::header::{self, EntityTag, Header, IfNoneMatch};
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use db_core::models::{Character, CharacterChanges, CharacterDraft};
use db_core::store::CreateCharacterError;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use service_kit::checks::character_id;
use service_kit::error::Conflict;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};
use uuid::Uuid;

use crate::cards::{self, CardError, Spec};
use crate::jobs::Media;

/// Largest JSON body of a create or an edit (the texts' limits fit in it).
const MAX_EDIT_BYTES: usize = 256 * 1024;

/// `{id}` in a path.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CharacterId {
    /// One of the caller's characters.
    #[param(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$", max_length = 63)]
    id: String,
}

/// One of the caller's own characters, everything included.
#[derive(utoipa::ToSchema, Serialize)]
pub struct OwnCharacter {
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub id: String,
    pub name: String,
    pub tagline: String,
    /// How the character is written (the model's instructions).
    pub persona: String,
    /// The character's first words in a new conversation.
    pub greeting: String,
    pub tags: Vec<String>,
    /// Example exchanges showing how the character speaks.
    pub example_dialogue: String,
    /// `GET` it for the avatar (PNG); absent without one.
    pub avatar_url: Option<String>,
    /// What an imported card carried beyond these fields (personality, scenario, alternate
    /// greetings, character book, extensions, …), given back on export.
    #[schema(value_type = Object)]
    pub card_extras: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Character> for OwnCharacter {
    fn from(c: Character) -> Self {
        Self {
            avatar_url: avatar_url(&c),
            id: c.id,
            name: c.name,
            tagline: c.tagline,
            persona: c.persona,
            greeting: c.greeting,
            tags: c.tags,
            example_dialogue: c.example_dialogue,
            card_extras: c.card_extras,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

fn avatar_url(c: &Character) -> Option<String> {
    c.avatar_key
        .as_ref()
        .map(|_| format!("/api/v1/characters/{}/avatar", c.id))
}

/// A new character of one's own.
#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCharacter {
    /// 1–64 characters, one line.
    #[schema(min_length = 1, max_length = 64)]
    name: String,
    /// At most 140 characters, one line.
    #[schema(max_length = 140)]
    tagline: Option<String>,
    /// 1–32,000 characters.
    #[schema(min_length = 1, max_length = 32000)]
    persona: String,
    /// At most 8,000 characters.
    #[schema(max_length = 8000)]
    greeting: Option<String>,
    /// At most 32 tags of at most 64 characters.
    #[schema(max_items = 32)]
    tags: Option<Vec<String>>,
    /// At most 16,000 characters.
    #[schema(max_length = 16000)]
    example_dialogue: Option<String>,
}

/// An edit: the fields given change, the others stay.
#[derive(utoipa::ToSchema, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateCharacter {
    #[schema(min_length = 1, max_length = 64)]
    name: Option<String>,
    #[schema(max_length = 140)]
    tagline: Option<String>,
    #[schema(min_length = 1, max_length = 32000)]
    persona: Option<String>,
    #[schema(max_length = 8000)]
    greeting: Option<String>,
    #[schema(max_items = 32)]
    tags: Option<Vec<String>>,
    #[schema(max_length = 16000)]
    example_dialogue: Option<String>,
}

/// A Character Card: `chara_card_v2` or `chara_card_v3`, its fields under `data` (see the
/// specs; fields they do not name are kept).
#[derive(utoipa::ToSchema)]
pub struct CardDocument {
    /// `chara_card_v2` or `chara_card_v3`.
    #[schema(example = "chara_card_v3")]
    pub spec: String,
    /// `2.0` or `3.0`; any text, or none, is taken (SillyTavern does not check it either).
    pub spec_version: Option<String>,
    /// `name` (required), `description`, `personality`, `scenario`, `first_mes`,
    /// `mes_example`, `creator_notes`, `system_prompt`, `post_history_instructions`,
    /// `alternate_greetings`, `character_book`, `tags`, `creator`, `character_version`,
    /// `extensions`; V3 adds `assets`, `nickname`, `creator_notes_multilingual`, `source`,
    /// `group_only_greetings`, `creation_date`, `modification_date`.
    pub data: CardData,
}

/// A card's `data`: `name` is required; every other field is optional and kept.
#[derive(utoipa::ToSchema)]
pub struct CardData {
    /// 1–64 characters, one line.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
}

/// An image's bytes.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ImageBytes(pub Vec<u8>);

impl From<CardError> for ApiError {
    fn from(e: CardError) -> Self {
        // Too large inside (pixels, decompressed text) as well as malformed: the body itself
        // was within its limit, so 422 naming what was wrong, not 413.
        ApiError::validation(e.field, e.message)
    }
}

fn required(field: &'static str, text: String) -> Result<String, ApiError> {
    if text.is_empty() {
        Err(ApiError::validation(field, "must not be empty"))
    } else {
        Ok(text)
    }
}

fn tags(list: Vec<String>) -> Result<Vec<String>, ApiError> {
    if list.len() > cards::MAX_TAGS {
        return Err(ApiError::validation(
            "tags",
            format!("at most {} tags", cards::MAX_TAGS),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for t in list {
        // Empty tags are dropped, like repeated ones.
        let t = cards::single_line("tags", &t, cards::MAX_TAG_CHARS)?;
        if !t.is_empty() && !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

impl UpdateCharacter {
    fn changes(self) -> Result<CharacterChanges, ApiError> {
        Ok(CharacterChanges {
            name: self
                .name
                .map(|n| {
                    required(
                        "name",
                        cards::single_line("name", &n, cards::MAX_NAME_CHARS)?,
                    )
                })
                .transpose()?,
            tagline: self
                .tagline
                .map(|t| cards::single_line("tagline", &t, cards::MAX_TAGLINE_CHARS))
                .transpose()?,
            persona: self
                .persona
                .map(|p| {
                    required(
                        "persona",
                        cards::multi_line("persona", &p, cards::MAX_PERSONA_CHARS)?,
                    )
                })
                .transpose()?,
            greeting: self
                .greeting
                .map(|g| cards::multi_line("greeting", &g, cards::MAX_GREETING_CHARS))
                .transpose()?,
            tags: self.tags.map(tags).transpose()?,
            example_dialogue: self
                .example_dialogue
                .map(|e| cards::multi_line("example_dialogue", &e, cards::MAX_EXAMPLE_CHARS))
                .transpose()?,
        })
    }
}

/// The request body, whole, refused past `max` bytes (413) before more is read.
async fn body(mut payload: web::Payload, max: usize) -> Result<Bytes, ApiError> {
    let mut out = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("unreadable body: {e}")))?;
        if out.len() + chunk.len() > max {
            return Err(ApiError::PayloadTooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

fn json_body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

async fn create(kit: &Kit, me: Uuid, draft: &CharacterDraft) -> ApiResult<Character> {
    kit.store
        .characters()
        .create(me, draft)
        .await
        .map_err(|e| match e {
            CreateCharacterError::TooMany(max) => {
                ApiError::Conflict(Conflict::TooManyCharacters { max })
            }
            CreateCharacterError::Db(e) => e.into(),
        })
}

/// Creates a character of one's own, seen by nobody else.
#[utoipa::path(tag = "characters", security(("bearer" = [])), request_body = CreateCharacter,
    responses((status = 201, body = OwnCharacter, description = "created"),
              (status = 409, body = service_kit::error::Problem, description = "too_many_characters"),
              (status = 413, body = service_kit::error::Problem)))]
#[post("/characters")]
pub async fn create_character(
    kit: web::Data<Kit>,
    me: AuthUser,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let new: CreateCharacter = json_body(&body(payload, MAX_EDIT_BYTES).await?)?;
    let draft = CharacterDraft {
        name: required(
            "name",
            cards::single_line("name", &new.name, cards::MAX_NAME_CHARS)?,
        )?,
        tagline: cards::single_line(
            "tagline",
            new.tagline.as_deref().unwrap_or(""),
            cards::MAX_TAGLINE_CHARS,
        )?,
        persona: required(
            "persona",
            cards::multi_line("persona", &new.persona, cards::MAX_PERSONA_CHARS)?,
        )?,
        greeting: cards::multi_line(
            "greeting",
            new.greeting.as_deref().unwrap_or(""),
            cards::MAX_GREETING_CHARS,
        )?,
        tags: tags(new.tags.unwrap_or_default())?,
        example_dialogue: cards::multi_line(
            "example_dialogue",
            new.example_dialogue.as_deref().unwrap_or(""),
            cards::MAX_EXAMPLE_CHARS,
        )?,
        card_extras: serde_json::json!({}),
    };
    let c = create(&kit, me.id, &draft).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/characters/{}", c.id)))
        .json(OwnCharacter::from(c)))
}

/// Edits one of one's own characters.
#[utoipa::path(tag = "characters", security(("bearer" = [])), params(CharacterId), request_body = UpdateCharacter,
    responses((status = 200, body = OwnCharacter), (status = 404, body = service_kit::error::Problem),
              (status = 413, body = service_kit::error::Problem)))]
#[patch("/characters/{id}")]
pub async fn update_character(
    kit: web::Data<Kit>,
    me: AuthUser,
    path: web::Path<CharacterId>,
    payload: web::Payload,
) -> ApiResult<web::Json<OwnCharacter>> {
    let id = character_id("id", &path.id)?;
    let edit: UpdateCharacter = json_body(&body(payload, MAX_EDIT_BYTES).await?)?;
    let c = kit
        .store
        .characters()
        .update(me.id, id, &edit.changes()?)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(web::Json(c.into()))
}

/// Deletes storage objects, logging (not failing on) the ones that cannot be: the rows that
/// named them are gone already.
async fn forget(media: &Media, keys: impl IntoIterator<Item = String>) {
    for key in keys {
        if let Err(e) = media.storage.delete(&key).await {
            tracing::warn!(key, error = %e, "stored object not deleted");
        }
    }
}

/// Deletes one of one's own characters, with the conversation, memories and photos of one's
/// match with it, and its avatar.
#[utoipa::path(tag = "characters", security(("bearer" = [])), params(CharacterId),
    responses((status = 204), (status = 404, body = service_kit::error::Problem)))]
#[delete("/characters/{id}")]
pub async fn delete_character(
    kit: web::Data<Kit>,
    media: web::Data<Media>,
    me: AuthUser,
    path: web::Path<CharacterId>,
) -> ApiResult<HttpResponse> {
    let id = character_id("id", &path.id)?;
    let gone = kit
        .store
        .characters()
        .delete(me.id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let keys: Vec<String> = gone
        .avatar_key
        .iter()
        .cloned()
        .chain(
            gone.photo_keys
                .iter()
                .flat_map(|k| crate::handlers::media::stored_files(k)),
        )
        .collect();
    forget(&media, keys).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Sets the avatar of one of one's own characters: a PNG, JPEG or WebP image (at most 8 MiB
/// and 4096×4096), kept as a PNG without its metadata.
#[utoipa::path(tag = "characters", security(("bearer" = [])), params(CharacterId),
    request_body(content((ImageBytes = "image/png"), (ImageBytes = "image/jpeg"), (ImageBytes = "image/webp")), description = "the image"),
    responses((status = 200, body = OwnCharacter), (status = 404, body = service_kit::error::Problem),
              (status = 413, body = service_kit::error::Problem)),
    extensions(("x-dream-max-body-bytes" = json!(cards::MAX_IMAGE_UPLOAD_BYTES))))]
#[put("/characters/{id}/avatar")]
pub async fn put_avatar(
    kit: web::Data<Kit>,
    media: web::Data<Media>,
    me: AuthUser,
    path: web::Path<CharacterId>,
    payload: web::Payload,
) -> ApiResult<web::Json<OwnCharacter>> {
    let id = character_id("id", &path.id)?;
    // Someone else's character: 404 before their upload is even read.
    if kit.store.characters().get_owned(me.id, id).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let bytes = body(payload, cards::MAX_IMAGE_UPLOAD_BYTES).await?;
    let png = web::block(move || cards::avatar_from_upload(&bytes))
        .await
        .map_err(ApiError::internal)??;
    Ok(web::Json(
        set_avatar(&kit, &media, me.id, id, png).await?.into(),
    ))
}

/// Stores `png` as the character's avatar, then deletes the one it replaces.
async fn set_avatar(
    kit: &Kit,
    media: &Media,
    me: Uuid,
    id: &str,
    png: Vec<u8>,
) -> ApiResult<Character> {
    let key = format!("avatars/{me}/{id}/{}.png", Uuid::new_v4());
    media
        .storage
        .put(&key, Bytes::from(png))
        .await
        .map_err(ApiError::internal)?;
    match kit.store.characters().set_avatar(me, id, Some(&key)).await {
        Ok(Some((c, old))) => {
            forget(media, old).await;
            Ok(c)
        }
        Ok(None) => {
            forget(media, [key]).await;
            Err(ApiError::NotFound)
        }
        Err(e) => {
            forget(media, [key]).await;
            Err(e.into())
        }
    }
}

/// Removes the avatar of one of one's own characters.
#[utoipa::path(tag = "characters", security(("bearer" = [])), params(CharacterId),
    responses((status = 204), (status = 404, body = service_kit::error::Problem)))]
#[delete("/characters/{id}/avatar")]
pub async fn delete_avatar(
    kit: web::Data<Kit>,
    media: web::Data<Media>,
    me: AuthUser,
    path: web::Path<CharacterId>,
) -> ApiResult<HttpResponse> {
    let id = character_id("id", &path.id)?;
    let (_, old) = kit
        .store
        .characters()
        .set_avatar(me.id, id, None)
        .await?
        .ok_or(ApiError::NotFound)?;
    forget(&media, old).await;
    Ok(HttpResponse::NoContent().finish())
}

/// The avatar of one of one's own characters (PNG), with an `ETag`.
#[utoipa::path(tag = "characters", security(("bearer" = [])),
    params(CharacterId, ("If-None-Match" = Option<String>, Header, description = "the ETag of the copy the client has")),
    responses((status = 200, description = "the avatar", content_type = "image/png"),
              (status = 304, description = "the client's copy is current"),
              (status = 404, body = service_kit::error::Problem, description = "no such character of the caller's, or no avatar")))]
#[get("/characters/{id}/avatar")]
pub async fn get_avatar(
    kit: web::Data<Kit>,
    media: web::Data<Media>,
    me: AuthUser,
    path: web::Path<CharacterId>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let id = character_id("id", &path.id)?;
    let c = kit
        .store
        .characters()
        .get_owned(me.id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let key = c.avatar_key.ok_or(ApiError::NotFound)?;
    // Each upload has a key of its own: the key is the version.
    let etag = EntityTag::new_strong(key.rsplit('/').next().unwrap_or_default().to_owned());
    if let Ok(IfNoneMatch::Items(tags)) = IfNoneMatch::parse(&req)
        && tags.iter().any(|t| t.weak_eq(&etag))
    {
        return Ok(HttpResponse::NotModified()
            .insert_header(header::ETag(etag))
            .finish());
    }
    let bytes = media
        .storage
        .get(&key)
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header(header::ETag(etag))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(bytes))
}

/// Imports a Character Card V2 or V3 as a new character of one's own: the card's JSON
/// (`application/json`), or a PNG card (`image/png`, the card in its `ccv3` or `chara` text
/// chunk; the image becomes the avatar). At most 8 MiB, and 1 MiB of card JSON.
#[utoipa::path(tag = "characters", security(("bearer" = [])),
    request_body(content(
        (CardDocument = "application/json"),
        (ImageBytes = "image/png")
    ), description = "the card: its JSON, or a PNG card"),
    responses((status = 201, body = OwnCharacter, description = "imported"),
              (status = 409, body = service_kit::error::Problem, description = "too_many_characters"),
              (status = 413, body = service_kit::error::Problem),
              (status = 415, body = service_kit::error::Problem)),
    extensions(("x-dream-max-body-bytes" = json!(cards::MAX_IMAGE_UPLOAD_BYTES))))]
#[post("/character-cards")]
pub async fn import_card(
    kit: web::Data<Kit>,
    media: web::Data<Media>,
    me: AuthUser,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let png = match content_type.as_str() {
        "application/json" => false,
        "image/png" => true,
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "send the card as application/json or image/png".into(),
            ));
        }
    };
    let max = if png {
        cards::MAX_IMAGE_UPLOAD_BYTES
    } else {
        cards::MAX_CARD_JSON_BYTES
    };
    let bytes = body(payload, max).await?;
    let imported = web::block(move || {
        if png {
            cards::from_png(&bytes)
        } else {
            cards::from_json(&bytes)
        }
    })
    .await
    .map_err(ApiError::internal)??;
    let mut c = create(&kit, me.id, &imported.draft).await?;
    if let Some(avatar) = imported.avatar {
        c = set_avatar(&kit, &media, me.id, &c.id, avatar).await?;
    }
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/characters/{}", c.id)))
        .json(OwnCharacter::from(c)))
}

#[derive(Deserialize, utoipa::ToSchema, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CardFormat {
    /// The card's JSON.
    #[default]
    Json,
    /// A PNG image (the avatar) carrying the card.
    Png,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `v2` (`chara_card_v2`) or `v3` (`chara_card_v3`, the default).
    #[param(inline)]
    spec: Option<Spec>,
    /// `json` (the default) or `png`.
    #[param(inline)]
    format: Option<CardFormat>,
}

/// Exports one of one's own characters as a Character Card: JSON, or a PNG of its avatar
/// carrying the card (`chara` for V2; `ccv3` and `chara` for V3), as SillyTavern reads them.
#[utoipa::path(tag = "characters", security(("bearer" = [])), params(CharacterId, ExportParams),
    responses((status = 200, description = "the card", content(
        (CardDocument = "application/json"),
        (ImageBytes = "image/png"))),
              (status = 404, body = service_kit::error::Problem)))]
#[get("/characters/{id}/card")]
pub async fn export_card(
    kit: web::Data<Kit>,
    media: web::Data<Media>,
    me: AuthUser,
    path: web::Path<CharacterId>,
    params: web::Query<ExportParams>,
) -> ApiResult<HttpResponse> {
    let id = character_id("id", &path.id)?;
    let spec = params.spec.unwrap_or(Spec::V3);
    let c = kit
        .store
        .characters()
        .get_owned(me.id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let file = |ext: &str| format!("attachment; filename=\"{}.{ext}\"", c.id);
    if params.format.unwrap_or_default() == CardFormat::Json {
        return Ok(HttpResponse::Ok()
            .insert_header((header::CONTENT_DISPOSITION, file("json")))
            .json(cards::to_json(&c, spec, false)));
    }
    let avatar = match &c.avatar_key {
        Some(key) => media.storage.get(key).await.map_err(ApiError::internal)?,
        None => None,
    };
    let disposition = file("png");
    let png = web::block(move || cards::to_png(&c, spec, avatar.as_deref()))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(png))
}
