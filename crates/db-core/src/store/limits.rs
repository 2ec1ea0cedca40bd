//! Rate limits and sign-in throttling, on the cache alone (no PostgreSQL behind them): the
//! counters themselves live in `cache::limits`; this is the door services and the gateway use.

use crate::cache::Cache;
use crate::cache::limits::RateLimit;
pub use crate::cache::limits::SyncedLimits;

pub struct Limits<'c>(pub(super) &'c Cache);

impl<'c> Limits<'c> {
    /// For a process with a cache and no database (the gateway).
    pub fn of(cache: &'c Cache) -> Self {
        Self(cache)
    }

    /// One hit of `id` in `scope`, counted in the current fixed window of `window_secs`.
    pub async fn hit(&self, scope: &str, id: &str, window_secs: u64, limit: u64) -> RateLimit {
        self.0.rate_limit(scope, id, window_secs, limit).await
    }

    /// Seconds a sign-in of `account` from `address` must still wait (`None`: go ahead).
    pub async fn sign_in_blocked(&self, account: &str, address: &str) -> Option<u64> {
        self.0.login_blocked(account, address).await
    }

    pub async fn sign_in_failed(&self, account: &str, address: &str) {
        self.0.login_failed(account, address).await
    }

    pub async fn sign_in_succeeded(&self, account: &str, address: &str) {
        self.0.login_succeeded(account, address).await
    }
}
