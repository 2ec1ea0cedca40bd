//! The character catalogue: rarely changes, read by every request that names a character. Kept
//! in process memory (a minute), in Redis (30 min), and in PostgreSQL; a change is announced on
//! a Redis channel so every replica drops its copy at once.

use std::sync::Arc;

use super::Shared;
use crate::cache::{Family, Outcome};
use crate::models::Character;
use crate::pool::DbError;
use crate::queries::characters;

pub struct Catalogue<'s>(pub(super) &'s Shared);

impl Catalogue<'_> {
    /// Every character: from process memory, else Redis, else PostgreSQL.
    pub async fn all(&self) -> Result<Arc<Vec<Character>>, DbError> {
        let s = self.0;
        if let Some(hit) = s.cache.local().catalogue.get(&()).await {
            s.cache.count(Family::Character, Outcome::Hit);
            return Ok(hit);
        }
        let key = s.cache.keys().character_list();
        let list: Vec<Character> = s
            .cache
            .get_or_load(Family::Character, &key, || async {
                let mut conn = s.db.read().await?;
                Ok::<_, DbError>(characters::list(&mut conn).await?)
            })
            .await?;
        let list = Arc::new(list);
        if list.is_empty() {
            // Not loaded yet (a deployment's catalogue Job may still be running): ask again
            // next time rather than serve nothing for the cache's lifetime.
            s.cache.delete(&[key]).await;
        } else {
            s.cache.local().catalogue.insert((), list.clone()).await;
        }
        Ok(list)
    }

    /// One character, looked up in the catalogue (in process memory): asking for ids that do
    /// not exist caches nothing anywhere.
    pub async fn get(&self, id: &str) -> Result<Option<Arc<Character>>, DbError> {
        if !crate::models::is_character_id(id) {
            return Ok(None);
        }
        let all = self.all().await?;
        Ok(all.iter().find(|c| c.id == id).cloned().map(Arc::new))
    }

    /// Writes characters and tells every replica to drop its copies.
    pub async fn upsert(&self, rows: &[Character]) -> Result<usize, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let n = characters::upsert(&mut conn, rows).await?;
        drop(conn);
        s.cache.invalidate_characters(None).await;
        s.settle().await;
        Ok(n)
    }
}
