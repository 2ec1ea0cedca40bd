//! Checks every user-facing handler makes before it touches the cache or the database:
//! ownership of a conversation, the format of ids, text without control characters, cursors,
//! page sizes. Each format is declared once ([`FIELD_FORMATS`]): the OpenAPI document gets it by
//! field name ([`crate::openapi::finish`]) and the check here accepts exactly what it says.

use crate::{ApiError, Kit};
use uuid::Uuid;

/// White space (Unicode's White_Space that is not a control character).
macro_rules! ws {
    () => {
        r" \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}

/// The regular expressions of the API's formats, as the document declares them.
pub mod formats {
    /// A character id (the `characters.id` constraint).
    pub const CHARACTER_ID: &str = r"^[a-z0-9][a-z0-9-]{0,62}$";
    /// A keyset cursor this API gave out (`micros-id`).
    pub const CURSOR: &str = r"^[0-9]{1,16}-[0-9]{1,18}$";
    /// Text on several lines: something besides white space, no control character but line
    /// feeds and tabs.
    pub const TEXT: &str = concat!(
        r"^[\t\n",
        ws!(),
        r"]*[^\t\n",
        ws!(),
        r"\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    );
    /// One line: something besides white space, no control character.
    pub const LINE: &str = concat!(
        r"^[",
        ws!(),
        r"]*[^",
        ws!(),
        r"\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    );
    /// A secret typed by a person: no control character (spaces are its own business).
    pub const PASSWORD: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";
    /// An email address as the API takes it: no white space, one `@` before a domain with a
    /// dot that does not start with one.
    pub const EMAIL: &str = concat!(
        r"^[^@\t\n",
        ws!(),
        r"\u0000-\u001F\u007F-\u009F]+@[^.@\t\n",
        ws!(),
        r"\u0000-\u001F\u007F-\u009F][^@\t\n",
        ws!(),
        r"\u0000-\u001F\u007F-\u009F]*\.[^@\t\n",
        ws!(),
        r"\u0000-\u001F\u007F-\u009F]*$"
    );
    /// A refresh token (64 lowercase hex digits).
    pub const REFRESH_TOKEN: &str = r"^[0-9a-f]{64}$";
}

/// Every field (parameter or body property) with a format, by name: one name, one meaning,
/// across the whole API.
pub const FIELD_FORMATS: &[(&str, &str)] = &[
    ("character_id", formats::CHARACTER_ID),
    ("before", formats::CURSOR),
    ("content", formats::TEXT),
    ("prompt", formats::TEXT),
    ("q", formats::LINE),
    ("display_name", formats::LINE),
    ("email", formats::EMAIL),
    ("password", formats::PASSWORD),
    ("current_password", formats::PASSWORD),
    ("new_password", formats::PASSWORD),
    ("refresh_token", formats::REFRESH_TOKEN),
];

/// Conversations, messages and memories exist only within a match; without one, a 404.
pub async fn require_match(kit: &Kit, user: Uuid, character: &str) -> Result<(), ApiError> {
    if kit.store.matches().contains(user, character).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// A character id ([`formats::CHARACTER_ID`]). Checked before any lookup, so that nothing an
/// attacker makes up reaches a cache key or a query.
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

/// `{character_id}` in a path, checked by [`CharacterPath::id`].
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CharacterPath {
    /// The character, e.g. `sophia`.
    character_id: String,
}

impl CharacterPath {
    /// The id, if it has a character id's format (else 422).
    pub fn id(&self) -> Result<&str, ApiError> {
        character_id("character_id", &self.character_id)
    }
}

fn is_space(c: char) -> bool {
    c.is_whitespace() && !c.is_control()
}

/// Multi-line text ([`formats::TEXT`]) of at most `max` characters, trimmed.
pub fn valid_text(field: &'static str, text: &str, max: usize) -> Result<String, ApiError> {
    check_text(field, text, max, |c| c == '\n' || c == '\t')?;
    Ok(text.trim().to_owned())
}

/// One line ([`formats::LINE`]) of at most `max` characters, trimmed.
pub fn valid_line(field: &'static str, text: &str, max: usize) -> Result<String, ApiError> {
    check_text(field, text, max, |_| false)?;
    Ok(text.trim().to_owned())
}

fn check_text(
    field: &'static str,
    text: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), ApiError> {
    if text.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(ApiError::validation(
            field,
            "must not contain control characters",
        ));
    }
    if text.chars().all(|c| is_space(c) || allowed(c)) {
        return Err(ApiError::validation(field, "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(ApiError::validation(
            field,
            format!("at most {max} characters"),
        ));
    }
    Ok(())
}

/// A password ([`formats::PASSWORD`]) of `min` to 128 characters, as typed.
pub fn valid_password(
    field: &'static str,
    password: String,
    min: usize,
) -> Result<String, ApiError> {
    if password.chars().any(char::is_control) {
        return Err(ApiError::validation(
            field,
            "must not contain control characters",
        ));
    }
    let n = password.chars().count();
    if n < min || n > 128 {
        return Err(ApiError::validation(
            field,
            format!("between {min} and 128 characters"),
        ));
    }
    Ok(password)
}

/// An email address ([`formats::EMAIL`]), at most 254 characters, lowercased.
pub fn valid_email(field: &'static str, email: &str) -> Result<String, ApiError> {
    let bad = |c: char| c.is_control() || c.is_whitespace();
    let ok = email.chars().count() <= 254
        && !email.chars().any(bad)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
        });
    // Lowercasing can lengthen a string ('İ' becomes two characters): the stored form must fit.
    let lower = email.to_lowercase();
    if ok && lower.chars().count() <= 254 {
        Ok(lower)
    } else {
        Err(ApiError::validation(field, "not a valid email address"))
    }
}

/// A page size: `default` when absent, else between 1 and `max` (422 otherwise).
pub fn limit(
    field: &'static str,
    value: Option<i64>,
    default: i64,
    max: i64,
) -> Result<i64, ApiError> {
    match value {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::validation(field, format!("between 1 and {max}"))),
    }
}

/// A `before` cursor ([`formats::CURSOR`]) from the query string.
pub fn cursor(before: Option<&str>) -> Result<Option<db_core::pagination::Cursor>, ApiError> {
    let bad = || ApiError::validation("before", "not a cursor this API gave out");
    before
        .map(|b| {
            let (micros, id) = b.split_once('-').ok_or_else(bad)?;
            let digits = |s: &str, max: usize| {
                (1..=max).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit())
            };
            if !digits(micros, 16) || !digits(id, 18) {
                return Err(bad());
            }
            b.parse().map_err(|_| bad())
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_keeps_lines_and_tabs_and_refuses_other_controls() {
        assert_eq!(
            valid_text("c", " a\nb\tc ", 10).ok().as_deref(),
            Some("a\nb\tc")
        );
        for bad in [
            "a\0b",
            "a\u{7}b",
            "a\rb",
            "a\r\nb",
            "\u{1b}[31m",
            "a\u{85}b",
        ] {
            assert!(valid_text("c", bad, 10).is_err(), "{bad:?}");
        }
        assert!(valid_line("c", "a\nb", 10).is_err());
        for blank in ["   ", "\n\t", "\u{a0}\u{3000}", ""] {
            assert!(valid_text("c", blank, 10).is_err(), "{blank:?}");
        }
        assert!(valid_text("c", "ééééé", 5).is_ok());
        assert!(valid_text("c", "éééééé", 5).is_err());
        assert!(
            valid_text("c", " éééé ", 5).is_err(),
            "the limit counts what was sent"
        );
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

    #[test]
    fn emails_cursors_and_limits() {
        assert_eq!(
            valid_email("e", "Lea@Example.com").ok().as_deref(),
            Some("lea@example.com")
        );
        let longer_lowercased = format!("{}@example.com", "\u{130}".repeat(200));
        assert!(valid_email("e", &longer_lowercased).is_err());
        for bad in [
            "lea",
            "lea@example",
            "@example.com",
            "lea@.com",
            " lea@example.com",
            "lea@ex ample.com",
            "a@b@c.d",
        ] {
            assert!(valid_email("e", bad).is_err(), "{bad:?}");
        }
        assert!(cursor(Some("1700000000000000-42")).is_ok_and(|c| c.is_some()));
        for bad in [
            "",
            "-",
            "+5-3",
            "5-",
            "12345678901234567-1",
            "1-1234567890123456789",
        ] {
            assert!(cursor(Some(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(limit("limit", None, 20, 100).ok(), Some(20));
        assert!(limit("limit", Some(101), 20, 100).is_err());
        assert!(limit("limit", Some(0), 20, 100).is_err());
    }

    /// The declared regular expressions say what the checks do, on the same samples.
    #[test]
    fn the_declared_formats_agree_with_the_checks() {
        let samples = [
            "bonjour",
            " a ",
            "a\nb",
            "a\tb",
            "\n",
            " ",
            "",
            "a\rb",
            "a\0",
            "a\u{85}",
            "\u{a0}x",
            "\u{3000}",
            "é",
            "lea@example.com",
            "lea@example",
            "a b@c.d",
        ];
        let re = |p: &str| regex::Regex::new(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        let (text, line, email) = (re(formats::TEXT), re(formats::LINE), re(formats::EMAIL));
        for s in samples {
            assert_eq!(
                text.is_match(s),
                valid_text("t", s, 100).is_ok(),
                "TEXT {s:?}"
            );
            assert_eq!(
                line.is_match(s),
                valid_line("l", s, 100).is_ok(),
                "LINE {s:?}"
            );
            assert_eq!(
                email.is_match(s),
                valid_email("e", s).is_ok(),
                "EMAIL {s:?}"
            );
        }
    }
}
