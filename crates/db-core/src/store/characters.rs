//! Characters as one user sees them: the public catalogue (cached, shared by everyone, see
//! [`super::Catalogue`]) and the characters they wrote themselves. Their own are read from
//! PostgreSQL (the primary key, or `characters_owner_idx`) and never cached: nothing of one
//! user's can end up under a key another user reads, and an edit is seen at once.

use std::sync::Arc;

use uuid::Uuid;

use super::{Catalogue, Shared};
use crate::models::{Character, CharacterChanges, CharacterDraft, is_character_id};
use crate::pool::DbError;
use crate::queries::characters::{self, CreateCharacterError, DeletedCharacter};

pub struct Characters<'s>(pub(super) &'s Shared);

/// How many characters one user may have.
pub const MAX_OWN_CHARACTERS: i64 = 200;

/// Why a character could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("at most {0} characters of one's own")]
    TooMany(i64),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Characters<'_> {
    /// The character if `user` may see it (public, or theirs); someone else's is `None`, as is
    /// an id that does not exist.
    pub async fn visible(&self, user: Uuid, id: &str) -> Result<Option<Arc<Character>>, DbError> {
        if let Some(c) = Catalogue(self.0).get(id).await? {
            return Ok(Some(c));
        }
        if !is_character_id(id) {
            return Ok(None);
        }
        // The primary: a character created a moment ago must be found.
        let mut conn = self.0.db.write().await?;
        Ok(characters::get_owned(&mut conn, user, id)
            .await?
            .map(Arc::new))
    }

    /// `owner`'s characters, by name.
    pub async fn owned_by(&self, owner: Uuid) -> Result<Vec<Character>, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(characters::owned_by(&mut conn, owner).await?)
    }

    /// One of `owner`'s characters.
    pub async fn get_owned(&self, owner: Uuid, id: &str) -> Result<Option<Character>, DbError> {
        if !is_character_id(id) {
            return Ok(None);
        }
        let mut conn = self.0.db.write().await?;
        Ok(characters::get_owned(&mut conn, owner, id).await?)
    }

    /// Creates a character of `owner`'s, under a new id made from its name.
    pub async fn create(
        &self,
        owner: Uuid,
        draft: &CharacterDraft,
    ) -> Result<Character, CreateError> {
        let mut conn = self.0.db.write().await?;
        let id = new_id(&draft.name);
        characters::create_owned(&mut conn, owner, &id, draft, MAX_OWN_CHARACTERS)
            .await
            .map_err(|e| match e {
                CreateCharacterError::TooMany(n) => CreateError::TooMany(n),
                CreateCharacterError::Db(e) => CreateError::Db(e.into()),
            })
    }

    /// Edits one of `owner`'s characters; `None` if it is not theirs. A new name drops the
    /// owner's cached match list, which shows it (only the owner can match their own).
    pub async fn update(
        &self,
        owner: Uuid,
        id: &str,
        changes: &CharacterChanges,
    ) -> Result<Option<Character>, DbError> {
        if !is_character_id(id) {
            return Ok(None);
        }
        let s = self.0;
        let mut conn = s.db.write().await?;
        let updated = characters::update_owned(&mut conn, owner, id, changes).await?;
        drop(conn);
        if updated.is_some() && changes.name.is_some() {
            s.cache.invalidate_match_list(owner).await;
            s.settle().await;
        }
        Ok(updated)
    }

    /// Points one of `owner`'s characters at another avatar object (or none); returns the
    /// character and the key of the object it replaced, which the caller deletes.
    pub async fn set_avatar(
        &self,
        owner: Uuid,
        id: &str,
        key: Option<&str>,
    ) -> Result<Option<(Character, Option<String>)>, DbError> {
        if !is_character_id(id) {
            return Ok(None);
        }
        let mut conn = self.0.db.write().await?;
        Ok(characters::set_avatar(&mut conn, owner, id, key).await?)
    }

    /// Deletes one of `owner`'s characters and their match with it (conversation, memories,
    /// photos), and drops what the cache held of that conversation. Returns the storage keys
    /// left to delete (the avatar, the photos); `None` if it is not theirs.
    pub async fn delete(&self, owner: Uuid, id: &str) -> Result<Option<DeletedCharacter>, DbError> {
        if !is_character_id(id) {
            return Ok(None);
        }
        let s = self.0;
        let mut conn = s.db.write().await?;
        let deleted = characters::delete_owned(&mut conn, owner, id).await?;
        drop(conn);
        if deleted.is_some() {
            s.cache.invalidate_window(owner, id).await;
            s.cache.invalidate_gallery(owner, id).await;
            s.cache.invalidate_match_list(owner).await;
            let keys = s.cache.keys();
            s.cache
                .delete(&[keys.unread(owner, id), keys.typing(owner, id)])
                .await;
            s.settle().await;
        }
        Ok(deleted)
    }
}

/// A private character's id: its name made into a slug, and a random tail, so that it never
/// collides with a catalogue id or another user's (e.g. `mira-3f9a1c2b7d`).
fn new_id(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 24 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() { "character" } else { slug };
    let tail = Uuid::new_v4().simple().to_string();
    format!("{slug}-{}", &tail[..10])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_slugs_with_a_random_tail() {
        for name in ["Mira", "  Ünïcode Ňame!! ", "東京", "a--b", &"x".repeat(80)] {
            let id = new_id(name);
            assert!(is_character_id(&id), "{name:?} → {id:?}");
        }
        assert!(new_id("Mira Moon").starts_with("mira-moon-"));
        assert!(new_id("東京").starts_with("character-"));
        assert_ne!(new_id("Mira"), new_id("Mira"));
    }
}
