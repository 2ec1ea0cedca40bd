//! What a character remembers about a user. Not cached: read when a conversation's memories
//! screen opens and when a reply's prompt is built, both rare next to the conversation reads.

use uuid::Uuid;

use super::Shared;
use crate::models::{Memory, MemoryHit, NewMemory};
use crate::pagination::{Cursor, KeysetPage};
use crate::pool::DbError;
use crate::queries::memories;

pub struct Memories<'s>(pub(super) &'s Shared);

impl Memories<'_> {
    /// One character's memories of the user, newest first, keyset-paged.
    pub async fn list(
        &self,
        user: Uuid,
        character: &str,
        before: Option<Cursor>,
        limit: i64,
    ) -> Result<KeysetPage<Memory>, DbError> {
        let mut conn = self.0.db.read().await?;
        Ok(memories::list(&mut conn, user, character, before, limit).await?)
    }

    /// The user's memories matching `query` (French full text), best first.
    pub async fn search(
        &self,
        user: Uuid,
        query: &str,
        character: Option<&str>,
        limit: i64,
    ) -> Result<Vec<MemoryHit>, DbError> {
        let mut conn = self.0.db.read().await?;
        Ok(memories::search(&mut conn, user, query, character, limit).await?)
    }

    /// Remembers `new` once per match (a fact remembered already is confirmed and returned:
    /// `created` is false), then keeps the match's memories within `max` (see
    /// [`memories::evict`]). `(memory, created)`.
    pub async fn create(&self, new: &NewMemory, max: i64) -> Result<(Memory, bool), DbError> {
        let mut conn = self.0.db.write().await?;
        let (memory, created) = memories::insert(&mut conn, new).await?;
        if created {
            memories::evict(&mut conn, new.user_id, &new.character_id, max).await?;
        }
        Ok((memory, created))
    }

    /// Rewrites a memory of the user's; `None` if there is none with this id. A text the match
    /// remembers already merges the two (the other one is returned).
    pub async fn update(
        &self,
        user: Uuid,
        id: i64,
        content: &str,
    ) -> Result<Option<Memory>, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(memories::update(&mut conn, user, id, content).await?)
    }

    /// Forgets a memory of the user's; false if there is none with this id.
    pub async fn delete(&self, user: Uuid, id: i64) -> Result<bool, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(memories::delete(&mut conn, user, id).await?)
    }
}
