//! Refresh sessions: opaque refresh tokens stored as SHA-256 hashes, rotated on every use; a
//! used token presented again revokes its whole family (it was stolen, or replayed).

use actix_web::HttpRequest;
use actix_web::cookie::Cookie;
use chrono::{Duration, Utc};
use db_core::models::{RefreshSession, SecretBytes};
use serde::Serialize;
use service_kit::{ApiError, Kit};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const REFRESH_TTL_DAYS: i64 = 30;

#[derive(utoipa::ToSchema, Debug, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    /// Absent when the request asked for a browser session (`X-Dream-Session: cookie`): the
    /// token is then in an `HttpOnly` cookie that page scripts cannot read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub token_type: &'static str,
    /// Seconds the access token lives.
    pub expires_in: u64,
}

/// A refresh token as this service makes them (64 lowercase hex digits); anything else is
/// refused before any lookup.
pub fn valid_token(token: &str) -> Result<&str, ApiError> {
    if token.len() == 64
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        Ok(token)
    } else {
        Err(ApiError::validation(
            "refresh_token",
            "not a refresh token this API gave out",
        ))
    }
}

pub fn hash(token: &str) -> SecretBytes {
    SecretBytes::new(Sha256::digest(token.as_bytes()).to_vec())
}

fn new_token() -> String {
    // Two v4 UUIDs: 244 random bits from the OS generator.
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// Starts (or, with `family`, continues) a session and returns its token pair.
pub async fn issue(kit: &Kit, user: Uuid, family: Option<Uuid>) -> Result<TokenPair, ApiError> {
    let family = family.unwrap_or_else(Uuid::new_v4);
    let refresh_token = new_token();
    let now = Utc::now();
    let session = RefreshSession {
        id: Uuid::new_v4(),
        user_id: user,
        family_id: family,
        token_hash: hash(&refresh_token),
        expires_at: now + Duration::days(REFRESH_TTL_DAYS),
        used_at: None,
        revoked_at: None,
        created_at: now,
    };
    kit.store.sessions().insert(&session).await?;
    let access_token = kit
        .keys
        .mint(user, family)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("cannot sign")))?;
    Ok(TokenPair {
        access_token,
        refresh_token: Some(refresh_token),
        token_type: "Bearer",
        expires_in: kit.keys.access_ttl().as_secs(),
    })
}

/// For a browser session (`X-Dream-Session: cookie`), takes the refresh token out of `tokens`
/// and returns the cookies that carry it and the media cookie; for any other client, nothing
/// (the tokens stay in the body).
pub fn into_cookies(
    req: &HttpRequest,
    secure: bool,
    tokens: &mut TokenPair,
) -> Vec<Cookie<'static>> {
    use service_kit::session;
    if !session::wants_cookies(req) {
        return Vec::new();
    }
    let mut cookies = vec![session::media_cookie(
        tokens.access_token.clone(),
        std::time::Duration::from_secs(tokens.expires_in),
        secure,
    )];
    if let Some(refresh) = tokens.refresh_token.take() {
        cookies.push(session::refresh_cookie(
            refresh,
            std::time::Duration::from_secs(REFRESH_TTL_DAYS as u64 * 86_400),
            secure,
        ));
    }
    cookies
}
