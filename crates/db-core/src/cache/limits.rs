//! Pure-Redis state with no PostgreSQL behind it: shared rate-limit counters and revoked
//! session families. Without Redis, nothing is limited and nothing is known revoked.

use chrono::Utc;
use uuid::Uuid;

use super::Cache;

/// One fixed-window rate-limit count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the window resets.
    pub reset_after: u64,
    pub exceeded: bool,
}

/// What [`Cache::gate`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    pub ip: Option<RateLimit>,
    pub user: Option<RateLimit>,
    pub revoked: Option<bool>,
}

/// One fixed window of a rate limit.
struct Window {
    secs: u64,
    now: u64,
    index: u64,
}

impl Window {
    fn now(secs: u64) -> Self {
        let secs = secs.max(1);
        let now = Utc::now().timestamp().max(0) as u64;
        Self {
            secs,
            now,
            index: now / secs,
        }
    }

    /// INCR the window's counter (its value is the pipeline's next result) and let it expire
    /// with the window.
    fn count(&self, pipe: &mut redis::Pipeline, key: &str) {
        pipe.incr(key, 1)
            .cmd("EXPIRE")
            .arg(key)
            .arg(self.secs)
            .arg("NX")
            .ignore();
    }

    fn limit(&self, count: u64, limit: u64) -> RateLimit {
        RateLimit {
            limit,
            remaining: limit.saturating_sub(count),
            reset_after: (self.index + 1) * self.secs - self.now,
            exceeded: count > limit,
        }
    }
}

impl Cache {
    /// Counts one hit of `id` in `scope` in the current fixed window of `window_secs`. Shared by
    /// every replica through Redis; `None` (nothing limited) when Redis is unavailable.
    pub async fn rate_limit(
        &self,
        scope: &str,
        id: &str,
        window_secs: u64,
        limit: u64,
    ) -> Option<RateLimit> {
        let w = Window::now(window_secs);
        let key = self.keys().rate_limit(scope, id, w.index);
        let mut pipe = redis::pipe();
        w.count(&mut pipe, &key);
        let (count,): (u64,) = self.pipe(pipe).await?;
        Some(w.limit(count, limit))
    }

    /// The gateway's checks of one request in one round trip: the caller's IP counted against
    /// `ip_limit` and, for a signed-in caller, the user counted against `user_limit` and their
    /// session family checked for a logout. Every part is `None` when Redis cannot answer.
    pub async fn gate(
        &self,
        ip: &str,
        caller: Option<(Uuid, Uuid)>,
        window_secs: u64,
        ip_limit: u64,
        user_limit: u64,
    ) -> Gate {
        let w = Window::now(window_secs);
        let mut pipe = redis::pipe();
        w.count(&mut pipe, &self.keys().rate_limit("ip", ip, w.index));
        let Some((user, family)) = caller else {
            let counted: Option<(u64,)> = self.pipe(pipe).await;
            return Gate {
                ip: counted.map(|(c,)| w.limit(c, ip_limit)),
                user: None,
                revoked: None,
            };
        };
        w.count(
            &mut pipe,
            &self.keys().rate_limit("user", &user.to_string(), w.index),
        );
        pipe.exists(self.keys().session(&format!("revoked:{family}")));
        let answered: Option<(u64, u64, bool)> = self.pipe(pipe).await;
        Gate {
            ip: answered.map(|(c, _, _)| w.limit(c, ip_limit)),
            user: answered.map(|(_, c, _)| w.limit(c, user_limit)),
            revoked: answered.map(|(_, _, r)| r),
        }
    }

    /// Marks a session family as logged out, so that its access tokens are refused until they
    /// expire (`ttl`). Best effort: without Redis they live out their short lifetime.
    pub async fn revoke_family(&self, family: Uuid, ttl: std::time::Duration) {
        let mut set = redis::cmd("SET");
        set.arg(self.keys().session(&format!("revoked:{family}")))
            .arg(1)
            .arg("EX")
            .arg(ttl.as_secs().max(1));
        let _: Option<()> = self.cmd(set).await;
    }
}
