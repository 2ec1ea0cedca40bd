//! Dream's cache strategy: cache-aside in Redis with a TTL per kind of data (`keys`), kept warm
//! by updating in place what writes change, never wrong (every write path invalidates or
//! updates what it makes stale, next to the write), and never required: with Redis slow or
//! down every call is served from PostgreSQL.

mod breaker;
pub mod census;
pub mod keys;
pub mod limits;
pub mod local;
pub mod matches;
pub mod window;

use std::collections::HashMap;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::FromRedisValue;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use breaker::Breaker;
pub use keys::{Family, Keyspace, Ttls};

use crate::redis_pool::{RedisError, RedisPool};

/// Hits and misses of one family since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FamilyStats {
    pub family: &'static str,
    pub hits: u64,
    pub misses: u64,
    /// Redis failed or was skipped (breaker open, caching off): served from PostgreSQL.
    pub bypassed: u64,
}

impl FamilyStats {
    pub fn hit_rate(&self) -> Option<f64> {
        let total = self.hits + self.misses;
        (total > 0).then(|| self.hits as f64 / total as f64)
    }
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    bypassed: AtomicU64,
}

#[derive(Clone, Copy)]
pub(crate) enum Outcome {
    Hit,
    Miss,
    Bypass,
}

/// The cache handle a service keeps in its state. Cheap to clone.
#[derive(Clone)]
pub struct Cache(Arc<Inner>);

struct Inner {
    redis: Option<RedisPool>,
    keys: Keyspace,
    breaker: Breaker,
    counters: Vec<Counters>,
    flights: std::sync::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    lock_ttl: Duration,
    lock_wait: Duration,
    ttls: Ttls,
    local: local::LocalTier,
    /// Rate-limit counters while Redis is away.
    limits: limits::LocalLimits,
    /// Keys a write could not update or drop while Redis was unreachable: dropped before
    /// anything is read from Redis again, so a write is never followed by a stale read here.
    deferred_deletes: std::sync::Mutex<Vec<String>>,
    /// The same keys, until a write's domain operation records them in PostgreSQL for the
    /// other replicas (see `store::Shared::settle`).
    unjournaled: std::sync::Mutex<Vec<String>>,
}

/// A value as Redis had it.
enum Lookup<T> {
    Hit(T),
    Miss,
    Unavailable,
}

impl Cache {
    /// A cache with the guide's lifetimes.
    pub fn new(redis: RedisPool) -> Self {
        Self::with_ttls(redis, Ttls::default())
    }

    /// A cache with the lifetimes configuration chose.
    pub fn with_ttls(redis: RedisPool, ttls: Ttls) -> Self {
        let keys = Keyspace::new(redis.prefix());
        Self::build(Some(redis), keys, ttls)
    }

    /// Caching off (the benchmark's `--no-cache` run): every read goes to PostgreSQL.
    pub fn disabled() -> Self {
        Self::build(None, Keyspace::new("disabled"), Ttls::default())
    }

    fn build(redis: Option<RedisPool>, keys: Keyspace, ttls: Ttls) -> Self {
        Self(Arc::new(Inner {
            redis,
            keys,
            breaker: Breaker::new(3, Duration::from_secs(1)),
            counters: Family::ALL.iter().map(|_| Counters::default()).collect(),
            flights: std::sync::Mutex::new(HashMap::new()),
            lock_ttl: Duration::from_secs(5),
            lock_wait: Duration::from_millis(300),
            ttls,
            local: local::LocalTier::new(ttls.local_catalogue),
            limits: limits::LocalLimits::new(),
            deferred_deletes: std::sync::Mutex::new(Vec::new()),
            unjournaled: std::sync::Mutex::new(Vec::new()),
        }))
    }

    pub fn keys(&self) -> &Keyspace {
        &self.0.keys
    }

    /// How long `family`'s keys live here (`None`: until deleted).
    pub fn ttl(&self, family: Family) -> Option<Duration> {
        self.0.ttls.get(family)
    }

    /// The lifetime of a family that always has one (windows, match lists): its TTL, or the
    /// guide's 5 minutes.
    pub(crate) fn lifetime(&self, family: Family) -> Duration {
        self.ttl(family).unwrap_or(Duration::from_secs(300))
    }

    pub fn is_enabled(&self) -> bool {
        self.0.redis.is_some()
    }

    /// False while the breaker is open.
    pub fn redis_healthy(&self) -> bool {
        self.0.redis.is_some() && !self.0.breaker.is_open()
    }

    pub fn breaker(&self) -> &Breaker {
        &self.0.breaker
    }

    pub(crate) fn local(&self) -> &local::LocalTier {
        &self.0.local
    }

    /// The Redis pool, when caching is on.
    pub fn redis_pool(&self) -> Option<&RedisPool> {
        self.0.redis.as_ref()
    }

    /// Hit and miss counts per family.
    pub fn stats(&self) -> Vec<FamilyStats> {
        Family::ALL
            .iter()
            .zip(&self.0.counters)
            .map(|(f, c)| FamilyStats {
                family: f.name(),
                hits: c.hits.load(Ordering::Relaxed),
                misses: c.misses.load(Ordering::Relaxed),
                bypassed: c.bypassed.load(Ordering::Relaxed),
            })
            .collect()
    }

    pub fn family_stats(&self, family: Family) -> FamilyStats {
        self.stats()[family.index()]
    }

    pub(crate) fn count(&self, family: Family, outcome: Outcome) {
        let c = &self.0.counters[family.index()];
        let (counter, result) = match outcome {
            Outcome::Hit => (&c.hits, "hit"),
            Outcome::Miss => (&c.misses, "miss"),
            Outcome::Bypass => (&c.bypassed, "bypass"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("cache_requests_total", "family" => family.name(), "result" => result)
            .increment(1);
    }

    /// Runs a Redis call unless caching is off or the breaker is open; `None` means "go to
    /// PostgreSQL". Failures feed the breaker and are counted.
    pub(crate) async fn redis<T, F, Fut>(&self, call: F) -> Option<T>
    where
        F: FnOnce(RedisPool) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let redis = self.0.redis.as_ref()?;
        if !self.0.breaker.allow() {
            return None;
        }
        if !self.drop_deferred(redis).await {
            return None;
        }
        match call(redis.clone()).await {
            Ok(v) => {
                self.0.breaker.success();
                Some(v)
            }
            Err(e) => {
                count_failure(&self.0.breaker, &e);
                None
            }
        }
    }

    /// Runs `updates` in one round trip; if Redis cannot run them, each one's key is dropped as
    /// soon as Redis answers again.
    pub(crate) async fn update_or_defer(&self, updates: Vec<Update<'_>>) {
        if updates.is_empty() {
            return;
        }
        let (invocations, keys): (Vec<_>, Vec<_>) =
            updates.into_iter().map(|u| (u.invocation, u.key)).unzip();
        let done = self
            .redis(|r| async move { r.scripts(&invocations).await })
            .await;
        if done.is_none() {
            for key in keys {
                self.defer_delete(key);
            }
        }
    }

    /// Runs an updating script; if Redis cannot be reached, the key it would have updated is
    /// dropped as soon as Redis answers again.
    pub(crate) async fn run_or_defer(&self, invocation: redis::ScriptInvocation<'_>, key: String) {
        self.update_or_defer(vec![Update { invocation, key }]).await;
    }

    /// Remembers a key to drop as soon as Redis answers again.
    pub(crate) fn defer_delete(&self, key: String) {
        // Bounded: past this, what a long outage left stale expires with its TTL (≤ 30 min).
        const MAX_DEFERRED: usize = 10_000;
        if self.0.redis.is_some()
            && let Ok(mut d) = self.0.deferred_deletes.lock()
        {
            if d.len() < MAX_DEFERRED {
                d.push(key.clone());
                if let Ok(mut j) = self.0.unjournaled.lock() {
                    j.push(key);
                }
            } else {
                metrics::counter!("cache_deferred_deletes_dropped_total").increment(1);
            }
        }
    }

    /// Whether a write left keys that neither Redis nor the journal has yet.
    pub(crate) fn has_unjournaled(&self) -> bool {
        self.0.unjournaled.lock().is_ok_and(|j| !j.is_empty())
    }

    /// The keys deferred since the last call, for the journal other replicas replay.
    pub(crate) fn take_unjournaled(&self) -> Vec<String> {
        self.0
            .unjournaled
            .lock()
            .map(|mut j| std::mem::take(&mut *j))
            .unwrap_or_default()
    }

    /// Drops `keys` from Redis now (no deferring: the journal replays them again anyway);
    /// false when Redis cannot answer.
    pub(crate) async fn unlink(&self, keys: &[String]) -> bool {
        if keys.is_empty() {
            return true;
        }
        let pipe = self.drop_pipeline(keys);
        self.redis(|r| async move { r.query_pipe::<()>(&pipe).await })
            .await
            .is_some()
    }

    /// One round trip that drops `keys`, first bumping the version of those that have one: a
    /// reader that loaded from PostgreSQL before the change can then not store its copy after
    /// the drop.
    fn drop_pipeline(&self, keys: &[String]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        for k in keys {
            if let Some(v) = self.keys().version_of(k) {
                pipe.incr(&v, 1).ignore().pexpire(&v, 3_600_000).ignore();
            }
        }
        pipe.unlink(keys).ignore();
        pipe
    }

    /// Drops the deferred keys; false (and the keys kept) if Redis still fails.
    async fn drop_deferred(&self, redis: &RedisPool) -> bool {
        let keys = match self.0.deferred_deletes.lock() {
            Ok(mut d) if !d.is_empty() => std::mem::take(&mut *d),
            _ => return true,
        };
        match redis.query_pipe::<()>(&self.drop_pipeline(&keys)).await {
            Ok(()) => {
                if let Ok(mut j) = self.0.unjournaled.lock() {
                    j.retain(|k| !keys.contains(k));
                }
                true
            }
            Err(e) => {
                count_failure(&self.0.breaker, &e);
                if let Ok(mut d) = self.0.deferred_deletes.lock() {
                    d.extend(keys);
                }
                false
            }
        }
    }

    /// After a write whose cache update failed: one more try at dropping what it left stale,
    /// with a patient timeout (a busy machine, not a dead Redis, is the usual cause). True when
    /// nothing is left to drop.
    pub(crate) async fn drop_deferred_patiently(&self) -> bool {
        let Some(redis) = &self.0.redis else {
            return true;
        };
        if !self.0.breaker.allow() {
            return false;
        }
        let dropped = self.drop_deferred(&redis.patient()).await;
        if dropped {
            self.0.breaker.success();
        }
        dropped
    }

    pub(crate) async fn cmd<T: FromRedisValue + Send + 'static>(
        &self,
        cmd: redis::Cmd,
    ) -> Option<T> {
        self.redis(|r| async move { r.query(&cmd).await }).await
    }

    pub(crate) async fn pipe<T: FromRedisValue + Send + 'static>(
        &self,
        pipe: redis::Pipeline,
    ) -> Option<T> {
        self.redis(|r| async move { r.query_pipe(&pipe).await })
            .await
    }

    async fn lookup<T: DeserializeOwned>(&self, key: &str) -> Lookup<T> {
        match self.cmd::<Option<Vec<u8>>>(redis::Cmd::get(key)).await {
            None => Lookup::Unavailable,
            Some(None) => Lookup::Miss,
            Some(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(v) => Lookup::Hit(v),
                Err(e) => {
                    // An old or foreign shape: drop it and load afresh.
                    tracing::warn!(key, error = %e, "undecodable cache entry");
                    self.delete(&[key.to_owned()]).await;
                    Lookup::Miss
                }
            },
        }
    }

    /// Stores a value with the family's TTL, spread ±10% per key so keys written together do
    /// not all expire together.
    pub(crate) async fn store<T: Serialize>(&self, family: Family, key: &str, value: &T) {
        let Ok(bytes) = serde_json::to_vec(value) else {
            return;
        };
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(bytes);
        if let Some(ttl) = self.ttl(family) {
            cmd.arg("PX").arg(jittered(ttl, key).as_millis() as u64);
        }
        let _: Option<()> = self.cmd(cmd).await;
    }

    /// Deletes keys (one round trip); if Redis cannot be reached they are dropped as soon as
    /// it can.
    pub(crate) async fn delete(&self, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let mut cmd = redis::cmd("UNLINK");
        for k in keys {
            cmd.arg(k);
        }
        if self.cmd::<i64>(cmd).await.is_none() {
            for k in keys {
                self.defer_delete(k.clone());
            }
        }
    }

    /// Every key matching a glob pattern (`SCAN`, never `KEYS`): for operators and tests that
    /// check what is cached. Empty when Redis cannot answer.
    pub async fn keys_matching(&self, pattern: &str) -> Vec<String> {
        let mut cursor: u64 = 0;
        let mut found = Vec::new();
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let Some((next, keys)) = self.cmd::<(u64, Vec<String>)>(scan).await else {
                return found;
            };
            found.extend(keys);
            if next == 0 {
                return found;
            }
            cursor = next;
        }
    }

    /// Deletes every key matching a glob pattern with `SCAN` + `UNLINK`, never `KEYS`; for
    /// rare, wide invalidations (a user's every conversation). Returns how many went.
    pub async fn delete_matching(&self, pattern: &str) -> u64 {
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let Some((next, keys)) = self.cmd::<(u64, Vec<String>)>(scan).await else {
                return deleted;
            };
            deleted += keys.len() as u64;
            self.delete(&keys).await;
            if next == 0 {
                return deleted;
            }
            cursor = next;
        }
    }

    /// The one cache-aside primitive: a hit is returned as is; on
    /// a miss `load` runs once for all concurrent callers of this process (single flight), and
    /// once for all replicas while a short Redis lock is held, then the value is stored with
    /// the family's TTL. With Redis unavailable `load` simply runs.
    pub(crate) async fn get_or_load<T, E, F, Fut>(
        &self,
        family: Family,
        key: &str,
        load: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match self.lookup::<T>(key).await {
            Lookup::Hit(v) => {
                self.count(family, Outcome::Hit);
                return Ok(v);
            }
            Lookup::Unavailable => {
                self.count(family, Outcome::Bypass);
                return load().await;
            }
            Lookup::Miss => {}
        }
        let flight = self.flight(key);
        let _turn = flight.lock().await;
        // A caller ahead of us in this process may have loaded it meanwhile.
        if let Lookup::Hit(v) = self.lookup::<T>(key).await {
            self.count(family, Outcome::Hit);
            return Ok(v);
        }
        let lock_key = self.0.keys.lock(key);
        let token = uuid::Uuid::new_v4().to_string();
        let mut set = redis::cmd("SET");
        set.arg(&lock_key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(self.0.lock_ttl.as_millis() as u64);
        let locked = self.cmd::<Option<String>>(set).await.map(|r| r.is_some());
        if locked == Some(false) {
            // Another replica is loading it: wait a little for its result, then load ourselves
            // rather than fail.
            let deadline = tokio::time::Instant::now() + self.0.lock_wait;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(15)).await;
                if let Lookup::Hit(v) = self.lookup::<T>(key).await {
                    self.count(family, Outcome::Hit);
                    return Ok(v);
                }
            }
        }
        self.count(family, Outcome::Miss);
        let value = load().await?;
        self.store(family, key, &value).await;
        if locked == Some(true) {
            let release = redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
            );
            let _: Option<i64> = self
                .redis(|r| async move { r.script(release.key(&lock_key).arg(&token)).await })
                .await;
        }
        Ok(value)
    }

    fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut flights) = self.0.flights.lock() else {
            return Arc::new(tokio::sync::Mutex::new(()));
        };
        if let Some(existing) = flights.get(key).and_then(Weak::upgrade) {
            return existing;
        }
        if flights.len() > 4096 {
            flights.retain(|_, w| w.strong_count() > 0);
        }
        let fresh = Arc::new(tokio::sync::Mutex::new(()));
        flights.insert(key.to_owned(), Arc::downgrade(&fresh));
        fresh
    }
}

/// `ttl` spread ±10 % by key, the same for a key every time: keys stored together (a cold
/// cache filling under load) do not all expire together and miss together a lifetime later.
pub(crate) fn jittered(ttl: Duration, key: &str) -> Duration {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    let spread = (h.finish() % 2001) as f64 / 10_000.0; // 0 ..= 0.2
    ttl.mul_f64(0.9 + spread)
}

/// The cache's primitives, opened to db-core's own tests (the `testing` feature): what the
/// domains build on, tested on its own.
#[cfg(feature = "testing")]
impl Cache {
    pub async fn testing_get_or_load<T, E, F, Fut>(
        &self,
        family: Family,
        key: &str,
        load: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.get_or_load(family, key, load).await
    }

    pub async fn testing_append_to_window(&self, m: &crate::models::Message) {
        self.update_or_defer(self.window_append(m).into_iter().collect())
            .await
    }

    pub async fn testing_conversation_window<E, F, Fut>(
        &self,
        user: uuid::Uuid,
        character: &str,
        load: F,
    ) -> Result<window::Window, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<crate::models::Message>, E>>,
    {
        self.conversation_window(user, character, load).await
    }
}

/// A script that updates a cached value in place, and the key to drop when it cannot run.
pub(crate) struct Update<'a> {
    pub(crate) invocation: redis::ScriptInvocation<'a>,
    pub(crate) key: String,
}

/// Counts a call Redis did not answer. Only a Redis that answers no one opens the breaker: one
/// that answered others while this call waited ([`RedisError::Late`]) was a queue, most often
/// this process too busy to read its answers, and opening the breaker then would send every
/// request to PostgreSQL, which costs more than the queue did: an overload would feed itself.
/// A late call only counts, and ends a probe.
fn count_failure(breaker: &Breaker, e: &RedisError) {
    if let RedisError::Late(_) = e {
        metrics::counter!("cache_redis_late_total").increment(1);
        breaker.late();
        return;
    }
    metrics::counter!("cache_redis_errors_total").increment(1);
    breaker.failure(e);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_redis_that_answers_no_one_opens_the_breaker() {
        let breaker = Breaker::new(3, Duration::from_secs(60));
        let late = || RedisError::Late(Duration::from_millis(250));
        for _ in 0..10 {
            count_failure(&breaker, &late());
        }
        assert!(!breaker.is_open(), "late calls are no failures");
        for _ in 0..3 {
            count_failure(&breaker, &RedisError::Timeout(Duration::from_millis(250)));
        }
        assert!(breaker.is_open(), "three timeouts in a row are");
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_differs_by_key() {
        let ttl = Duration::from_secs(300);
        let spread: std::collections::HashSet<u128> = (0..50)
            .map(|i| jittered(ttl, &format!("k{i}")).as_millis())
            .collect();
        assert!(spread.len() > 10);
        assert!(spread.iter().all(|ms| (270_000..=330_000).contains(ms)));
    }
}
