//! Characters who write first: the user's and each match's settings, and the durable queue of
//! the messages characters send after a silence (`queries::nudges` tells how each silence is
//! answered once). A message that lands updates the caches as any new message does.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Shared;
use crate::models::Nudge;
use crate::pool::DbError;
use crate::queries::nudges;

pub use crate::queries::nudges::{Finished, MatchSettings, Silent, UserSettings};

pub struct WriteFirst<'s>(pub(super) &'s Shared);

impl WriteFirst<'_> {
    /// The user's settings (time zone, whether characters write first).
    pub async fn user_settings(&self, user: Uuid) -> Result<UserSettings, DbError> {
        let mut conn = self.0.db.read().await?;
        Ok(nudges::user_settings(&mut conn, user).await?)
    }

    /// Changes what is given (`time_zone` must be a valid IANA name: the caller checks it).
    pub async fn set_user_settings(
        &self,
        user: Uuid,
        time_zone: Option<&str>,
        write_first: Option<bool>,
    ) -> Result<UserSettings, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(nudges::set_user_settings(&mut conn, user, time_zone, write_first).await?)
    }

    /// A match's settings and its latest nudge; `None` if the user has no such match.
    pub async fn match_settings(
        &self,
        user: Uuid,
        character: &str,
    ) -> Result<Option<(MatchSettings, Option<Nudge>)>, DbError> {
        if !super::Matches(self.0).contains(user, character).await? {
            return Ok(None);
        }
        let mut conn = self.0.db.read().await?;
        let settings = nudges::match_settings(&mut conn, user, character).await?;
        let latest = nudges::latest(&mut conn, user, character).await?;
        Ok(Some((settings, latest)))
    }

    /// Sets a match's settings; `None` if the user has no such match.
    pub async fn set_match_settings(
        &self,
        user: Uuid,
        character: &str,
        write_first: bool,
        after_s: Option<i32>,
    ) -> Result<Option<(MatchSettings, Option<Nudge>)>, DbError> {
        if !super::Matches(self.0).contains(user, character).await? {
            return Ok(None);
        }
        let mut conn = self.0.db.write().await?;
        let set =
            nudges::set_match_settings(&mut conn, user, character, write_first, after_s).await;
        let settings = match set {
            Ok(s) => s,
            // Unmatched meanwhile.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _,
            )) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let latest = nudges::latest(&mut conn, user, character).await?;
        Ok(Some((settings, latest)))
    }

    /// Silent matches without a nudge for their silence (at most `limit`).
    pub async fn silent(
        &self,
        default_after: Duration,
        limit: i64,
    ) -> Result<Vec<Silent>, DbError> {
        let mut conn = self.0.db.write().await?;
        let after_s = i64::try_from(default_after.as_secs())
            .unwrap_or(i64::MAX)
            .max(1);
        Ok(nudges::silent(&mut conn, after_s, limit).await?)
    }

    /// Queues the nudge for `silent`'s silence from `run_after`; false if it has one already.
    pub async fn plan(&self, silent: &Silent, run_after: DateTime<Utc>) -> Result<bool, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(nudges::plan(&mut conn, silent, run_after).await?)
    }

    /// The next nudge to write, held for `lease`.
    pub async fn claim(&self, lease: Duration) -> Result<Option<Nudge>, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(nudges::claim(&mut conn, lease).await?)
    }

    /// Extends the lease; false when this attempt no longer holds the nudge.
    pub async fn renew(&self, n: &Nudge, lease: Duration) -> Result<bool, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(nudges::renew(&mut conn, n, lease).await?)
    }

    /// Puts the nudge back until `run_after` (its user's night is not over).
    pub async fn defer(&self, n: &Nudge, run_after: DateTime<Utc>) -> Result<bool, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(nudges::release(&mut conn, n, run_after, None, i32::MAX).await?)
    }

    /// Gives a failed attempt up: tried again after `backoff`, or failed after `max_attempts`.
    pub async fn give_up(
        &self,
        n: &Nudge,
        error: &str,
        backoff: Duration,
        max_attempts: i32,
    ) -> Result<bool, DbError> {
        let mut conn = self.0.db.write().await?;
        let at = Utc::now() + chrono::Duration::from_std(backoff).unwrap_or_default();
        Ok(nudges::release(&mut conn, n, at, Some(error), max_attempts).await?)
    }

    /// Finishes the attempt that holds `n` (see [`nudges::finish`]); a message that lands goes
    /// into the conversation's window, its unread count and the match list at once.
    pub async fn finish(&self, n: &Nudge, content: &str) -> Result<Finished, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let finished = nudges::finish(&mut conn, n, content).await?;
        drop(conn);
        if let Finished::Sent(m) = &finished {
            super::conversations::after_new_message(s, m).await;
            s.settle().await;
        }
        Ok(finished)
    }

    /// Nudges waiting or being written (the dashboard).
    pub async fn backlog(&self) -> Result<i64, DbError> {
        let mut conn = self.0.db.read().await?;
        Ok(nudges::backlog(&mut conn).await?)
    }
}
