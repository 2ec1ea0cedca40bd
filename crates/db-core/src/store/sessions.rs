//! Refresh sessions and their revocation: a revoked family is recorded in PostgreSQL (the
//! truth), noted in this process and announced to the others.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Shared;
use crate::models::{RefreshSession, SecretBytes};
use crate::pool::DbError;
use crate::queries::sessions;

pub struct Sessions<'s>(pub(super) &'s Shared);

impl Sessions<'_> {
    pub async fn insert(&self, session: &RefreshSession) -> Result<(), DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(sessions::insert(&mut conn, session).await?)
    }

    /// The session of a refresh token (by its hash).
    pub async fn by_token(&self, hash: &SecretBytes) -> Result<Option<RefreshSession>, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(sessions::find_by_token_hash(&mut conn, hash).await?)
    }

    /// Uses a refresh token up: true for exactly one of racing callers; false if it was used
    /// (or revoked, or expired) before: a replay.
    pub async fn use_up(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(sessions::mark_used(&mut conn, id, now).await?)
    }

    /// Ends a session family: its refresh tokens stop working and its access tokens are refused
    /// by every process.
    pub async fn revoke_family(&self, user: Uuid, family: Uuid) -> Result<(), DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        sessions::revoke_family(&mut conn, user, family).await?;
        drop(conn);
        s.revocations.note(family, Utc::now());
        s.cache.publish_revocations(&[family]).await;
        Ok(())
    }

    /// Ends every session of a user (log out everywhere); returns how many families ended.
    pub async fn revoke_all(&self, user: Uuid) -> Result<usize, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let families = sessions::revoke_all_for_user(&mut conn, user).await?;
        drop(conn);
        for f in &families {
            s.revocations.note(*f, Utc::now());
        }
        s.cache.publish_revocations(&families).await;
        Ok(families.len())
    }
}
