//! Checks every user-facing handler makes before it touches the cache or the database:
//! ownership of a conversation, the format of ids, text without control characters, cursors.

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

/// A character id as the database allows it (`^[a-z0-9][a-z0-9-]{0,62}$`). Checked before any
/// lookup, so that nothing an attacker makes up reaches a cache key or a query.
pub fn character_id<'a>(field: &'static str, id: &'a str) -> Result<&'a str, ApiError> {
    if db_core::models::is_character_id(id) {
        Ok(id)
    } else {
        Err(ApiError::validation(
            field,
            "not a character id (lowercase letters, digits and '-', at most 63)",
        ))
    }
}

/// `{character_id}` in a path: declared once with its format, checked by [`CharacterPath::id`].
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CharacterPath {
    /// The character, e.g. `sophia`.
    #[param(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$", max_length = 63)]
    character_id: String,
}

impl CharacterPath {
    /// The id, if it has a character id's format (else 422).
    pub fn id(&self) -> Result<&str, ApiError> {
        character_id("character_id", &self.character_id)
    }
}

/// Multi-line text (a message, a memory): CRLF becomes LF, trimmed, not empty, at most `max`
/// characters, and no control character but line feeds and tabs.
pub fn valid_text(field: &'static str, text: &str, max: usize) -> Result<String, ApiError> {
    let text = text.replace("\r\n", "\n");
    let text = text.trim();
    check_text(field, text, max, |c| c == '\n' || c == '\t')?;
    Ok(text.to_owned())
}

/// One line (a name, an email, a search): trimmed, not empty, at most `max` characters, no
/// control character at all.
pub fn valid_line(field: &'static str, text: &str, max: usize) -> Result<String, ApiError> {
    let text = text.trim();
    check_text(field, text, max, |_| false)?;
    Ok(text.to_owned())
}

fn check_text(
    field: &'static str,
    text: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), ApiError> {
    if text.is_empty() {
        return Err(ApiError::validation(field, "must not be empty"));
    }
    if text.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(ApiError::validation(
            field,
            "must not contain control characters",
        ));
    }
    if text.chars().count() > max {
        return Err(ApiError::validation(
            field,
            format!("at most {max} characters"),
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_keeps_lines_and_tabs_and_refuses_other_controls() {
        assert_eq!(
            valid_text("c", " a\r\nb\tc ", 10).ok().as_deref(),
            Some("a\nb\tc")
        );
        for bad in ["a\0b", "a\u{7}b", "a\rb", "\u{1b}[31m", "a\u{85}b"] {
            assert!(valid_text("c", bad, 10).is_err(), "{bad:?}");
        }
        assert!(valid_line("c", "a\nb", 10).is_err());
        assert!(valid_text("c", "   ", 10).is_err());
        assert!(valid_text("c", "ééééé", 5).is_ok());
        assert!(valid_text("c", "éééééé", 5).is_err());
    }

    #[test]
    fn character_ids_have_one_format() {
        for good in ["sophia", "a", "char-12", "0"] {
            assert!(character_id("id", good).is_ok(), "{good}");
        }
        let long = "x".repeat(64);
        for bad in [
            "",
            "Sophia",
            "sophia:lock",
            "sophia\0",
            "-a",
            "a_b",
            "..",
            long.as_str(),
        ] {
            assert!(character_id("id", bad).is_err(), "{bad:?}");
        }
    }
}
