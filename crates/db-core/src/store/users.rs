//! Accounts and profiles: the cached profile, XP (and the leaderboard it moves), sign-up.

use uuid::Uuid;

use super::Shared;
use crate::cache::Family;
use crate::models::{NewUser, Profile, User};
use crate::pool::DbError;
use crate::queries::users;

pub use crate::queries::users::CreateUserError;

pub struct Users<'s>(pub(super) &'s Shared);

/// Puts `xp` for `user` in the leaderboard set, if the set exists (else it is rebuilt from
/// PostgreSQL when next read).
const ZADD_IF_EXISTS: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) end return -1";

impl Users<'_> {
    /// The profile: Redis (15 min), else PostgreSQL.
    pub async fn profile(&self, user: Uuid) -> Result<Option<Profile>, DbError> {
        let s = self.0;
        let key = s.cache.keys().user_profile(user);
        s.cache
            .get_or_load(Family::UserProfile, &key, || async {
                let mut conn = s.db.read().await?;
                Ok(users::find_by_id(&mut conn, user).await?.map(Profile::from))
            })
            .await
    }

    /// A new account.
    pub async fn create(&self, new: &NewUser) -> Result<User, CreateUserError> {
        let mut conn = self.0.db.write().await?;
        users::create(&mut conn, new).await
    }

    /// The account of an email, with its password hash (sign-in only).
    pub async fn by_email(&self, email: &str) -> Result<Option<User>, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(users::find_by_email(&mut conn, email).await?)
    }

    /// Renames; the cached profile is dropped.
    pub async fn update_display_name(
        &self,
        user: Uuid,
        name: &str,
    ) -> Result<Option<Profile>, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let updated = users::update_display_name(&mut conn, user, name)
            .await?
            .map(Profile::from);
        drop(conn);
        s.cache.delete(&[s.cache.keys().user_profile(user)]).await;
        s.settle().await;
        Ok(updated)
    }

    /// Adds XP (a bonus; replies count theirs with [`super::Generations::complete`]); the
    /// profile is dropped and the leaderboard updated in place.
    pub async fn add_xp(&self, user: Uuid, delta: i64) -> Result<Option<i64>, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let xp = users::add_xp(&mut conn, user, delta).await?;
        drop(conn);
        if let Some(xp) = xp {
            Self::xp_changed(s, user, xp).await;
        }
        s.settle().await;
        Ok(xp)
    }

    /// What a change of XP makes stale: the profile (dropped), the leaderboard (updated in
    /// place, or rebuilt when Redis is back).
    pub(crate) async fn xp_changed(s: &Shared, user: Uuid, xp: i64) {
        let keys = s.cache.keys();
        s.cache.delete(&[keys.user_profile(user)]).await;
        let script = redis::Script::new(ZADD_IF_EXISTS);
        let mut inv = script.key(keys.leaderboard());
        inv.arg(xp).arg(user.to_string());
        s.cache.run_or_defer(inv, keys.leaderboard()).await;
    }

    /// The profile, the match list and the three most recent conversations, loaded into the
    /// cache in the background (after sign-in: the answer does not wait for it).
    pub fn warm(&self, user: Uuid, store: &super::Store) -> tokio::task::JoinHandle<()> {
        let store = store.clone();
        tokio::spawn(async move {
            let warm = async {
                store.users().profile(user).await?;
                let list = store.matches().list(user).await?;
                for m in list.iter().filter(|m| m.last_message_at.is_some()).take(3) {
                    store
                        .conversations()
                        .page(
                            user,
                            &m.character_id,
                            None,
                            crate::cache::window::WINDOW as i64,
                        )
                        .await?;
                }
                Ok::<_, DbError>(())
            };
            if let Err(e) = warm.await {
                tracing::debug!(error = %e, %user, "cache warming failed");
            }
        })
    }
}
