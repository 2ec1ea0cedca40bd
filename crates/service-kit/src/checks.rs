//! Checks every user-facing handler makes: ownership of a conversation, text, cursors.

use crate::{ApiError, Kit};
use uuid::Uuid;

/// Conversations, messages and memories exist only within a match; without one, a 404.
pub async fn require_match(kit: &Kit, user: Uuid, character: &str) -> Result<(), ApiError> {
    if kit.store.is_matched(user, character).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// Message or memory text: trimmed, not empty, at most `max` characters.
pub fn valid_text(field: &'static str, text: &str, max: usize) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::validation(field, "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(ApiError::validation(
            field,
            format!("at most {max} characters"),
        ));
    }
    Ok(text.to_owned())
}

/// A `before` cursor from the query string.
pub fn cursor(before: Option<&str>) -> Result<Option<db_core::pagination::Cursor>, ApiError> {
    before
        .map(|b| {
            b.parse()
                .map_err(|_| ApiError::validation("before", "not a cursor this API gave out"))
        })
        .transpose()
}
