//! Rate limits and login throttling: counters shared by every replica through Redis, and kept
//! in this process's memory while Redis cannot answer, so that an outage never turns the limits
//! off (each replica then limits on its own: the limit becomes per replica for that while).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

/// What [`SyncedLimits::gate`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    pub ip: RateLimit,
    pub user: Option<RateLimit>,
}

/// Failures of one account from one address allowed before each further one blocks the pair.
pub const LOGIN_FREE_FAILURES: u64 = 5;
/// The longest a pair is blocked, and how long its failures are remembered.
pub const LOGIN_MAX_BLOCK: Duration = Duration::from_secs(15 * 60);

/// One fixed window of a rate limit.
struct Window {
    secs: u64,
    now: u64,
    index: u64,
}

impl Window {
    fn now(secs: u64) -> Self {
        Self::at(now_secs(), secs)
    }

    /// The window of `secs` that the Unix second `now` falls in.
    fn at(now: u64, secs: u64) -> Self {
        let secs = secs.max(1);
        Self {
            secs,
            now,
            index: now / secs,
        }
    }

    /// INCR the window's counter (its value is the pipeline's next result) and let it expire
    /// with the window.
    fn count(&self, pipe: &mut redis::Pipeline, key: &str) {
        add(pipe, key, 1, self.secs);
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

/// Adds `n` to a window's counter (its total is the pipeline's next result) and lets it expire
/// with the window (`secs`), from its first hit.
fn add(pipe: &mut redis::Pipeline, key: &str, n: u64, secs: u64) {
    pipe.incr(key, n)
        .cmd("EXPIRE")
        .arg(key)
        .arg(secs)
        .arg("NX")
        .ignore();
}

/// Counters kept in process while Redis is away: fixed windows (the key names the window) and
/// login failures, forgotten after at most [`LOGIN_MAX_BLOCK`].
pub(crate) struct LocalLimits {
    counts: moka::sync::Cache<String, Arc<AtomicU64>>,
    /// Blocked login pairs, with the Unix second their block ends.
    blocks: moka::sync::Cache<String, u64>,
}

impl LocalLimits {
    pub(crate) fn new() -> Self {
        Self {
            counts: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(LOGIN_MAX_BLOCK)
                .build(),
            blocks: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(LOGIN_MAX_BLOCK)
                .build(),
        }
    }

    fn incr(&self, key: &str) -> u64 {
        self.counts
            .get_with(key.to_owned(), || Arc::new(AtomicU64::new(0)))
            .fetch_add(1, Ordering::Relaxed)
            + 1
    }
}

fn now_secs() -> u64 {
    Utc::now().timestamp().max(0) as u64
}

/// How long the `failures`-th failure of a pair blocks it: nothing for the first few, then
/// 1 s, 2 s, 4 s … up to [`LOGIN_MAX_BLOCK`].
pub fn login_backoff(failures: u64) -> Option<Duration> {
    let over = failures.checked_sub(LOGIN_FREE_FAILURES)?;
    let secs = 1u64
        .checked_shl(over.min(20) as u32)
        .unwrap_or(u64::MAX)
        .min(LOGIN_MAX_BLOCK.as_secs());
    Some(Duration::from_secs(secs))
}

impl Cache {
    /// Counts one hit of `id` in `scope` in the current fixed window of `window_secs`: shared by
    /// every replica through Redis, counted in this process while Redis cannot answer.
    pub(crate) async fn rate_limit(
        &self,
        scope: &str,
        id: &str,
        window_secs: u64,
        limit: u64,
    ) -> RateLimit {
        let w = Window::now(window_secs);
        let key = self.keys().rate_limit(scope, id, w.index);
        let mut pipe = redis::pipe();
        w.count(&mut pipe, &key);
        let count = match self.pipe::<(u64,)>(pipe).await {
            Some((count,)) => count,
            None => self.0.limits.incr(&key),
        };
        w.limit(count, limit)
    }

    /// Seconds a login of `account` from `addr` must still wait after too many failures of
    /// that same pair (`None`: go ahead). Nobody else's failures ever block it.
    pub(crate) async fn login_blocked(&self, account: &str, addr: &str) -> Option<u64> {
        let key = self
            .keys()
            .rate_limit("login-block", &pair(account, addr), 0);
        match self.cmd::<i64>(redis::Cmd::ttl(&key)).await {
            Some(ttl) => (ttl > 0).then_some(ttl as u64),
            None => {
                let until = self.0.limits.blocks.get(&key)?;
                let now = now_secs();
                (until > now).then(|| until - now)
            }
        }
    }

    /// Records a failed login of the pair; past the free failures, blocks it for the backoff.
    pub(crate) async fn login_failed(&self, account: &str, addr: &str) {
        let p = pair(account, addr);
        let (fails, block) = (
            self.keys().rate_limit("login-fail", &p, 0),
            self.keys().rate_limit("login-block", &p, 0),
        );
        let mut pipe = redis::pipe();
        pipe.incr(&fails, 1)
            .expire(&fails, LOGIN_MAX_BLOCK.as_secs() as i64)
            .ignore();
        match self.pipe::<(u64,)>(pipe).await.map(|(n,)| n) {
            Some(n) => {
                if let Some(wait) = login_backoff(n) {
                    let mut set = redis::cmd("SET");
                    set.arg(&block).arg(1).arg("EX").arg(wait.as_secs());
                    let _: Option<()> = self.cmd(set).await;
                }
            }
            None => {
                let n = self.0.limits.incr(&fails);
                if let Some(wait) = login_backoff(n) {
                    self.0
                        .limits
                        .blocks
                        .insert(block, now_secs() + wait.as_secs());
                }
            }
        }
    }

    /// A successful login forgets the pair's failures.
    pub(crate) async fn login_succeeded(&self, account: &str, addr: &str) {
        let p = pair(account, addr);
        let keys = [
            self.keys().rate_limit("login-fail", &p, 0),
            self.keys().rate_limit("login-block", &p, 0),
        ];
        for k in &keys {
            self.0.limits.counts.invalidate(k);
            self.0.limits.blocks.invalidate(k);
        }
        self.delete(&keys).await;
    }
}

/// The counters a thread found in the current window, by address and by user: a request
/// whose counters are here counts without formatting their keys or looking them up in the
/// process's shared map (a string key hashed, and moka's bookkeeping, twice per request). They
/// are the map's counters (one `Arc`); dropped when the window turns, and capped at
/// [`RECENT_MAX`] each (past it, the shared map alone is asked).
///
/// Hits counted here do not tell the map a counter is in use, so past its capacity (200,000
/// keys: many addresses or users in two minutes) the map may drop one that a thread still
/// counts on, and another thread then makes a second counter of the same key. Both are synced
/// (`due` keeps them apart), so every hit still reaches Redis, and each decides on the shared
/// total plus its own hits since the last sync: off by one sync interval at most, as two
/// replicas are.
#[derive(Default)]
struct Recent {
    /// Whose counters, in which window: [`Synced::id`], the window's length and index.
    of: (u64, u64, u64),
    ips: std::collections::HashMap<Box<str>, (String, Arc<Counter>)>,
    users: std::collections::HashMap<Uuid, (String, Arc<Counter>)>,
}

impl Recent {
    /// This thread's counters of instance `id` in window `w`: the ones it holds if they are
    /// those, or none.
    fn for_window(&mut self, id: u64, w: &Window) -> &mut Self {
        let of = (id, w.secs, w.index);
        if self.of != of {
            self.of = of;
            self.ips.clear();
            self.users.clear();
        }
        self
    }
}

/// Per thread, at most this many addresses and as many users (about 1.5 MiB at the cap).
const RECENT_MAX: usize = 4096;

/// Windows longer than this are not kept per thread: a counter the shared map has not been
/// asked for in its idle time (120 s) leaves it, and another thread would then make a second
/// counter of the same key (see [`Recent`]). A window of at most a minute is dropped here, and
/// its counters asked of the map again, long before.
const RECENT_MAX_SECS: u64 = 60;

thread_local! {
    static RECENT: std::cell::RefCell<Recent> = std::cell::RefCell::new(Recent::default());
}

/// The gateway's limits without a round trip per request: each process counts its own hits in
/// memory and decides on the latest shared count plus its own hits since; a background task
/// ([`SyncedLimits::spawn`]) adds those hits to the counters in Redis every interval and reads
/// back what every replica counted (an idle counter only once it is past half its limit). So
/// the limits stay shared across replicas, off by at most what the other replicas counted
/// within one interval, and a request pays no Redis round trip. While Redis cannot answer, the
/// hits stay here and each process limits on its own.
#[derive(Clone)]
pub struct SyncedLimits(Arc<Synced>);

struct Synced {
    /// Tells this instance's counters apart in a thread's [`Recent`] from another instance's.
    id: u64,
    cache: Cache,
    counters: moka::sync::Cache<String, Arc<Counter>>,
    /// The counters the next sync visits: hit since the last one, or past half their limit.
    /// A sync never walks every counter (100,000 users in a window would be 100,000 visits
    /// every interval).
    /// Keyed by key and counter: a key can have two counters in one process (the map dropped
    /// one, past its capacity, while a thread still counted on it — see [`Recent`]), and both
    /// must be synced, or the hits on one would never reach Redis.
    due: std::sync::Mutex<std::collections::HashMap<(String, usize), Arc<Counter>>>,
}

/// One fixed window's count: the total last read from Redis, and this process's hits not
/// added to it yet.
struct Counter {
    secs: u64,
    index: u64,
    shared: AtomicU64,
    pending: AtomicU64,
    /// The limit it was last checked against.
    limit: AtomicU64,
}

impl SyncedLimits {
    pub fn new(cache: Cache) -> Self {
        static IDS: AtomicU64 = AtomicU64::new(0);
        Self(Arc::new(Synced {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            cache,
            counters: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(Duration::from_secs(120))
                .build(),
            due: std::sync::Mutex::default(),
        }))
    }

    fn mark_due(&self, key: String, c: Arc<Counter>) {
        if let Ok(mut due) = self.0.due.lock() {
            // The counter's address tells it apart while the map holds it.
            due.insert((key, Arc::as_ptr(&c) as usize), c);
        }
    }

    /// The counter of `key`, made if this process has none.
    fn counter(&self, key: &str, w: &Window, limit: u64) -> Arc<Counter> {
        self.0.counters.get_with_by_ref(key, || {
            Arc::new(Counter {
                secs: w.secs,
                index: w.index,
                shared: AtomicU64::new(0),
                pending: AtomicU64::new(0),
                limit: AtomicU64::new(limit),
            })
        })
    }

    /// One hit on `c` (the counter of `key`): the count it makes, the shared total last read
    /// plus this process's hits since.
    fn hit(&self, key: &str, c: &Arc<Counter>, limit: u64) -> u64 {
        c.limit.store(limit, Ordering::Relaxed);
        let before = c.pending.fetch_add(1, Ordering::Relaxed);
        let shared = c.shared.load(Ordering::Relaxed);
        if before == 0 {
            self.mark_due(key.to_owned(), Arc::clone(c));
        }
        before + 1 + shared
    }

    /// The caller's address counted against `ip_limit` and, for a signed-in caller, the user
    /// against `user_limit`; no I/O.
    pub fn gate(
        &self,
        ip: &str,
        user: Option<Uuid>,
        window_secs: u64,
        ip_limit: u64,
        user_limit: u64,
    ) -> Gate {
        let w = Window::now(window_secs);
        let (ip_count, user_count) = if w.secs <= RECENT_MAX_SECS {
            RECENT.with_borrow_mut(|recent| {
                let recent = recent.for_window(self.0.id, &w);
                let ip_count = match recent.ips.get(ip) {
                    Some((key, c)) => self.hit(key, c, ip_limit),
                    None => {
                        let (count, found) = self.first_hit(&w, "ip", ip, ip_limit);
                        if recent.ips.len() < RECENT_MAX {
                            recent.ips.insert(ip.into(), found);
                        }
                        count
                    }
                };
                let user_count = user.map(|u| match recent.users.get(&u) {
                    Some((key, c)) => self.hit(key, c, user_limit),
                    None => {
                        let (count, found) = self.first_hit(&w, "user", &u.to_string(), user_limit);
                        if recent.users.len() < RECENT_MAX {
                            recent.users.insert(u, found);
                        }
                        count
                    }
                });
                (ip_count, user_count)
            })
        } else {
            let ip_count = self.first_hit(&w, "ip", ip, ip_limit).0;
            let user_count = user.map(|u| self.first_hit(&w, "user", &u.to_string(), user_limit).0);
            (ip_count, user_count)
        };
        Gate {
            ip: w.limit(ip_count, ip_limit),
            user: user_count.map(|c| w.limit(c, user_limit)),
        }
    }

    /// A hit on `scope`/`id` in window `w`, its counter found (or made) in the process's map:
    /// the count it makes, and the key and counter, for a thread to keep.
    fn first_hit(
        &self,
        w: &Window,
        scope: &str,
        id: &str,
        limit: u64,
    ) -> (u64, (String, Arc<Counter>)) {
        let key = self.0.cache.keys().rate_limit(scope, id, w.index);
        let c = self.counter(&key, w, limit);
        (self.hit(&key, &c, limit), (key, c))
    }

    /// Adds this process's hits to the shared counters and reads back their totals, in one
    /// pipeline. `false` when Redis could not answer (the hits are kept for the next time).
    pub async fn sync(&self) -> bool {
        let now = now_secs();
        let due = match self.0.due.lock() {
            Ok(mut due) => std::mem::take(&mut *due),
            Err(_) => return false,
        };
        let mut batch = Vec::new();
        let mut pipe = redis::pipe();
        for ((key, _), c) in due {
            if c.index != Window::at(now, c.secs).index {
                continue;
            }
            let n = c.pending.swap(0, Ordering::Relaxed);
            if n == 0 {
                // Nobody hit it here since the last sync: it is due because it is past half its
                // limit (a counter far from it is not read — its next hit is decided on the
                // total read last plus its own count, and the sync after that hit reads what
                // the others added: still off by one interval at most). Read, never written back
                // (a deleted account's window must not come back from an idle counter).
                if c.shared.load(Ordering::Relaxed) * 2 < c.limit.load(Ordering::Relaxed) {
                    continue;
                }
                pipe.cmd("GET").arg(key.as_str());
            } else {
                // Counted as shared from now on: while the total is on its way back, the hits
                // it carries still count here (taken from `pending` alone, a request in that
                // round trip was counted without them).
                c.shared.fetch_add(n, Ordering::Relaxed);
                add(&mut pipe, &key, n, c.secs);
            }
            batch.push((key, c, n));
        }
        if batch.is_empty() {
            return true;
        }
        match self.0.cache.pipe::<Vec<Option<u64>>>(pipe).await {
            Some(totals) if totals.len() == batch.len() => {
                for ((key, c, _), total) in batch.into_iter().zip(totals) {
                    let total = total.unwrap_or(0);
                    c.shared.store(total, Ordering::Relaxed);
                    if total * 2 >= c.limit.load(Ordering::Relaxed) {
                        self.mark_due(key, c);
                    }
                }
                true
            }
            _ => {
                for (key, c, n) in batch {
                    // Pending again before they leave the shared count: never counted less.
                    c.pending.fetch_add(n, Ordering::Relaxed);
                    let _ = c
                        .shared
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                            Some(s.saturating_sub(n))
                        });
                    self.mark_due(key, c);
                }
                false
            }
        }
    }

    /// Syncs every `every` until the process ends.
    pub fn spawn(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let limits = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                limits.sync().await;
            }
        })
    }
}

/// The key of an (account, address) pair. The account is hashed so that no email sits in a key.
fn pair(account: &str, addr: &str) -> String {
    format!("{}:{addr}", account_tag(account))
}

/// How an account appears in the sign-in throttling keys (what a deleted account's keys are
/// found by).
pub fn account_tag(account: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(account.as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_after_the_free_failures_and_is_capped() {
        assert_eq!(login_backoff(LOGIN_FREE_FAILURES - 1), None);
        assert_eq!(
            login_backoff(LOGIN_FREE_FAILURES),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            login_backoff(LOGIN_FREE_FAILURES + 3),
            Some(Duration::from_secs(8))
        );
        assert_eq!(login_backoff(1_000), Some(LOGIN_MAX_BLOCK));
    }

    /// Two counters of one key (the map dropped the first while a thread counted on it) are
    /// both due: the first one's hits are not left out of the sync. The same counter twice is
    /// one entry.
    #[tokio::test]
    async fn two_counters_of_one_key_are_both_synced() {
        let config = crate::config::RedisConfig {
            url: "redis://127.0.0.1:1".to_owned(),
            ..crate::config::RedisConfig::defaults()
        };
        let Ok(pool) = crate::redis_pool::RedisPool::new(&config) else {
            panic!("a pool is made without connecting");
        };
        let limits = SyncedLimits::new(Cache::new(pool));
        let w = Window::now(60);
        let key = "dream:ratelimit:ip:10.0.0.1:1";
        let counter = || {
            Arc::new(Counter {
                secs: w.secs,
                index: w.index,
                shared: AtomicU64::new(0),
                pending: AtomicU64::new(0),
                limit: AtomicU64::new(10),
            })
        };
        let (first, second) = (counter(), counter());
        assert_eq!(limits.hit(key, &first, 10), 1);
        assert_eq!(limits.hit(key, &first, 10), 2);
        assert_eq!(limits.hit(key, &second, 10), 1);
        let due = limits.0.due.lock().map(|d| d.len()).unwrap_or(0);
        assert_eq!(due, 2, "both counters wait for the sync");
        limits.mark_due(key.to_owned(), Arc::clone(&first));
        let due = limits.0.due.lock().map(|d| d.len()).unwrap_or(0);
        assert_eq!(due, 2, "the same counter again is the same entry");
        // Redis cannot answer: the hits are kept, both counters still due.
        assert!(!limits.sync().await);
        assert_eq!(first.pending.load(Ordering::Relaxed), 2);
        assert_eq!(second.pending.load(Ordering::Relaxed), 1);
        assert_eq!(limits.0.due.lock().map(|d| d.len()).unwrap_or(0), 2);
    }
}
