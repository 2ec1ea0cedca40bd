//! The photos characters sent: the first gallery page cached per conversation, older pages
//! from PostgreSQL.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Shared;
use crate::cache::Family;
use crate::models::{NewPhoto, Photo};
use crate::pagination::{Cursor, KeysetPage, clamp_limit};
use crate::pool::DbError;
use crate::queries::photos;

pub struct Photos<'s>(pub(super) &'s Shared);

/// The first gallery page, as cached.
#[derive(Serialize, Deserialize)]
struct CachedPhotos {
    items: Vec<Photo>,
    more: bool,
}

/// Photos held in the cached first gallery page.
pub const CACHED_PHOTO_PAGE: usize = 50;

impl Photos<'_> {
    /// The gallery, newest first: the first page from the cache, older pages from PostgreSQL.
    pub async fn page(
        &self,
        user: Uuid,
        character: &str,
        before: Option<Cursor>,
        limit: i64,
    ) -> Result<KeysetPage<Photo>, DbError> {
        let s = self.0;
        let limit = clamp_limit(limit);
        if before.is_some() || limit as usize > CACHED_PHOTO_PAGE {
            let mut conn = s.db.read().await?;
            return Ok(photos::latest(&mut conn, user, character, before, limit).await?);
        }
        let key = s.cache.keys().photo_page(user, character);
        let cached: CachedPhotos = s
            .cache
            .get_or_load(Family::PhotoPage, &key, || async {
                let mut conn = s.db.write().await?;
                let page =
                    photos::latest(&mut conn, user, character, None, CACHED_PHOTO_PAGE as i64)
                        .await?;
                Ok::<_, DbError>(CachedPhotos {
                    more: page.next.is_some(),
                    items: page.items,
                })
            })
            .await?;
        let more = cached.items.len() > limit as usize || cached.more;
        let mut items = cached.items;
        items.truncate(limit as usize);
        let next = if more {
            items.last().map(|p| Cursor::new(p.received_at, p.id))
        } else {
            None
        };
        Ok(KeysetPage { items, next })
    }

    /// One photo of the user's.
    pub async fn get(&self, user: Uuid, id: i64) -> Result<Option<Photo>, DbError> {
        let mut conn = self.0.db.read().await?;
        Ok(photos::get(&mut conn, user, id).await?)
    }

    /// A photo received outside the job queue (the seed, imports); the gallery page is dropped.
    pub async fn add(&self, new: &NewPhoto) -> Result<Photo, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let photo = photos::insert(&mut conn, new).await?;
        drop(conn);
        s.cache
            .delete(&[s.cache.keys().photo_page(new.user_id, &new.character_id)])
            .await;
        s.settle().await;
        Ok(photo)
    }
}

impl Photos<'_> {
    /// Stored files whose photo row is gone (an unmatch, an account deletion): what the media
    /// service deletes from storage, `(entry id, storage key)`, oldest first.
    pub async fn files_to_delete(&self, limit: i64) -> Result<Vec<(i64, String)>, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(photos::files_to_delete(&mut conn, limit).await?)
    }

    /// The files of these entries are gone from storage: forget them.
    pub async fn files_deleted(&self, ids: &[i64]) -> Result<usize, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(photos::files_deleted(&mut conn, ids).await?)
    }
}
