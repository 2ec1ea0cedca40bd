//! The leaderboard: a Redis sorted set of every user's XP, rebuilt from PostgreSQL whenever it
//! is missing, updated in place on every XP change.

use uuid::Uuid;

use super::Shared;
use crate::cache::{Family, Outcome};
use crate::models::{LeaderboardEntry, Rank};
use crate::pool::DbError;
use crate::queries::users;

pub struct Leaderboard<'s>(pub(super) &'s Shared);

impl Leaderboard<'_> {
    /// Top users by XP, from the sorted set (PostgreSQL when Redis cannot answer).
    pub async fn top(&self, limit: i64) -> Result<Vec<LeaderboardEntry>, DbError> {
        let s = self.0;
        let limit = limit.clamp(1, 100);
        let Some(top) = self.ranked_ids(limit).await? else {
            let mut conn = s.db.read().await?;
            return Ok(users::top_by_xp(&mut conn, limit).await?);
        };
        let ids: Vec<Uuid> = top.iter().map(|(id, _)| *id).collect();
        let mut conn = s.db.read().await?;
        let mut entries = users::leaderboard_entries(&mut conn, &ids).await?;
        entries.sort_by_key(|e| ids.iter().position(|id| *id == e.user_id));
        Ok(entries)
    }

    /// A user's rank: 1 + the users with more XP (ties share a rank).
    pub async fn rank(&self, user: Uuid) -> Result<Option<Rank>, DbError> {
        let s = self.0;
        let key = s.cache.keys().leaderboard();
        if self.ensure().await? {
            let mut pipe = redis::pipe();
            pipe.zscore(&key, user.to_string());
            if let Some((Some(xp),)) = s.cache.pipe::<(Option<i64>,)>(pipe).await {
                let mut count = redis::cmd("ZCOUNT");
                count.arg(&key).arg(format!("({xp}")).arg("+inf");
                if let Some(above) = s.cache.cmd::<i64>(count).await {
                    return Ok(Some(Rank {
                        xp,
                        rank: above + 1,
                    }));
                }
            }
        }
        let mut conn = s.db.read().await?;
        Ok(users::rank_of(&mut conn, user).await?)
    }

    async fn ranked_ids(&self, limit: i64) -> Result<Option<Vec<(Uuid, i64)>>, DbError> {
        let s = self.0;
        if !self.ensure().await? {
            return Ok(None);
        }
        let mut range = redis::cmd("ZREVRANGE");
        range
            .arg(s.cache.keys().leaderboard())
            .arg(0)
            .arg(limit - 1)
            .arg("WITHSCORES");
        Ok(s.cache.cmd::<Vec<(String, i64)>>(range).await.map(|rows| {
            rows.into_iter()
                .filter_map(|(id, xp)| Some((id.parse().ok()?, xp)))
                .collect()
        }))
    }

    /// Makes sure the set exists, rebuilding it from PostgreSQL into a scratch key swapped in
    /// with RENAME (readers never see half of it). False if Redis is unavailable.
    async fn ensure(&self) -> Result<bool, DbError> {
        let s = self.0;
        let key = s.cache.keys().leaderboard();
        match s.cache.cmd::<bool>(redis::Cmd::exists(&key)).await {
            None => return Ok(false),
            Some(true) => {
                s.cache.count(Family::Leaderboard, Outcome::Hit);
                return Ok(true);
            }
            Some(false) => {}
        }
        s.cache.count(Family::Leaderboard, Outcome::Miss);
        let scratch = format!("{key}:rebuild:{}", Uuid::new_v4().simple());
        let mut after = None;
        let mut conn = s.db.read().await?;
        loop {
            let page = users::xp_page(&mut conn, after, 5_000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.0);
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(&scratch);
            for (id, xp) in &page {
                zadd.arg(*xp).arg(id.to_string());
            }
            if s.cache.cmd::<i64>(zadd).await.is_none() {
                return Ok(false);
            }
        }
        let mut rename = redis::cmd("RENAME");
        rename.arg(&scratch).arg(&key);
        // No users at all: nothing to rename, and nothing to rank.
        Ok(after.is_some() && s.cache.cmd::<()>(rename).await.is_some())
    }
}
