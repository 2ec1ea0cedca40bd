//! The one door into the data: a [`Store`] hands out per-domain views (`store.users()`,
//! `store.conversations()`, …), each of which owns its SQL *and* its cache policy, so that every
//! write sits beside the invalidation it needs and no caller can write around it. Services never
//! see a connection, a query or a raw cache command. With Redis down or caching off, every
//! operation still returns what PostgreSQL holds.

mod account;
mod catalogue;
mod characters;
mod conversations;
mod generations;
mod leaderboard;
mod limits;
mod matches;
mod memories;
mod photo_jobs;
mod photos;
mod sessions;
mod users;
mod write_first;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, Weak};

pub use account::{Account, Deleted, StoragePurge, photo_prefix};
pub use catalogue::Catalogue;
pub use characters::{Characters, CreateError as CreateCharacterError, MAX_OWN_CHARACTERS};
pub use conversations::{Conversations, Inserted, Own, SendError};
pub use generations::{Ask, Completed, Generations, Picked, Reward, Start, client_key};
pub use leaderboard::Leaderboard;
pub use limits::{Limits, SyncedLimits};
pub use matches::{MatchError, Matches};
pub use memories::Memories;
pub use photo_jobs::{Delivered, Enqueued, PhotoJobs};
pub use photos::Photos;
pub use sessions::Sessions;
pub use users::{CreateUserError, Users};
pub use write_first::{Finished, MatchSettings, Silent, UserSettings, WriteFirst};

use crate::cache::Cache;
use crate::cache::window::{Cached, Place, Window};
use crate::pool::{Db, DbError, PoolStats};
use crate::revocations::Revocations;

/// The most memories one match keeps unless a service is told otherwise (`MEMORIES_PER_MATCH`).
pub const DEFAULT_MEMORIES_PER_MATCH: i64 = 200;

/// PostgreSQL and the cache in front of it. Cheap to clone.
#[derive(Clone)]
pub struct Store(Arc<Shared>);

pub(crate) struct Shared {
    pub(crate) db: Db,
    pub(crate) cache: Cache,
    pub(crate) revocations: Revocations,
    /// This store, for the work it hands to the runtime (a window's refresh).
    me: Weak<Shared>,
    /// The windows this process is loading again in the background: one load per key at a time.
    refreshing: Mutex<HashSet<String>>,
}

/// The most windows one process loads again in the background at once (see
/// `Shared::first_page_body`); a read that finds this many under way leaves its window to expire.
const MAX_REFRESHES: usize = 4;

/// How often every process reads the invalidation journal, and how far back. Each entry is
/// replayed twice by every process: when first seen (a value another replica's write made
/// stale is served for at most about `REPLAY_EVERY`), and once more `REPLAY_AGAIN` later, which
/// drops a value a reader filled from PostgreSQL before the write and stored after the first
/// drop. Replaying more often would keep those keys out of the cache for nothing.
const REPLAY_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
const REPLAY_AGAIN: std::time::Duration = std::time::Duration::from_secs(2);
const REPLAY_WINDOW: chrono::Duration = chrono::Duration::seconds(10);
const JOURNAL_KEPT: chrono::Duration = chrono::Duration::minutes(1);

impl Shared {
    /// After a write's cache updates, before it is acknowledged: keys it could not update (a
    /// command timed out or Redis is unreachable from this process) get one patient try at
    /// being dropped; what is still left is recorded in PostgreSQL, where every replica that
    /// can reach Redis drops it. Nothing more happens when Redis answered the first time.
    pub(crate) async fn settle(&self) {
        if !self.cache.has_unjournaled() || self.cache.drop_deferred_patiently().await {
            return;
        }
        let keys = self.cache.take_unjournaled();
        if keys.is_empty() {
            return;
        }
        let recorded = async {
            let mut conn = self.db.write().await?;
            crate::queries::invalidations::record(&mut conn, &keys).await?;
            Ok::<_, DbError>(())
        };
        if let Err(e) = recorded.await {
            // This process drops them itself once Redis answers; until then the others may
            // serve them until their TTL.
            tracing::warn!(error = %e, keys = keys.len(), "stale cache keys not journaled");
        }
    }
}

impl Shared {
    /// The first page of a window (a conversation, a gallery) as the response body, for the
    /// user's own: the cached one as it is stored, which proves the match by existing (a window
    /// is only stored after the match was checked, and dropped with it, its version bumped);
    /// otherwise, once the match is checked, the window `load` reads from PostgreSQL, stored
    /// unless it changed meanwhile. `None` when the user has no match with this character.
    ///
    /// A window read in the last quarter of its lifetime is loaded again in the background and
    /// stored in place (unless it changed meanwhile): a conversation read every minute or so
    /// stays a hit, and a window no send extends is never older than its TTL.
    pub(crate) async fn first_page_body<F>(
        &self,
        place: &Place,
        user: uuid::Uuid,
        character: &str,
        limit: usize,
        load: impl FnOnce(Arc<Shared>) -> F + Send + 'static,
    ) -> Result<Option<Vec<u8>>, DbError>
    where
        F: Future<Output = Result<Window, DbError>> + Send + 'static,
    {
        let cached = self.cache.cached_page(place, limit).await;
        let version = match cached {
            Cached::Hit(body) => return Ok(Some(body)),
            Cached::Aging(body) => {
                self.refresh(place, load);
                return Ok(Some(body));
            }
            Cached::Miss(version) => Some(version),
            Cached::Unavailable => None,
        };
        if !Matches(self).contains(user, character).await? {
            return Ok(None);
        }
        let window = load(self.arc()).await?;
        if let Some(version) = version {
            self.cache.store_at(place, version, &window).await;
        }
        Ok(Some(window.page_body(limit)))
    }

    fn arc(&self) -> Arc<Shared> {
        self.me
            .upgrade()
            .unwrap_or_else(|| unreachable!("a store is only reached through its Arc"))
    }

    /// Loads a window again off the request's path and stores it unless it changed meanwhile.
    /// Skipped when this process is already loading it, or already loading
    /// [`MAX_REFRESHES`] windows: they take connections the requests need.
    fn refresh<F>(&self, place: &Place, load: impl FnOnce(Arc<Shared>) -> F + Send + 'static)
    where
        F: Future<Output = Result<Window, DbError>> + Send + 'static,
    {
        /// Its key's place among the refreshes under way, given up however the load ends.
        struct Refreshing(Arc<Shared>, String);
        impl Drop for Refreshing {
            fn drop(&mut self) {
                self.0.refreshing().remove(&self.1);
            }
        }
        {
            let mut refreshing = self.refreshing();
            if refreshing.len() >= MAX_REFRESHES || !refreshing.insert(place.key().to_owned()) {
                return;
            }
        }
        let under_way = Refreshing(self.arc(), place.key().to_owned());
        metrics::counter!("cache_refreshes_total", "family" => place.family().name()).increment(1);
        let place = place.clone();
        tokio::spawn(async move {
            let s = Arc::clone(&under_way.0);
            // Read before the load: a change that lands after it moves it, and the store fails.
            let Some(version) = s.cache.pinned_version(&place).await else {
                return;
            };
            match load(Arc::clone(&s)).await {
                // An empty one is left to expire: the account may have just been deleted, every
                // key of it with it (a conversation always holds its greeting).
                Ok(window) if window.is_empty() => {}
                Ok(window) => s.cache.store_at(&place, Some(version), &window).await,
                Err(e) => tracing::debug!(error = %e, key = place.key(), "window not refreshed"),
            }
            drop(under_way);
        });
    }

    fn refreshing(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A page read from PostgreSQL as a response body.
pub(crate) fn body_of<T: serde::Serialize>(page: &T) -> Result<Vec<u8>, DbError> {
    serde_json::to_vec(page)
        .map_err(|e| DbError::Query(diesel::result::Error::SerializationError(e.into())))
}

/// Replays the journal (see [`REPLAY_EVERY`]); old rows are pruned now and then.
async fn replay_invalidations(s: Arc<Shared>) {
    use std::collections::HashMap;
    use std::time::Instant;
    let mut tick = tokio::time::interval(REPLAY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Entry id → (when this process first saw it, replayed twice already).
    let mut seen: HashMap<i64, (Instant, bool)> = HashMap::new();
    let mut rounds: u64 = 0;
    loop {
        tick.tick().await;
        rounds += 1;
        let replayed = async {
            let mut conn = s.db.read().await?;
            let entries =
                crate::queries::invalidations::since(&mut conn, chrono::Utc::now() - REPLAY_WINDOW)
                    .await?;
            drop(conn);
            let now = Instant::now();
            let mut due: Vec<(i64, String)> = Vec::new();
            for (id, key) in entries {
                match seen.get(&id) {
                    None => due.push((id, key)),
                    Some((first, false)) if now.duration_since(*first) >= REPLAY_AGAIN => {
                        due.push((id, key))
                    }
                    _ => {}
                }
            }
            let mut keys: Vec<String> = due.iter().map(|(_, k)| k.clone()).collect();
            keys.sort_unstable();
            keys.dedup();
            if !keys.is_empty() && s.cache.unlink(&keys).await {
                metrics::counter!("cache_journal_replayed_total").increment(keys.len() as u64);
                for (id, _) in due {
                    seen.entry(id)
                        .and_modify(|e| e.1 = true)
                        .or_insert((now, false));
                }
            }
            let window = REPLAY_WINDOW.to_std().unwrap_or_default();
            seen.retain(|_, (first, _)| now.duration_since(*first) < window * 2);
            if rounds.is_multiple_of(240) {
                let mut conn = s.db.write().await?;
                crate::queries::invalidations::prune(&mut conn, chrono::Utc::now() - JOURNAL_KEPT)
                    .await?;
            }
            Ok::<_, DbError>(())
        };
        if let Err(e) = replayed.await {
            tracing::debug!(error = %e, "invalidation journal not replayed");
        }
    }
}

impl Store {
    pub fn new(db: Db, cache: Cache) -> Self {
        Self(Arc::new_cyclic(|me| Shared {
            db,
            cache,
            revocations: Revocations::new(),
            me: me.clone(),
            refreshing: Mutex::new(HashSet::new()),
        }))
    }

    pub fn account(&self) -> Account<'_> {
        Account(&self.0)
    }
    pub fn users(&self) -> Users<'_> {
        Users(&self.0)
    }
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions(&self.0)
    }
    pub fn leaderboard(&self) -> Leaderboard<'_> {
        Leaderboard(&self.0)
    }
    pub fn catalogue(&self) -> Catalogue<'_> {
        Catalogue(&self.0)
    }
    pub fn characters(&self) -> Characters<'_> {
        Characters(&self.0)
    }
    pub fn matches(&self) -> Matches<'_> {
        Matches(&self.0)
    }
    pub fn conversations(&self) -> Conversations<'_> {
        Conversations(&self.0)
    }
    pub fn memories(&self) -> Memories<'_> {
        Memories(&self.0)
    }
    pub fn photos(&self) -> Photos<'_> {
        Photos(&self.0)
    }
    pub fn photo_jobs(&self) -> PhotoJobs<'_> {
        PhotoJobs(&self.0)
    }
    pub fn generations(&self) -> Generations<'_> {
        Generations(&self.0)
    }
    pub fn write_first(&self) -> WriteFirst<'_> {
        WriteFirst(&self.0)
    }
    pub fn limits(&self) -> Limits<'_> {
        Limits(&self.0.cache)
    }

    /// The revoked session families this process knows of.
    pub fn revocations(&self) -> &Revocations {
        &self.0.revocations
    }

    /// What keeps this process's view current, until the process ends: the revocation set
    /// (PostgreSQL poll and Redis channel), the catalogue's invalidations, and the replay of the
    /// keys other replicas could not drop.
    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let s = &self.0;
        let mut tasks = s.revocations.spawn_sync(s.db.clone(), s.cache.clone());
        tasks.extend(s.cache.spawn_invalidation_listener());
        if s.cache.is_enabled() {
            tasks.push(tokio::spawn(replay_invalidations(self.0.clone())));
        }
        tasks
    }

    /// Merges the search indexes' pending lists now (see
    /// [`crate::maintenance::merge_pending_lists`]); the pages merged.
    pub async fn merge_search_pending_lists(&self) -> Result<i64, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(crate::maintenance::merge_pending_lists(&mut conn).await?)
    }

    /// Merges them every `every` until aborted, off every request's path (the service that
    /// takes the sends runs it). Counted in `db_search_pending_pages_merged_total`.
    pub fn spawn_pending_list_merges(
        &self,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                match store.merge_search_pending_lists().await {
                    Ok(pages) => {
                        failing = false;
                        metrics::counter!("db_search_pending_pages_merged_total")
                            .increment(pages.max(0) as u64);
                    }
                    // Once per spell of failures (a database away, or rights the user lacks).
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "search pending lists not merged; inserts will merge them when full");
                    }
                    Err(e) => tracing::debug!(error = %e, "search pending lists not merged"),
                }
            }
        })
    }

    /// PostgreSQL answers (the readiness check).
    pub async fn ping_database(&self) -> Result<(), DbError> {
        self.0.db.ping().await
    }

    /// Redis: `None` when caching is off, else whether it answered a PING (the readiness
    /// check: one connection on the thread that asks, none kept warm).
    pub async fn ping_redis(&self) -> Option<bool> {
        let redis = self.0.cache.redis_pool()?;
        Some(redis.check().await.is_ok())
    }

    /// Pool figures per role, for `/metrics`.
    pub fn pool_stats(&self) -> Vec<(&'static str, PoolStats)> {
        self.0.db.stats()
    }

    /// The cache handle (hit rates, Redis health), for `/metrics` and the gateway's readiness.
    pub fn cache(&self) -> &Cache {
        &self.0.cache
    }

    /// Raw access for db-core's own tests and the tools that build datasets.
    #[cfg(feature = "testing")]
    pub fn db(&self) -> &Db {
        &self.0.db
    }
}
