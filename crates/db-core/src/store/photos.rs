//! The photos characters sent: the first gallery page cached per conversation, ready to send,
//! older pages from PostgreSQL.

use serde::Serialize;
use uuid::Uuid;

use super::Shared;
use crate::cache::window::Window;
use crate::models::{NewPhoto, Photo};
use crate::pagination::{Cursor, KeysetPage, clamp_limit};
use crate::pool::DbError;
use crate::queries::photos;

pub struct Photos<'s>(pub(super) &'s Shared);

/// Photos held in the cached first gallery page.
pub const CACHED_PHOTO_PAGE: usize = 50;

impl Photos<'_> {
    /// The gallery, newest first, from PostgreSQL (exports and tools; the API's reads go
    /// through [`Photos::page_body`]).
    pub async fn page(
        &self,
        user: Uuid,
        character: &str,
        before: Option<Cursor>,
        limit: i64,
    ) -> Result<KeysetPage<Photo>, DbError> {
        let mut conn = self.0.db.read().await?;
        Ok(photos::latest(&mut conn, user, character, before, clamp_limit(limit)).await?)
    }

    /// A page of the user's own gallery as the response body, each photo as `view` shows it;
    /// `None` when the user has no match with this character. `next` is set whenever the page
    /// is full. The first page (up to [`CACHED_PHOTO_PAGE`]) goes out as the cache holds it: the
    /// documents `view` made when the page was loaded, cut from the stored value and never
    /// decoded or encoded again. A cached page proves the match by existing: it is only stored
    /// after the match was checked, and dropped with the match (its version bumped, so that a
    /// load under way when the match went does not store it again).
    pub async fn page_body<V: Serialize>(
        &self,
        user: Uuid,
        character: &str,
        before: Option<Cursor>,
        limit: i64,
        view: impl Fn(Photo) -> V + Send + 'static,
    ) -> Result<Option<Vec<u8>>, DbError> {
        let s = self.0;
        let limit = clamp_limit(limit);
        if before.is_none() && limit as usize <= CACHED_PHOTO_PAGE {
            let place = s.cache.gallery_place(user, character);
            let owned = character.to_owned();
            return s
                .first_page_body(
                    &place,
                    user,
                    character,
                    limit as usize,
                    move |s| async move {
                        // The primary: a photo just delivered is in the page stored.
                        let mut conn = s.db.write().await?;
                        let loaded =
                            photos::latest(&mut conn, user, &owned, None, CACHED_PHOTO_PAGE as i64)
                                .await?;
                        let mut docs = Vec::with_capacity(loaded.items.len());
                        for p in loaded.items {
                            let (id, at) = (p.id, p.received_at.timestamp_micros());
                            docs.push((super::body_of(&view(p))?, id, at));
                        }
                        Ok(Window::of_docs(docs))
                    },
                )
                .await;
        }
        if !super::Matches(s).contains(user, character).await? {
            return Ok(None);
        }
        let page = self.page(user, character, before, limit).await?;
        super::body_of(&KeysetPage {
            items: page.items.into_iter().map(view).collect::<Vec<_>>(),
            next: page.next,
        })
        .map(Some)
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
            .invalidate_gallery(new.user_id, &new.character_id)
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
