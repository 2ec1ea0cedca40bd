//! Matches: the cached match list (a hash per user, a field per match, updated in place by
//! sends and mark-reads), membership tests on it for every ownership check, new matches.

use uuid::Uuid;

use super::Shared;
use crate::models::{Match, MatchSummary};
use crate::pool::DbError;
use crate::queries::matches;

pub use crate::queries::matches::MatchError;

pub struct Matches<'s>(pub(super) &'s Shared);

impl Matches<'_> {
    /// The user's matches with their last message and unread count, most recent first (one
    /// query on a miss, cached).
    pub async fn list(&self, user: Uuid) -> Result<Vec<MatchSummary>, DbError> {
        let s = self.0;
        s.cache
            .match_list(user, || async {
                // The primary: a list must not miss a message a replica has not seen yet.
                let mut conn = s.db.write().await?;
                Ok::<_, DbError>(matches::list_with_last_message(&mut conn, user).await?)
            })
            .await
    }

    /// One match of the user's, as the list has it.
    pub async fn get(&self, user: Uuid, character: &str) -> Result<Option<MatchSummary>, DbError> {
        Ok(self
            .list(user)
            .await?
            .into_iter()
            .find(|m| m.character_id == character))
    }

    /// Whether the user matched the character: the check every conversation, gallery and
    /// reply makes first. A membership test on the cached list; on a miss, the list is loaded
    /// (and cached).
    pub async fn contains(&self, user: Uuid, character: &str) -> Result<bool, DbError> {
        if let Some(known) = self.0.cache.match_listed(user, character).await {
            return Ok(known);
        }
        let list = self.list(user).await?;
        Ok(list.iter().any(|m| m.character_id == character))
    }

    /// Matches the user with the character (`true`: new), or finds the match that exists. A new
    /// match opens with the character's greeting, stored in the same transaction: a retried
    /// request finds the match and adds nothing, so the greeting is there exactly once.
    pub async fn create(&self, user: Uuid, character: &str) -> Result<(Match, bool), MatchError> {
        use diesel_async::AsyncConnection;
        let s = self.0;
        let mut conn = s.db.write().await?;
        // Someone else's character is as unknown as one that does not exist.
        if crate::queries::characters::get_visible(&mut conn, user, character)
            .await
            .map_err(DbError::from)?
            .is_none()
        {
            return Err(MatchError::UnknownCharacter);
        }
        let (created, greeting) = conn
            .transaction(async |conn| {
                let created = matches::create(conn, user, character).await?;
                let greeting = if created.1 {
                    matches::insert_greeting(conn, user, character)
                        .await
                        .map_err(crate::pool::DbError::from)?
                } else {
                    None
                };
                Ok::<_, MatchError>((created, greeting))
            })
            .await?;
        drop(conn);
        if created.1 {
            if let Some(g) = &greeting {
                super::conversations::after_new_message(s, g).await;
            }
            s.cache.invalidate_match_list(user).await;
            s.settle().await;
        }
        Ok(created)
    }

    /// Unmatches: the match and everything in it go for good (messages, their replies and
    /// alternatives, photos and their stored files, photo jobs, memories), in one statement;
    /// every cached view of it is dropped. Matching again starts afresh, with the greeting.
    /// `false` if there was no such match.
    pub async fn delete(&self, user: Uuid, character: &str) -> Result<bool, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let gone = matches::delete(&mut conn, user, character).await?;
        drop(conn);
        if gone {
            let keys = s.cache.keys();
            s.cache.invalidate_window(user, character).await;
            s.cache.invalidate_gallery(user, character).await;
            s.cache.invalidate_match_list(user).await;
            s.cache
                .delete(&[keys.unread(user, character), keys.typing(user, character)])
                .await;
            s.settle().await;
        }
        Ok(gone)
    }
}
