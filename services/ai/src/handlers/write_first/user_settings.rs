use actix_web::{get, put, web};
use serde::{Deserialize, Serialize};
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use crate::write_first::Config;

/// Whether characters write first to the user, and when.
#[derive(utoipa::ToSchema, Serialize, Deserialize, Debug)]
pub struct WriteFirstSettings {
    /// Characters may write first after a silence (each match can still turn it off).
    pub enabled: bool,
    /// The user's IANA time zone, e.g. `Europe/Paris`: no character writes first during the
    /// quiet hours there.
    pub time_zone: String,
    /// Local hours when no character writes first, e.g. `22:00-08:00`, or `off`.
    pub quiet_hours: String,
    /// The silence after which a character writes, unless the match sets its own.
    pub default_after_seconds: u64,
}

impl WriteFirstSettings {
    fn of(s: db_core::store::UserSettings, config: &Config) -> Self {
        Self {
            enabled: s.write_first,
            time_zone: s.time_zone,
            quiet_hours: config.quiet.to_string(),
            default_after_seconds: config.after.as_secs(),
        }
    }
}

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateWriteFirst {
    /// Turns characters writing first on or off for every match.
    enabled: Option<bool>,
    /// An IANA time zone name, e.g. `Europe/Paris` or `America/Montreal` (the document lists
    /// every name the service knows).
    #[schema(schema_with = time_zone_names)]
    time_zone: Option<String>,
}

fn time_zone_names() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(
            db_core::quiet_hours::time_zone_names()
                .map(serde_json::Value::from)
                .chain([serde_json::Value::Null]),
        ))
        .examples(["Europe/Paris"])
        .build()
}

/// The caller's settings for characters who write first.
#[utoipa::path(tag = "write-first", security(("bearer" = [])),
    responses((status = 200, body = WriteFirstSettings)))]
#[get("/write-first")]
pub async fn get_write_first(
    kit: web::Data<Kit>,
    config: web::Data<Config>,
    me: AuthUser,
) -> ApiResult<web::Json<WriteFirstSettings>> {
    let s = kit.store.write_first().user_settings(me.id).await?;
    Ok(web::Json(WriteFirstSettings::of(s, &config)))
}

/// Changes the caller's time zone or turns characters writing first on or off; what is not
/// given stays as it was.
#[utoipa::path(tag = "write-first", security(("bearer" = [])), request_body = UpdateWriteFirst,
    responses((status = 200, body = WriteFirstSettings),
              (status = 422, body = service_kit::error::Problem, description = "not an IANA time zone")))]
#[put("/write-first")]
pub async fn update_write_first(
    kit: web::Data<Kit>,
    config: web::Data<Config>,
    me: AuthUser,
    body: web::Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<web::Json<WriteFirstSettings>> {
    // An object, not any JSON serde would fit into the struct (an array of two nulls would).
    let body: UpdateWriteFirst =
        serde_json::from_value(serde_json::Value::Object(body.into_inner()))
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let zone = match &body.time_zone {
        Some(name) => Some(
            db_core::quiet_hours::time_zone(name)
                .ok_or_else(|| ApiError::Validation {
                    field: "time_zone",
                    message: "not an IANA time zone name (e.g. Europe/Paris)".into(),
                })?
                .name(),
        ),
        None => None,
    };
    let s = kit
        .store
        .write_first()
        .set_user_settings(me.id, zone, body.enabled)
        .await?;
    Ok(web::Json(WriteFirstSettings::of(s, &config)))
}
