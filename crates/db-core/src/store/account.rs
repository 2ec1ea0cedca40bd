//! The account as a whole: a new password (every session ends), its deletion (every row, every
//! cache key, the leaderboard entry, the images queued for the media service), the reads its
//! export needs, and the storage purges the media service works through.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Shared;
use crate::models::{Message, SecretString, User};
use crate::pool::DbError;
use crate::queries::account;

pub use crate::queries::account::{Deleted, StoragePurge, photo_prefix};

pub struct Account<'s>(pub(super) &'s Shared);

impl Account<'_> {
    /// The account with its password hash, from the primary (to check a password).
    pub async fn credentials(&self, user: Uuid) -> Result<Option<User>, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(account::credentials(&mut conn, user).await?)
    }

    /// Sets a new password and ends every session of the user, access tokens included, in
    /// every process; `None` if there is no such user, else how many session families ended.
    pub async fn change_password(
        &self,
        user: Uuid,
        password_hash: &SecretString,
    ) -> Result<Option<usize>, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let families = account::change_password(&mut conn, user, password_hash.expose()).await?;
        drop(conn);
        let Some(families) = families else {
            return Ok(None);
        };
        s.revoked(&families).await;
        Ok(Some(families.len()))
    }

    /// Deletes the account: every row that names it (one transaction), its sessions (refused
    /// everywhere at once), every cache key of it and its leaderboard entry, and a purge of its
    /// images queued for the media service in the same transaction. `None` if there is no such
    /// user.
    pub async fn delete(&self, user: Uuid) -> Result<Option<Deleted>, DbError> {
        let s = self.0;
        let keep = chrono::Duration::from_std(crate::revocations::MAX_ACCESS_TTL)
            .unwrap_or(chrono::Duration::hours(1))
            + chrono::Duration::minutes(1);
        let mut conn = s.db.write().await?;
        let deleted = account::delete_user(&mut conn, user, Utc::now() - keep).await?;
        drop(conn);
        let Some(deleted) = deleted else {
            return Ok(None);
        };
        s.revoked(&deleted.families).await;
        forget(s, user, &deleted).await;
        s.settle().await;
        Ok(Some(deleted))
    }

    /// A conversation oldest first: up to `limit` messages strictly after `after`.
    pub async fn messages_after(
        &self,
        user: Uuid,
        character: &str,
        after: Option<(DateTime<Utc>, i64)>,
        limit: i64,
    ) -> Result<Vec<Message>, DbError> {
        let mut conn = self.0.db.read().await?;
        Ok(
            account::messages_after(&mut conn, user, character, after, limit.clamp(1, 1000))
                .await?,
        )
    }

    /// Purges of the media store that are due.
    pub async fn purges_due(&self, limit: i64) -> Result<Vec<StoragePurge>, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(account::purges_due(&mut conn, Utc::now(), limit).await?)
    }

    /// A pass over a purge's prefix is done; `again`: pass once more after that long.
    pub async fn purge_passed(
        &self,
        id: i64,
        again: Option<std::time::Duration>,
    ) -> Result<(), DbError> {
        let again = again.map(|d| Utc::now() + chrono::Duration::from_std(d).unwrap_or_default());
        let mut conn = self.0.db.write().await?;
        Ok(account::purge_passed(&mut conn, id, again).await?)
    }
}

impl Shared {
    /// Families just revoked: refused by this process at once, and announced to the others.
    async fn revoked(&self, families: &[Uuid]) {
        for f in families {
            self.revocations.note(*f, Utc::now());
        }
        self.cache.publish_revocations(families).await;
    }
}

/// Every cache key of a deleted user: each family of `cache::keys` by name (with their load
/// locks and version keys), the leaderboard entry, then a `SCAN` of the prefix for any other
/// key that names the user (rate-limit windows, a family added later) and for the sign-in
/// throttling keys of its email. A deletion is rare; two scans of the keyspace are its price.
async fn forget(s: &Shared, user: Uuid, gone: &Deleted) {
    let k = s.cache.keys();
    let mut keys = vec![
        k.user_profile(user),
        k.match_list(user),
        k.match_list_version(user),
    ];
    for c in &gone.characters {
        keys.extend([
            k.conversation(user, c),
            k.conversation_version(user, c),
            k.photo_page(user, c),
            k.photo_page_version(user, c),
            k.typing(user, c),
            k.unread(user, c),
        ]);
    }
    let locks: Vec<String> = keys.iter().map(|key| k.lock(key)).collect();
    keys.extend(locks);
    // Plain UNLINK, no version bump: a bumped version key would itself be a key of the user.
    s.cache.delete(&keys).await;
    let mut zrem = redis::cmd("ZREM");
    zrem.arg(k.leaderboard()).arg(user.to_string());
    if s.cache.cmd::<i64>(zrem).await.is_none() {
        // Rebuilt from PostgreSQL, without the user, when next read.
        s.cache.defer_delete(k.leaderboard());
    }
    s.cache
        .delete_matching(&format!("{}:*{user}*", k.prefix()))
        .await;
    let tag = crate::cache::limits::account_tag(&gone.email);
    s.cache
        .delete_matching(&k.rate_limit("login-*", &format!("{tag}:*"), 0))
        .await;
}
