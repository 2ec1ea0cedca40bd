pub mod get_character;
pub mod list_characters;

use db_core::models::Character;
use serde::Serialize;

/// A character as the catalogue shows it. The persona (the character's system prompt) stays
/// on the server: it is how the character is written, not something to hand out.
#[derive(utoipa::ToSchema, Serialize)]
pub struct CharacterCard {
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub id: String,
    pub name: String,
    pub tagline: String,
    /// The character's first words to someone new.
    pub greeting: String,
    pub tags: Vec<String>,
}

impl From<&Character> for CharacterCard {
    fn from(c: &Character) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            tagline: c.tagline.clone(),
            greeting: c.greeting.clone(),
            tags: c.tags.clone(),
        }
    }
}
