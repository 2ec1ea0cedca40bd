use actix_web::{get, put, web};
use chrono::{DateTime, Utc};
use db_core::models::{Nudge, NudgeStatus};
use serde::{Deserialize, Serialize};
use service_kit::checks::CharacterPath;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use crate::write_first::Config;

/// The shortest and longest silence a match may ask for.
pub const AFTER_SECONDS: std::ops::RangeInclusive<i32> = 3_600..=2_592_000;

/// The last message the character wrote first (or is about to).
#[derive(utoipa::ToSchema, Serialize, Deserialize, Debug)]
pub struct NudgeDto {
    pub status: NudgeStatus,
    /// Not before this (the silence's end, or the morning after the user's quiet hours).
    pub run_after: DateTime<Utc>,
    /// The message sent, once sent.
    pub message_id: Option<i64>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Whether this match's character writes first, and after how long a silence.
#[derive(utoipa::ToSchema, Serialize, Deserialize, Debug)]
pub struct MatchWriteFirst {
    pub character_id: String,
    pub enabled: bool,
    /// The match's own silence; `null`: the default.
    pub after_seconds: Option<i32>,
    /// The silence that applies.
    pub effective_after_seconds: u64,
    pub latest: Option<NudgeDto>,
}

fn dto(
    character: &str,
    (s, latest): (db_core::store::MatchSettings, Option<Nudge>),
    config: &Config,
) -> MatchWriteFirst {
    MatchWriteFirst {
        character_id: character.to_owned(),
        enabled: s.write_first,
        after_seconds: s.write_first_after_s,
        effective_after_seconds: s
            .write_first_after_s
            .map_or(config.after.as_secs(), |a| a as u64),
        latest: latest.map(|n| NudgeDto {
            status: n.status,
            run_after: n.run_after,
            message_id: n.message_id,
            finished_at: n.finished_at,
        }),
    }
}

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMatchWriteFirst {
    /// Whether this character writes first.
    enabled: bool,
    /// Its own silence, 3600 s (an hour) to 2592000 s (30 days); `null` or absent: the default.
    /// (Read as a number: JSON Schema counts `7200.0` as an integer, so it is one here too.)
    #[schema(value_type = Option<i32>, minimum = 3600, maximum = 2592000)]
    after_seconds: Option<f64>,
}

/// Whether this match's character writes first, and what it did last.
#[utoipa::path(tag = "write-first", security(("bearer" = [])), params(CharacterPath),
    responses((status = 200, body = MatchWriteFirst),
              (status = 404, body = service_kit::error::Problem, description = "no match with this character")))]
#[get("/write-first/{character_id}")]
pub async fn get_match_write_first(
    kit: web::Data<Kit>,
    config: web::Data<Config>,
    me: AuthUser,
    path: web::Path<CharacterPath>,
) -> ApiResult<web::Json<MatchWriteFirst>> {
    let character = path.id()?;
    let found = kit
        .store
        .write_first()
        .match_settings(me.id, character)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(web::Json(dto(character, found, &config)))
}

/// Turns this match's character writing first on or off, and sets its silence.
#[utoipa::path(tag = "write-first", security(("bearer" = [])), params(CharacterPath),
    request_body = UpdateMatchWriteFirst,
    responses((status = 200, body = MatchWriteFirst),
              (status = 404, body = service_kit::error::Problem, description = "no match with this character"),
              (status = 422, body = service_kit::error::Problem, description = "a silence out of range")))]
#[put("/write-first/{character_id}")]
pub async fn update_match_write_first(
    kit: web::Data<Kit>,
    config: web::Data<Config>,
    me: AuthUser,
    path: web::Path<CharacterPath>,
    body: web::Json<UpdateMatchWriteFirst>,
) -> ApiResult<web::Json<MatchWriteFirst>> {
    let character = path.id()?;
    let after = match body.after_seconds {
        None => None,
        Some(a) if a.fract() == 0.0 && AFTER_SECONDS.contains(&(a as i32)) => Some(a as i32),
        Some(_) => {
            return Err(ApiError::Validation {
                field: "after_seconds",
                message: "a whole number of seconds from 3600 (an hour) to 2592000 (30 days)"
                    .into(),
            });
        }
    };
    let set = kit
        .store
        .write_first()
        .set_match_settings(me.id, character, body.enabled, after)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(web::Json(dto(character, set, &config)))
}
