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
        let window_secs = window_secs.max(1);
        let now = Utc::now().timestamp().max(0) as u64;
        let window = now / window_secs;
        let key = self.keys().rate_limit(scope, id, window);
        let mut pipe = redis::pipe();
        pipe.incr(&key, 1)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(window_secs)
            .arg("NX")
            .ignore();
        let (count,): (u64,) = self.pipe(pipe).await?;
        Some(RateLimit {
            limit,
            remaining: limit.saturating_sub(count),
            reset_after: (window + 1) * window_secs - now,
            exceeded: count > limit,
        })
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

    /// Whether a session family was logged out (`None` when Redis cannot say).
    pub async fn family_revoked(&self, family: Uuid) -> Option<bool> {
        let key = self.keys().session(&format!("revoked:{family}"));
        self.cmd::<bool>(redis::Cmd::exists(key)).await
    }
}
