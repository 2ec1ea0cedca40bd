pub mod get_character;
pub mod list_characters;

use db_core::models::Character;
use serde::Serialize;

/// A character as the catalogue shows it. The persona (the character's system prompt) stays
/// on the server for the public catalogue: it is how the character is written, not something
/// to hand out. One's own characters come with everything (`owned: true`).
#[derive(utoipa::ToSchema, Serialize)]
pub struct CharacterCard {
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub id: String,
    pub name: String,
    pub tagline: String,
    /// The character's first words to someone new.
    pub greeting: String,
    pub tags: Vec<String>,
    /// One of the caller's own characters (private: nobody else sees it).
    pub owned: bool,
    /// `GET` it for the avatar (one's own characters that have one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// One's own characters only: how the character is written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persona: Option<String>,
    /// One's own characters only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example_dialogue: Option<String>,
}

impl From<&Character> for CharacterCard {
    fn from(c: &Character) -> Self {
        let owned = c.owner_id.is_some();
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            tagline: c.tagline.clone(),
            greeting: c.greeting.clone(),
            tags: c.tags.clone(),
            owned,
            avatar_url: c
                .avatar_key
                .as_ref()
                .filter(|_| owned)
                .map(|_| format!("/api/v1/characters/{}/avatar", c.id)),
            persona: owned.then(|| c.persona.clone()),
            example_dialogue: owned.then(|| c.example_dialogue.clone()),
        }
    }
}

/// Answers that differ by caller must never be shared by an HTTP cache.
pub(crate) fn per_caller(res: &mut actix_web::HttpResponseBuilder, signed_in: bool) {
    res.insert_header((actix_web::http::header::VARY, "Authorization"));
    if signed_in {
        res.insert_header((actix_web::http::header::CACHE_CONTROL, "private, no-cache"));
    }
}
